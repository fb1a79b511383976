import Foundation
import TestSupport
import XCTest

/// The registry verbs run as a user runs them: the release `lora` binary, no DATABASE_URL,
/// the embedded cluster created from nothing in a fresh data directory.
final class RegistryCLITests: LoraCLITestCase {
    func jsonAny(_ args: [String]) throws -> Any {
        let r = try lora(args + ["--json"])
        return try JSONSerialization.jsonObject(with: Data(r.stdout.utf8))
    }

    func testConcurrentImportsFromSeveralProcessesGetDistinctVersions() throws {
        let status0 = try jsonAny(["db", "status"]) as! [String: Any]
        XCTAssertEqual(status0["initialized"] as? Bool, false)
        let base = scratch.appendingPathComponent("base")
        try RegistryFixtures.writeTinyBase(to: base)
        let added = try jsonAny(["models", "add", "tiny", base.path]) as! [String: Any]
        XCTAssertEqual((added["sha256"] as? String)?.count, 64)
        // Stop the cluster so the parallel processes also race to start it again.
        try lora(["db", "stop"])
        let n = 6
        let dirs = try (0..<n).map { i -> URL in
            let d = scratch.appendingPathComponent("adapter\(i)")
            try RegistryFixtures.writeAdapter(to: d, seed: i, rank: 2, modules: ["q_proj", "v_proj"])
            return d
        }
        var results = [ProcessResult?](repeating: nil, count: n)
        let lock = NSLock()
        DispatchQueue.concurrentPerform(iterations: n) { i in
            let r = try? runProcess(TestPaths.loraBinary, ["import", "race", dirs[i].path, "--json", "--data-dir", dataDir.path],
                                    environment: environment)
            lock.lock(); results[i] = r; lock.unlock()
        }
        var numbers: [Int] = []
        for (i, r) in results.enumerated() {
            XCTAssertEqual(r?.status, 0, "process \(i): \(r?.stderr ?? "did not run")")
            if let r, let obj = try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any],
               let v = obj["version"] as? Int { numbers.append(v) }
        }
        XCTAssertEqual(numbers.sorted(), Array(1...n))
        let list = try jsonAny(["versions", "race"]) as! [String: Any]
        XCTAssertEqual(list["object"] as? String, "list")
        let data = list["data"] as! [[String: Any]]
        XCTAssertEqual(data.map { $0["version"] as? Int }, (1...n).map { $0 })
        XCTAssertEqual(Set(data.compactMap { $0["sha256"] as? String }).count, n, "each version keeps its own bytes")
        XCTAssertTrue(data.allSatisfy { $0["base"] as? String == "tiny" && $0["task"] as? String == "race" })
    }

    func testPromoteRollbackHistoryArchiveTagAndExportThroughTheCLI() throws {
        let base = scratch.appendingPathComponent("base")
        try RegistryFixtures.writeTinyBase(to: base)
        try lora(["models", "add", "tiny", base.path])
        for i in 1...3 {
            let d = scratch.appendingPathComponent("a\(i)")
            try RegistryFixtures.writeAdapter(to: d, seed: 10 + i, rank: 2, modules: ["q_proj"])
            try lora(["import", "chat", d.path, "--metric", "valid_loss=\(Double(i) / 2)"])
        }
        try lora(["promote", "chat", "1"])
        try lora(["promote", "chat", "3", "--reason", "better"])
        let tasks = try jsonAny(["tasks"]) as! [String: Any]
        let task = (tasks["data"] as! [[String: Any]])[0]
        XCTAssertEqual(task["name"] as? String, "chat")
        XCTAssertEqual(task["aliases"] as? [String: Int], ["latest": 3, "production": 3])
        let back = try jsonAny(["rollback", "chat"]) as! [String: Any]
        XCTAssertEqual(back["to_version"] as? Int, 1)
        let err = try lora(["rollback", "chat"], expectFailure: true)
        XCTAssertTrue(err.stderr.contains("nothing to roll back"), err.stderr)
        try lora(["promote", "chat", "2", "--alias", "latest"], expectFailure: true)
        let hist = try jsonAny(["history", "chat", "--alias", "production"]) as! [String: Any]
        XCTAssertEqual((hist["data"] as! [[String: Any]]).map { $0["action"] as? String }, ["promote", "promote", "rollback"])
        let refused = try lora(["archive", "chat@1"], expectFailure: true)
        XCTAssertTrue(refused.stderr.contains("production"), refused.stderr)
        try lora(["archive", "chat@2"])
        let tagged = try jsonAny(["tag", "chat@3", "reviewed=yes"]) as! [String: Any]
        XCTAssertEqual(tagged["tags"] as? [String: String], ["reviewed": "yes"])
        let cleared = try jsonAny(["tag", "chat@3", "--clear", "reviewed"]) as! [String: Any]
        XCTAssertEqual(cleared["tags"] as? [String: String], [:])
        let out = scratch.appendingPathComponent("exported")
        try lora(["export", "chat", out.path])
        XCTAssertEqual(try Data(contentsOf: out.appendingPathComponent("adapter_model.safetensors")),
                       try Data(contentsOf: scratch.appendingPathComponent("a1/adapter_model.safetensors")),
                       "chat alone follows production (version 1)")
        let models = try jsonAny(["models", "list"]) as! [String: Any]
        XCTAssertEqual((models["data"] as! [[String: Any]]).map { $0["name"] as? String }, ["tiny"])
        let st = try jsonAny(["db", "status"]) as! [String: Any]
        XCTAssertEqual(st["running"] as? Bool, true)
        try lora(["db", "stop"])
        let st2 = try jsonAny(["db", "status"]) as! [String: Any]
        XCTAssertEqual(st2["running"] as? Bool, false)
    }

    /// `lora generate/score --adapter TASK[@N|@ALIAS]` resolve and load through the server's path
    /// (ModelResolver + AdapterCache): the same bits as the adapter's directory, the alias followed,
    /// an unknown version and a version on another base refused naming them.
    func testGenerateAndScoreWithARegistryAdapterEqualItsDirectory() throws {
        let tied = TestPaths.fixture("models/tiny-llama-tied")
        let v1 = TestPaths.fixture("peft/initial-adapter"), v2 = TestPaths.fixture("peft/initial-adapter-rslora")
        try lora(["models", "add", "tiny", tied.path])
        try lora(["import", "chat", v1.path, "--base", "tiny"])
        try lora(["import", "chat", v2.path, "--base", "tiny"])
        try lora(["promote", "chat", "1"])
        func generate(_ adapter: String) throws -> String {
            try lora(["generate", "--model", tied.path, "--quant", "none", "--max-tokens", "8", "--json", "--adapter", adapter, "hello"]).stdout
        }
        let fromDir1 = try generate(v1.path), fromDir2 = try generate(v2.path)
        XCTAssertNotEqual(fromDir1, fromDir2, "the two adapters answer differently, so the checks below can tell them apart")
        XCTAssertEqual(try generate("chat@1"), fromDir1)
        XCTAssertEqual(try generate("chat"), fromDir1, "TASK is its production alias")
        XCTAssertEqual(try generate("chat@2"), fromDir2)
        XCTAssertEqual(try generate("chat@latest"), fromDir2)
        let data = TestPaths.fixture("models/score.jsonl").path
        let scored = try lora(["score", "--model", tied.path, "--quant", "none", "--json", "--data", data, "--adapter", "chat@2"]).stdout
        XCTAssertEqual(scored, try lora(["score", "--model", tied.path, "--quant", "none", "--json", "--data", data, "--adapter", v2.path]).stdout)

        let missing = try lora(["generate", "--model", tied.path, "--max-tokens", "1", "--adapter", "chat@9", "hello"], expectFailure: true)
        XCTAssertTrue(missing.stderr.contains("chat@9") && missing.stderr.contains("no version 9"), missing.stderr)
        // The same adapter registered on a base with other bytes is refused on this one, naming both.
        let other = scratch.appendingPathComponent("other-base")
        try FileManager.default.copyItem(at: tied, to: other)
        let weights = other.appendingPathComponent("model.safetensors")
        var bytes = try Data(contentsOf: weights)
        bytes[bytes.count - 1] ^= 1
        try bytes.write(to: weights)
        try lora(["models", "add", "other", other.path])
        try lora(["import", "elsewhere", v1.path, "--base", "other"])
        let refused = try lora(["generate", "--model", tied.path, "--max-tokens", "1", "--adapter", "elsewhere@1", "hello"], expectFailure: true)
        XCTAssertTrue(refused.stderr.contains("`other`") && refused.stderr.contains("`tiny`"), refused.stderr)
    }
}
