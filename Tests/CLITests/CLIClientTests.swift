import Foundation
import ServiceTestSupport
import TestSupport
import XCTest

/// One set of commands, two transports: the registry and job commands run against the database
/// (`--database-url`) and against a real `lora serve` on a socket (`--server`, the key from
/// `LORA_API_KEY`) over the same registry, and print the same bytes.
final class CLIClientTests: JobsCLITestCase {
    override var actor: String { "client-test" }
    var serverURL = ""
    var serverLog: URL { scratch.appendingPathComponent("serve.out") }
    var apiKey = ""

    /// The database's registry (the base class's arguments).
    func direct(_ args: [String], expectFailure: Bool = false, file: StaticString = #filePath, line: UInt = #line) throws -> ProcessResult {
        try lora(args, expectFailure: expectFailure, file: file, line: line)
    }

    /// The same verb through the server: no database flags, the server and key from the environment.
    func remote(_ args: [String], key: String? = nil, expectFailure: Bool = false,
                file: StaticString = #filePath, line: UInt = #line) throws -> ProcessResult {
        var env = environment
        env["LORA_SERVER"] = serverURL
        env["LORA_API_KEY"] = key ?? apiKey
        let r = try runProcess(TestPaths.loraBinary, args, environment: env)
        if expectFailure {
            XCTAssertNotEqual(r.status, 0, "lora \(args.joined(separator: " ")) should fail", file: file, line: line)
        } else {
            XCTAssertEqual(r.status, 0, "lora \(args.joined(separator: " ")) --server: \(r.stderr)", file: file, line: line)
        }
        return r
    }

