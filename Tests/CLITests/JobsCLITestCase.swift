import Foundation
import TestSupport
import XCTest

/// Jobs tests run the release `lora` binary as users do: `lora jobs ...` and `lora worker`
/// processes on the embedded cluster of a fresh data directory, training the tiny fixture model.
class JobsCLITestCase: XCTestCase {
    var dataDir: URL!
    var scratch: URL!
    var model: URL { TestPaths.fixture("models/tiny-llama-tied") }
    var trainData: URL { TestPaths.fixture("peft/train.jsonl") }
    var started: [Process] = []

    override func setUpWithError() throws {
        guard FileManager.default.isExecutableFile(atPath: TestPaths.loraBinary.path) else {
            struct MissingBinary: Error, CustomStringConvertible { let description: String }
            throw MissingBinary(description: "build the release binary first: swift build -c release (looked at \(TestPaths.loraBinary.path))")
        }
        dataDir = URL(fileURLWithPath: "/tmp/lora-jobs-\(getpid())-\(UUID().uuidString.prefix(6))")
        scratch = dataDir.appendingPathComponent("scratch")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    }

    override func tearDown() {
        for p in started where p.isRunning { kill(p.processIdentifier, SIGKILL); p.waitUntilExit() }
        started = []
        if let dataDir {
            _ = try? runProcess(TestPaths.loraBinary, ["db", "stop", "--data-dir", dataDir.path], environment: environment)
            try? FileManager.default.removeItem(at: dataDir)
        }
    }

    var environment: [String: String] {
        var env = ProcessInfo.processInfo.environment
        env.removeValue(forKey: "DATABASE_URL")
        env["LORA_ACTOR"] = "jobs-test"
        return env
    }

    @discardableResult
    func lora(_ args: [String], expectFailure: Bool = false, file: StaticString = #filePath, line: UInt = #line) throws -> ProcessResult {
        let r = try runProcess(TestPaths.loraBinary, args + ["--data-dir", dataDir.path], environment: environment)
        if expectFailure {
            XCTAssertNotEqual(r.status, 0, "lora \(args.joined(separator: " ")) should fail", file: file, line: line)
        } else {
            XCTAssertEqual(r.status, 0, "lora \(args.joined(separator: " ")): \(r.stderr)", file: file, line: line)
        }
        return r
    }

    func json(_ args: [String], file: StaticString = #filePath, line: UInt = #line) throws -> [String: Any] {
        let r = try lora(args + ["--json"], file: file, line: line)
        guard let obj = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any] else {
            XCTFail("not a JSON object: \(r.stdout)", file: file, line: line)
            return [:]
        }
        return obj
    }

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
    func startWorker(_ args: [String], stepDelayMS: Int? = nil) throws -> Process {
        let p = Process()
        p.executableURL = TestPaths.loraBinary
        p.arguments = ["worker"] + args + ["--data-dir", dataDir.path]
        var env = environment
        if let stepDelayMS { env["LORA_WORKER_STEP_DELAY_MS"] = String(stepDelayMS) }
        p.environment = env
        let log = scratch.appendingPathComponent("worker-\(UUID().uuidString.prefix(6)).log")
        FileManager.default.createFile(atPath: log.path, contents: nil)
        let h = try FileHandle(forWritingTo: log)
        p.standardOutput = h
        p.standardError = h
        try p.run()
        started.append(p)
        return p
    }

    /// Waits for a process to exit (failing after `timeout` seconds).
    func waitExit(_ p: Process, timeout: Double = 120, file: StaticString = #filePath, line: UInt = #line) {
        let deadline = Date().addingTimeInterval(timeout)
        while p.isRunning && Date() < deadline { usleep(50_000) }
        XCTAssertFalse(p.isRunning, "worker still running after \(timeout) s", file: file, line: line)
    }

    /// Polls until `condition` holds (failing after `timeout` seconds).
    func waitUntil(_ what: String, timeout: Double = 60, file: StaticString = #filePath, line: UInt = #line,
                   _ condition: () throws -> Bool) rethrows {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if try condition() { return }
            usleep(100_000)
        }
        XCTFail("timed out waiting for \(what)", file: file, line: line)
    }

    /// A registry version (`lora resolve REF --json`'s `version`).
    func version(_ reference: String) throws -> [String: Any] {
        try json(["resolve", reference])["version"] as? [String: Any] ?? [:]
    }

    func aliases(_ task: String) throws -> [String: Int] {
        let tasks = try json(["tasks"])["data"] as? [[String: Any]] ?? []
        return tasks.first { $0["name"] as? String == task }?["aliases"] as? [String: Int] ?? [:]
    }

    /// F32 tensors of a safetensors file by name.
    func readSafetensors(_ url: URL) throws -> [String: [Float]] {
        let d = try Data(contentsOf: url)
        let n = d.prefix(8).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        let header = try JSONSerialization.jsonObject(with: d.subdata(in: 8..<(8 + n))) as! [String: Any]
        var out: [String: [Float]] = [:]
        for (name, v) in header where name != "__metadata__" {
            let info = v as! [String: Any]
            XCTAssertEqual(info["dtype"] as? String, "F32", name)
            let offs = info["data_offsets"] as! [Int]
            let bytes = d.subdata(in: (8 + n + offs[0])..<(8 + n + offs[1]))
            out[name] = bytes.withUnsafeBytes { raw in
                (0..<(bytes.count / 4)).map { Float(bitPattern: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self)) }
            }
        }
        return out
    }
}
