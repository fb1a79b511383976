import Foundation
import ServiceTestSupport
import TestSupport
import XCTest

/// Jobs tests run the release `lora` binary as users do: `lora jobs ...` and `lora worker`
/// processes on the embedded cluster of a fresh data directory, training the tiny fixture model.
/// Each test gets its own database on the test process's shared cluster (ServiceTestSupport's
/// TestDatabase) instead of an embedded cluster of its own: creating a cluster costs seconds, a
/// database milliseconds, and the jobs tests are not about cluster creation (RegistryCLITests are).
class JobsCLITestCase: LoraCLITestCase {
    override var actor: String { "jobs-test" }
    var db: TestDatabase!
    override var registryArguments: [String] { ["--data-dir", dataDir.path, "--database-url", db.conninfo] }

    override func setUpWithError() throws {
        try super.setUpWithError()
        db = try TestDatabase()
    }

    override func tearDown() {
        super.tearDown()   // stops the workers first
        db?.drop()
    }
    var model: URL { TestPaths.fixture("models/tiny-llama-tied") }
    var trainData: URL { TestPaths.fixture("peft/train.jsonl") }

    /// Small, fast settings for the tiny model.
    func hyper(steps: Int, lr: String = "1e-3", checkpointEvery: Int = 2) -> [String] {
        ["--max-steps", String(steps), "--batch-size", "2", "--rank", "4", "--lr", lr, "--checkpoint-every", String(checkpointEvery)]
    }

    /// Submits a job on the tiny model and returns its id.
    func submit(_ task: String, _ extra: [String], file: StaticString = #filePath, line: UInt = #line) throws -> Int {
        let j = try json(["jobs", "submit", "--task", task, "--model", model.path, "--data", trainData.path] + extra, file: file, line: line)
        XCTAssertEqual(j["status"] as? String, "queued", file: file, line: line)
        return try XCTUnwrap(j["id"] as? Int, file: file, line: line)
    }

    func job(_ id: Int) throws -> [String: Any] { try json(["jobs", "show", String(id)]) }

    func events(_ id: Int) throws -> [[String: Any]] {
        try json(["jobs", "events", String(id)])["data"] as? [[String: Any]] ?? []
    }

    func messages(_ id: Int) throws -> [String] { try events(id).compactMap { $0["message"] as? String }.filter { !$0.isEmpty } }

    /// Starts a `lora worker` in the background (output to files in the scratch directory).
    func startWorker(_ args: [String], stepDelayMS: Int? = nil, environment extra: [String: String] = [:]) throws -> Process {
        let p = Process()
        p.executableURL = TestPaths.loraBinary
        p.arguments = ["worker"] + args + registryArguments
        var env = environment.merging(extra) { $1 }
        if let stepDelayMS { env["LORA_WORKER_STEP_DELAY_MS"] = String(stepDelayMS) }
        p.environment = env
        let log = workerLog(p)
        FileManager.default.createFile(atPath: log.path, contents: nil)
        let h = try FileHandle(forWritingTo: log)
        p.standardOutput = h
        p.standardError = h
        try p.run()
        started.append(p)
        return p
    }

    /// Where `startWorker` writes a worker's stdout and stderr.
    func workerLog(_ p: Process) -> URL {
        if let url = workerLogs[ObjectIdentifier(p)] { return url }
        let url = scratch.appendingPathComponent("worker-\(UUID().uuidString.prefix(6)).log")
        workerLogs[ObjectIdentifier(p)] = url
        return url
    }
    var workerLogs: [ObjectIdentifier: URL] = [:]

    /// Processes whose parent is `pid` (a worker's job processes), from /proc.
    func childProcesses(of pid: pid_t) -> [pid_t] {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
        return tasks.flatMap { t in
            ((try? String(contentsOfFile: "/proc/\(pid)/task/\(t)/children", encoding: .utf8)) ?? "")
                .split(separator: " ").compactMap { pid_t($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        }
    }

    /// A registry version (`lora resolve REF --json`'s `version`).
    func version(_ reference: String) throws -> [String: Any] {
        try json(["resolve", reference])["version"] as? [String: Any] ?? [:]
    }

    func aliases(_ task: String) throws -> [String: Int] {
        let tasks = try json(["tasks"])["data"] as? [[String: Any]] ?? []
        return tasks.first { $0["name"] as? String == task }?["aliases"] as? [String: Int] ?? [:]
    }
}