    func object(_ r: ProcessResult) throws -> [String: Any] {
        try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], r.stdout)
    }

    /// Registers the tiny base, imports a version, creates an admin key and starts `lora serve`.
    func startServer(workers: Int = 0, extra: [String] = []) throws {
        try direct(["models", "add", "tiny", model.path])
        try direct(["import", "alpha", TestPaths.fixture("peft/initial-adapter").path, "--base", "tiny"])
        try direct(["import", "alpha", TestPaths.fixture("peft/final-adapter").path, "--base", "tiny"])
        apiKey = try direct(["keys", "create", "ops", "--role", "admin"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let out = serverLog
        FileManager.default.createFile(atPath: out.path, contents: nil)
        let p = Process()
        p.executableURL = TestPaths.loraBinary
        p.arguments = ["serve", "--base", "tiny", "--port", "0", "--threads", "1"]
            + (workers > 0 ? ["--workers", String(workers), "--worker-threads", "1"] : []) + extra + registryArguments
        p.environment = environment
        let h = try FileHandle(forWritingTo: out)
        p.standardOutput = h
        p.standardError = h
        try p.run()
        started.append(p)
        var port: Int?
        waitUntil("lora serve's address", timeout: 120) {
            let text = (try? String(contentsOf: out, encoding: .utf8)) ?? ""
            port = text.firstMatch(of: #/listening on http://127\.0\.0\.1:([0-9]+)/#).flatMap { Int($0.output.1) }
            return port != nil || !p.isRunning
        }
        serverURL = "http://127.0.0.1:\(try XCTUnwrap(port, (try? String(contentsOf: out, encoding: .utf8)) ?? ""))"
    }

    /// Flags that differ from every default, so a setting the API dropped would show.
    let settings = ["--max-steps", "2", "--batch-size", "2", "--rank", "4", "--alpha", "8", "--dropout", "0.1", "--lr", "1e-3",
                    "--targets", "q_proj,v_proj", "--rslora", "--grad-accum", "2", "--max-seq-len", "64", "--scheduler", "linear",
                    "--warmup-steps", "1", "--weight-decay", "0.01", "--max-grad-norm", "0.5", "--seed", "7", "--no-shuffle",
                    "--eval-every", "1", "--max-bad-steps", "2", "--quant", "none", "--checkpoint-every", "1",
                    "--auto-promote", "--promote-if-better", "--max-attempts", "2"]

    func testEveryCommandPrintsTheSameOverTheServerAsAgainstTheDatabase() throws {
        try startServer()
        let data = trainData.path
        // Submissions: each transport queues one; the records agree in everything but who and when.
        let a = try object(try direct(["jobs", "submit", "--task", "t1", "--base", "tiny", "--data", data, "--eval-data", data, "--json"] + settings))
        let b = try object(try remote(["jobs", "submit", "--task", "t1", "--base", "tiny", "--data", data, "--eval-data", data, "--json"] + settings))
        for key in ["id", "created_at", "next_attempt_at", "created_by"] {
            XCTAssertNotNil(a[key], key)
            XCTAssertNotNil(b[key], key)
        }
        let comparable = { (j: [String: Any]) in j.filter { !["id", "created_at", "next_attempt_at", "created_by"].contains($0.key) } }
        XCTAssertEqual(NSDictionary(dictionary: comparable(a)), NSDictionary(dictionary: comparable(b)),
                       "the same job over both transports: \(a) vs \(b)")
        XCTAssertEqual(b["created_by"] as? String, "api-key:ops", "over the server the key's name acts")
        let idA = try XCTUnwrap(a["id"] as? Int), idB = try XCTUnwrap(b["id"] as? Int)

        // Moves: one transport acts, both read the same history.
        try remote(["promote", "alpha", "1", "--reason", "first"])
        try direct(["promote", "alpha", "2"])
        try direct(["promote", "alpha", "2", "--alias", "champion"])
        let back = try object(try remote(["rollback", "alpha", "--json"]))
        XCTAssertEqual(back["to_version"] as? Int, 1)
        try remote(["jobs", "cancel", String(idB)])
        // A job of another task, so that `--task` has something to leave out.
        let other = try object(try remote(["jobs", "submit", "--task", "t2", "--base", "tiny", "--data", data, "--json"]))
        try direct(["jobs", "cancel", String(try XCTUnwrap(other["id"] as? Int))])

        // Reads, text and JSON: byte for byte the same.
        let reads: [[String]] = [
            ["tasks"], ["versions", "alpha"], ["versions", "alpha", "--all"], ["history", "alpha"], ["history", "alpha", "--alias", "champion"],
            ["jobs", "list"], ["jobs", "list", "--status", "cancelled"], ["jobs", "list", "--task", "t1"], ["jobs", "list", "--task", "t2"],
            ["jobs", "list", "--task", "t2", "--status", "cancelled"],
            ["jobs", "show", String(idA)], ["jobs", "show", String(idB)], ["jobs", "events", String(idB)],
        ]
        for args in reads {
            for format in [[], ["--json"]] {
                let d = try direct(args + format), r = try remote(args + format)
                XCTAssertEqual(d.stdout, r.stdout, "lora \((args + format).joined(separator: " "))")
                XCTAssertFalse(d.stdout.isEmpty)
            }
        }
        XCTAssertTrue(try direct(["history", "alpha"]).stdout.contains("ops"), "the key's name is the actor of the moves made over HTTP")

        // The job runs (a worker on the database); its events, followed and listed, and its plot agree.
        let worker = try startWorker(["--once", "--threads", "1"])
        waitExit(worker)
        XCTAssertEqual(try object(try remote(["jobs", "show", String(idA), "--json"]))["status"] as? String, "succeeded",
                       (try? String(contentsOf: workerLog(worker), encoding: .utf8)) ?? "")
        for args in [["jobs", "events", String(idA)], ["jobs", "events", String(idA), "--follow"], ["jobs", "events", String(idA), "--follow", "--json"],
                     ["jobs", "events", String(idA), "--json"], ["versions", "t1"], ["tasks", "--json"]] {
            XCTAssertEqual(try direct(args).stdout, try remote(args).stdout, args.joined(separator: " "))
        }
        let svgD = scratch.appendingPathComponent("d.svg"), svgR = scratch.appendingPathComponent("r.svg")
        try direct(["jobs", "plot", String(idA), "--output", svgD.path])
        try remote(["jobs", "plot", "ftjob-\(idA)", "--output", svgR.path])
        XCTAssertEqual(try Data(contentsOf: svgD), try Data(contentsOf: svgR))

        // Export (PEFT files, a GGUF adapter) writes the same bytes; an import over HTTP of the
        // exported files is a new version with the same stored tar.
        for format in ["peft", "gguf"] {
            let outD = scratch.appendingPathComponent("export-d-\(format)"), outR = scratch.appendingPathComponent("export-r-\(format)")
            try direct(["export", "t1@1", outD.path, "--format", format])
            try remote(["export", "t1", outR.path, "--format", format])
            let names = try FileManager.default.contentsOfDirectory(atPath: outD.path).sorted()
            XCTAssertEqual(names, try FileManager.default.contentsOfDirectory(atPath: outR.path).sorted(), format)
            for n in names {
                XCTAssertEqual(try Data(contentsOf: outD.appendingPathComponent(n)), try Data(contentsOf: outR.appendingPathComponent(n)), "\(format) \(n)")
            }
            let again = try remote(["export", "t1", outR.path, "--format", format], expectFailure: true)
            XCTAssertTrue(again.stderr.contains("exist"), "an existing file is refused without --force: \(again.stderr)")
        }
        let imported = try object(try remote(["import", "t1", scratch.appendingPathComponent("export-r-peft").path, "--base", "tiny", "--json"]))
        XCTAssertEqual(imported["version"] as? Int, 2)
        let first = try XCTUnwrap(try object(try direct(["resolve", "t1@1", "--json"]))["version"] as? [String: Any])
        XCTAssertEqual(imported["sha256"] as? String, first["sha256"] as? String, "the same adapter files make the same stored tar")
    }

    func testServerErrorsPrintTheirMessageAndFieldAndExitNonZero() throws {
        try startServer()
        let unauthorized = try remote(["tasks"], key: "not-a-key", expectFailure: true)
        XCTAssertTrue(unauthorized.stderr.contains("HTTP 401"), unauthorized.stderr)
        let injected = try remote(["tasks"], key: apiKey + "\r\nX-Injected: 1", expectFailure: true)
        XCTAssertTrue(injected.stderr.contains("control character"), injected.stderr)
        let missing = try remote(["promote", "alpha", "9"], expectFailure: true)
        XCTAssertTrue(missing.stderr.contains("HTTP 404"), missing.stderr)
        XCTAssertTrue(missing.stderr.contains("9"), missing.stderr)
        let badSuffix = try remote(["jobs", "submit", "--task", "Bad Name", "--base", "tiny", "--data", trainData.path], expectFailure: true)
        XCTAssertTrue(badSuffix.stderr.contains("(param: suffix)"), badSuffix.stderr)
        XCTAssertTrue(badSuffix.stderr.contains("HTTP 400"), badSuffix.stderr)
        // A bad task name is refused by both transports (over HTTP by the server, naming the parameter).
        let badTaskD = try direct(["jobs", "list", "--task", "Bad Name"], expectFailure: true)
        let badTaskR = try remote(["jobs", "list", "--task", "Bad Name"], expectFailure: true)
        for r in [badTaskD, badTaskR] { XCTAssertTrue(r.stderr.contains("Bad Name") && r.stderr.contains("lowercase letters"), r.stderr) }
        XCTAssertTrue(badTaskR.stderr.contains("HTTP 400") && badTaskR.stderr.contains("(param: task)"), badTaskR.stderr)
        let refused = try remote(["jobs", "submit", "--task", "t", "--model", model.path, "--data", trainData.path], expectFailure: true)
        XCTAssertTrue(refused.stderr.contains("--model is not available with --server"), refused.stderr)
        for (args, flag) in [(["import", "alpha", TestPaths.fixture("peft/final-adapter").path, "--metric", "x=1"], "--metric"),
                             (["import", "alpha", TestPaths.fixture("peft/final-adapter").path, "--tag", "a=b"], "--tag"),
                             (["export", "alpha@1", scratch.appendingPathComponent("o").path, "--format", "ollama"], "--format ollama"),
                             (["jobs", "submit", "--task", "t", "--base", "tiny", "--data", trainData.path, "--max-job-memory", "1G"], "--max-job-memory")] {
            let r = try remote(args, expectFailure: true)
            XCTAssertTrue(r.stderr.contains("\(flag) is not available with --server"), "\(args): \(r.stderr)")
        }
        XCTAssertEqual(try direct(["versions", "alpha", "--json"]).stdout.components(separatedBy: "\"version\" :").count - 1, 2,
                       "the refused import registered nothing")
        let both = try runProcess(TestPaths.loraBinary, ["tasks", "--server", serverURL] + registryArguments, environment: environment)
        XCTAssertNotEqual(both.status, 0)
        XCTAssertTrue(both.stderr.contains("give one"), both.stderr)
        let dead = try runProcess(TestPaths.loraBinary, ["tasks", "--server", "http://127.0.0.1:1"], environment: environment)
        XCTAssertNotEqual(dead.status, 0)
        XCTAssertTrue(dead.stderr.contains("http://127.0.0.1:1"), dead.stderr)
        XCTAssertEqual(try direct(["jobs", "list", "--json"]).stdout.contains("\"id\""), false, "nothing was queued by the refused submissions")
    }

    func testTuneFollowsTheJobLiveToSuccessAndWatchExitsNonZeroWhenTheJobIsCancelled() throws {
        try startServer(workers: 1)
        let r = try remote(["tune", "--task", "live", "--base", "tiny", "--data", trainData.path,
                            "--max-steps", "3", "--batch-size", "2", "--rank", "4", "--lr", "1e-3", "--checkpoint-every", "2"])
        let lines = r.stdout.split(separator: "\n").map(String.init)
        XCTAssertTrue(lines.first?.hasPrefix("queued job ") == true, r.stdout)
        for step in 1...3 {
            XCTAssertTrue(lines.contains { $0.hasPrefix("step \(step)/3  loss ") && $0.contains("  lr ") && $0.contains(" tok/s") }, "step \(step): \(r.stdout)")
        }
        XCTAssertFalse(lines.contains { $0.hasPrefix("step 1/3") && $0.contains("ETA") }, "no rate yet at the first step: \(r.stdout)")
        XCTAssertTrue(lines.contains { $0.hasPrefix("step 3/3") && $0.hasSuffix("ETA 0m00s") }, "nothing left after the last step: \(r.stdout)")
        XCTAssertTrue(lines.last?.contains("succeeded") == true && lines.last?.contains("version live@1") == true, r.stdout)

        // A watched job that is cancelled (queued or running: a running one stops within a step)
        // ends the watch with a non-zero exit.
        var env = environment
        env["LORA_SERVER"] = serverURL
        env["LORA_API_KEY"] = apiKey
        let p = Process()
        p.executableURL = TestPaths.loraBinary
        p.arguments = ["jobs", "submit", "--watch", "--task", "doomed", "--base", "tiny", "--data", trainData.path,
                       "--max-steps", "1000000", "--batch-size", "2", "--rank", "4", "--checkpoint-every", "1000000"]
        p.environment = env
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        started.append(p)
        var id: Int?
        waitUntil("the watched job to be queued") {
            id = (try? object(try direct(["jobs", "list", "--task", "doomed", "--json"])))
                .flatMap { ($0["data"] as? [[String: Any]])?.first?["id"] as? Int }
            return id != nil
        }
        try remote(["jobs", "cancel", String(try XCTUnwrap(id))])
        let stdout = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        waitExit(p)
        XCTAssertNotEqual(p.terminationStatus, 0, stdout + stderr)
        XCTAssertTrue(stderr.contains("job \(id!) cancelled"), stderr)
        XCTAssertTrue(stdout.split(separator: "\n").last?.contains("cancelled") == true, stdout)
    }

    func testChatRepliesStreamTheSameThroughTheServerAndInProcess() throws {
        try startServer()
        try direct(["promote", "alpha", "2"])
        var env = environment
        env["LORA_SERVER"] = serverURL
        env["LORA_API_KEY"] = apiKey
        let input = "hello world\n\nthe cat sat\n/reset\nhello world\n"
        for task in [["alpha"], ["alpha@1"], []] {
            let viaServer = try runProcess(TestPaths.loraBinary, ["chat"] + task + ["--max-tokens", "6"], environment: env, stdin: input)
            XCTAssertEqual(viaServer.status, 0, viaServer.stderr)
            let local = try runProcess(TestPaths.loraBinary, ["chat"] + task + ["--max-tokens", "6", "--model", model.path] + registryArguments,
                                       environment: environment, stdin: input)
            XCTAssertEqual(local.status, 0, local.stderr)
            XCTAssertEqual(viaServer.stdout, local.stdout, "chat \(task)")
            let replies = local.stdout.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            XCTAssertEqual(replies.count, 4, "three replies (the blank line is skipped), then the final newline: \(replies)")
            // The first turn is `lora generate --chat`'s answer; after /reset the same question gets it again.
            let adapter = task.isEmpty ? [] : ["--adapter", task[0]]
            let single = try runProcess(TestPaths.loraBinary, ["generate", "--chat", "--max-tokens", "6", "--model", model.path] + adapter
                                        + registryArguments + ["hello world"], environment: environment)
            XCTAssertEqual(single.status, 0, single.stderr)
            XCTAssertEqual(replies[0] + "\n", single.stdout, "chat \(task)")
            XCTAssertEqual(replies[2], replies[0], "/reset starts over")
            XCTAssertFalse(replies[0].isEmpty, "a reply was generated")
        }
        let unknown = try runProcess(TestPaths.loraBinary, ["chat", "nope"], environment: env, stdin: "hi\n")
        XCTAssertNotEqual(unknown.status, 0)
        XCTAssertTrue(unknown.stderr.contains("(param: model)") && unknown.stderr.contains("HTTP 404"), unknown.stderr)
    }

    func testAPIKeysNeverAppearInTheServersLogsAtTraceLevel() throws {
        try startServer(extra: ["--log-level", "trace"])
        let trainer = try direct(["keys", "create", "trainer", "--role", "trainer"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let revoked = try direct(["keys", "create", "gone", "--role", "admin"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        try direct(["keys", "revoke", "gone"])
        let unknown = "sk-" + String(repeating: "7f", count: 32)
        // Requests that succeed, are refused (401 unknown or revoked, 403 role) or fail (404), with each key.
        try remote(["tasks"])
        try remote(["jobs", "submit", "--task", "logged", "--base", "tiny", "--data", trainData.path, "--max-steps", "1"], key: trainer)
        try remote(["promote", "alpha", "1"], key: trainer, expectFailure: true)
        try remote(["promote", "alpha", "9"], expectFailure: true)
        try remote(["tasks"], key: unknown, expectFailure: true)
        try remote(["tasks"], key: revoked, expectFailure: true)
        var env = environment
        env["LORA_SERVER"] = serverURL
        env["LORA_API_KEY"] = apiKey
        XCTAssertEqual(try runProcess(TestPaths.loraBinary, ["chat", "alpha", "--max-tokens", "2"], environment: env, stdin: "hi\n").status, 0)
        let log = try String(contentsOf: serverLog, encoding: .utf8)
        // The log did record each of these requests (one line each, with its status).
        for line in ["GET /v1/tasks 200", "POST /v1/files 200", "POST /v1/fine_tuning/jobs 200", "POST /v1/tasks/alpha/promote 403",
                     "POST /v1/tasks/alpha/promote 404", "GET /v1/tasks 401", "POST /v1/chat/completions 200"] {
            XCTAssertTrue(log.contains(line), "\(line) in \(log.suffix(3000))")
        }
        for (name, secret) in [("admin", apiKey), ("trainer", trainer), ("revoked", revoked), ("unknown", unknown)] {
            XCTAssertFalse(secret.isEmpty)
            XCTAssertFalse(log.contains(secret), "the \(name) key is in the server's log")
            // Nor any 16-character piece of it (a truncated or reformatted echo).
            let chars = Array(secret)
            for start in stride(from: 0, to: max(0, chars.count - 16), by: 8) {
                XCTAssertFalse(log.contains(String(chars[start..<start + 16])), "part of the \(name) key is in the server's log")
            }
        }
    }
}
