import Foundation
import Registry
import ServiceTestSupport
import TestSupport
import XCTest

/// Crash consistency (issue 16 item 7): a real `lora` process SIGKILLed in the middle of a registry
/// write leaves the registry exactly as it was, with no row lacking its chunks and no alias pointing
/// at nothing. The process stops at a point the test chooses (`LORA_TEST_PAUSE_AT`, see
/// Registry's TestPausePoint: it writes a marker file with its pid and blocks), the test waits for
/// the marker, reads the committed state from another connection, kills the process and compares.
final class KillPointCLITests: JobsCLITestCase {
    /// Runs `lora ARGS` in the background with the pause hook at `point`; returns once it is paused
    /// there, with the pid of the paused process (the process itself, or a job process it started).
    func startPaused(_ args: [String], at point: String, spawn: (([String: String]) throws -> Process)? = nil,
                     file: StaticString = #filePath, line: UInt = #line) throws -> (process: Process, paused: pid_t) {
        let marker = scratch.appendingPathComponent("paused-\(UUID().uuidString.prefix(8))")
        let hook = ["LORA_TEST_PAUSE_AT": point, "LORA_TEST_PAUSE_MARKER": marker.path]
        let p: Process
        if let spawn {
            p = try spawn(hook)
        } else {
            p = Process()
            p.executableURL = TestPaths.loraBinary
            p.arguments = args + registryArguments
            p.environment = environment.merging(hook) { $1 }
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try p.run()
            started.append(p)
        }
        waitUntil("the process to pause at \(point)", timeout: 300, file: file, line: line) {
            FileManager.default.fileExists(atPath: marker.path) || !p.isRunning
        }
        let text = (try? String(contentsOf: marker, encoding: .utf8)) ?? ""
        let pid = try XCTUnwrap(pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)),
                                "no pid in the marker (process exited with \(p.isRunning ? -1 : p.terminationStatus))",
                                file: file, line: line)
        return (p, pid)
    }

    /// Every registry row a kill could touch (timestamps included), chunk bytes as digests.
    func registryState() throws -> [String] {
        let c = try db.connect()
        let queries = [
            "SELECT t::text AS r FROM tasks t",
            "SELECT t::text AS r FROM adapter_versions t",
            "SELECT t::text AS r FROM aliases t",
            "SELECT t::text AS r FROM alias_history t",
            "SELECT t::text AS r FROM artifacts t",
            "SELECT concat_ws(' ', sha256, seq, encode(sha256(bytes), 'hex')) AS r FROM artifact_chunks",
            "SELECT t::text AS r FROM job_checkpoints t",
            "SELECT concat_ws(' ', checkpoint_id, seq, encode(sha256(bytes), 'hex')) AS r FROM job_checkpoint_chunks",
        ]
        var out: [String] = []
        for q in queries {
            out.append("-- " + q)
            out += try c.execute(q + " ORDER BY 1").rows.map { try $0.string("r") }
        }
        return out
    }

    /// No artifact or checkpoint without all its chunks (their bytes hash to the recorded sha256),
    /// no alias pointing at a missing version.
    func assertConsistent(file: StaticString = #filePath, line: UInt = #line) throws {
        let c = try db.connect()
        let artifacts = try c.execute("""
            SELECT a.sha256, a.size, a.chunk_count,
                   (SELECT count(*) FROM artifact_chunks k WHERE k.sha256 = a.sha256) AS chunks,
                   (SELECT COALESCE(sum(length(k.bytes)), 0) FROM artifact_chunks k WHERE k.sha256 = a.sha256) AS bytes,
                   encode(sha256((SELECT COALESCE(string_agg(k.bytes, ''::bytea ORDER BY k.seq), ''::bytea)
                                  FROM artifact_chunks k WHERE k.sha256 = a.sha256)), 'hex') AS digest
            FROM artifacts a
            """)
        for r in artifacts.rows {
            let sha = try r.string("sha256")
            XCTAssertEqual(try r.int("chunks"), try r.int("chunk_count"), "artifact \(sha)", file: file, line: line)
            XCTAssertEqual(try r.int("bytes"), try r.int("size"), "artifact \(sha)", file: file, line: line)
            XCTAssertEqual(try r.string("digest"), sha, "artifact \(sha)", file: file, line: line)
        }
        let orphanChunks = try c.execute("""
            SELECT count(*) AS n FROM artifact_chunks k WHERE NOT EXISTS (SELECT 1 FROM artifacts a WHERE a.sha256 = k.sha256)
            """)[0].int("n")
        XCTAssertEqual(orphanChunks, 0, "chunks without their artifact", file: file, line: line)
        let dangling = try c.execute("""
            SELECT count(*) AS n FROM aliases a
            WHERE NOT EXISTS (SELECT 1 FROM adapter_versions v WHERE v.task_id = a.task_id AND v.version = a.version)
            """)[0].int("n")
        XCTAssertEqual(dangling, 0, "aliases pointing at no version", file: file, line: line)
        let checkpoints = try c.execute("""
            SELECT p.id, p.sha256, p.size,
                   (SELECT COALESCE(sum(length(k.bytes)), 0) FROM job_checkpoint_chunks k WHERE k.checkpoint_id = p.id) AS bytes,
                   encode(sha256((SELECT COALESCE(string_agg(k.bytes, ''::bytea ORDER BY k.seq), ''::bytea)
                                  FROM job_checkpoint_chunks k WHERE k.checkpoint_id = p.id)), 'hex') AS digest
            FROM job_checkpoints p
            """)
        for r in checkpoints.rows {
            let id = try r.int("id")
            XCTAssertEqual(try r.int("bytes"), try r.int("size"), "checkpoint \(id)", file: file, line: line)
            XCTAssertEqual(try r.string("digest"), try r.string("sha256"), "checkpoint \(id)", file: file, line: line)
        }
    }

    /// Kills the paused process (and waits for the one the test started).
    func kill9(_ paused: pid_t, _ p: Process) {
        XCTAssertEqual(kill(paused, SIGKILL), 0, "kill \(paused): errno \(errno)")
        if paused == p.processIdentifier { waitExit(p) }
    }

    func addTinyBase() throws {
        let base = scratch.appendingPathComponent("base")
        try RegistryFixtures.writeTinyBase(to: base)
        try lora(["models", "add", "tiny", base.path])
    }

    func adapter(seed: Int) throws -> URL {
        let dir = scratch.appendingPathComponent("adapter-\(seed)")
        try RegistryFixtures.writeAdapter(to: dir, seed: seed, rank: 2, modules: ["q_proj", "v_proj"])
        return dir
    }

    func testImportKilledAfterStoringChunksOrBeforeCommitLeavesTheRegistryAsItWas() throws {
        try addTinyBase()
        try lora(["import", "summarize", try adapter(seed: 1).path, "--base", "tiny"])
        let second = try adapter(seed: 2)
        let tmp = dataDir.appendingPathComponent("cache/tmp")
        for point in ["register.after-chunks", "register.before-commit"] {
            let before = try registryState()
            let (p, paused) = try startPaused(["import", "summarize", second.path, "--base", "tiny"], at: point)
            XCTAssertEqual(paused, p.processIdentifier)
            kill9(paused, p)
            XCTAssertEqual(p.terminationReason, .uncaughtSignal)
            XCTAssertEqual(try registryState(), before, "a kill at \(point) changed the registry")
            try assertConsistent()
            // A new task killed at the same point leaves no task row either.
            let (q, pausedNew) = try startPaused(["import", "brand-new", second.path, "--base", "tiny"], at: point)
            kill9(pausedNew, q)
            XCTAssertEqual(try registryState(), before, "a kill at \(point) of a new task's import changed the registry")
            XCTAssertTrue(try FileManager.default.contentsOfDirectory(atPath: tmp.path).contains { $0.hasPrefix("import-\(pausedNew)-") },
                          "the killed import's packed archive is left behind (removed by the next import)")
        }
        XCTAssertEqual(try aliases("summarize"), ["latest": 1])
        // The registry goes on: the same adapter imports as version 2 and is served back intact;
        // the killed processes' temporary archives are gone.
        try lora(["import", "summarize", second.path, "--base", "tiny"])
        XCTAssertEqual(try aliases("summarize"), ["latest": 2])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: tmp.path).filter { $0.hasPrefix("import-") }, [])
        let resolved = try json(["resolve", "summarize@2"])
        let dir = URL(fileURLWithPath: try XCTUnwrap(resolved["directory"] as? String, "\(resolved)"))
        XCTAssertEqual(try Data(contentsOf: dir.appendingPathComponent("adapter_model.safetensors")),
                       try Data(contentsOf: second.appendingPathComponent("adapter_model.safetensors")))
        try assertConsistent()
    }

    func testPromoteOrRollbackKilledAfterMovingTheAliasLeavesAliasAndHistoryAsTheyWere() throws {
        try addTinyBase()
        for seed in 1...3 { try lora(["import", "summarize", try adapter(seed: seed).path, "--base", "tiny"]) }
        try lora(["promote", "summarize", "1"])
        try lora(["promote", "summarize", "2"])
        let before = try registryState()
        let (p, paused) = try startPaused(["promote", "summarize", "3"], at: "alias.moved")
        kill9(paused, p)
        XCTAssertEqual(try registryState(), before, "a kill between moving the alias and recording it changed the registry")
        XCTAssertEqual(try aliases("summarize"), ["latest": 3, "production": 2])
        // A rollback (to 1) killed at the same point changes nothing either.
        let (r, pausedRollback) = try startPaused(["rollback", "summarize"], at: "alias.moved")
        kill9(pausedRollback, r)
        XCTAssertEqual(try registryState(), before, "a killed rollback changed the registry")
        try assertConsistent()
        // Promotion then works and is recorded once.
        try lora(["promote", "summarize", "3"])
        XCTAssertEqual(try aliases("summarize"), ["latest": 3, "production": 3])
        let history = try json(["history", "summarize", "--alias", "production"])["data"] as? [[String: Any]] ?? []
        XCTAssertEqual(history.map { $0["to_version"] as? Int }, [1, 2, 3], "\(history)")
    }

    func testJobKilledWhileStoringACheckpointKeepsItsPreviousCheckpointWhole() throws {
        let id = try submit("ckpt", hyper(steps: 4, checkpointEvery: 1) + ["--max-attempts", "1"])
        var worker: Process?
        // The job process (a child of the worker) pauses inside its second checkpoint's transaction.
        let (_, paused) = try startPaused([], at: "checkpoint.after-chunks#2") { hook in
            let w = try self.startWorker(["--once", "--poll-interval", "0.1"], environment: hook)
            worker = w
            return w
        }
        let w = try XCTUnwrap(worker)
        XCTAssertNotEqual(paused, w.processIdentifier, "the job process, not the worker, stores checkpoints")
        let before = try registryState()
        let stored = try db.connect().execute("SELECT step FROM job_checkpoints WHERE job_id = $1", [.int(id)]).rows.map { try $0.int("step") }
        XCTAssertEqual(stored, [1], "the first checkpoint is committed, the second in flight")
        XCTAssertEqual(kill(paused, SIGKILL), 0)
        waitExit(w)
        let log = try String(contentsOf: workerLog(w), encoding: .utf8)
        XCTAssertEqual(w.terminationStatus, 0, log)
        let j = try job(id)
        XCTAssertEqual(j["status"] as? String, "failed", "\(j)")
        XCTAssertTrue((j["error"] as? String ?? "").contains("killed by signal \(SIGKILL)"), "\(j)")
        XCTAssertEqual(try registryState(), before, "the killed store left its checkpoint rows behind or dropped the older one")
        try assertConsistent()
        let kept = try db.connect().execute("SELECT step FROM job_checkpoints WHERE job_id = $1", [.int(id)]).rows.map { try $0.int("step") }
        XCTAssertEqual(kept, [1], "the step-1 checkpoint survives whole")
    }

    func testJobKilledWhileRegisteringItsVersionRegistersNothingAndFails() throws {
        let id = try submit("reg", hyper(steps: 2) + ["--max-attempts", "1"])
        var worker: Process?
        // The job process registers the version and finishes the job in one transaction: killed before COMMIT.
        let (_, paused) = try startPaused([], at: "register.before-commit") { hook in
            let w = try self.startWorker(["--once", "--poll-interval", "0.1"], environment: hook)
            worker = w
            return w
        }
        let w = try XCTUnwrap(worker)
        XCTAssertNotEqual(paused, w.processIdentifier)
        let before = try registryState()
        XCTAssertEqual(kill(paused, SIGKILL), 0)
        waitExit(w)
        let j = try job(id)
        XCTAssertEqual(j["status"] as? String, "failed", "\(j)")
        XCTAssertNil(j["version"] as? Int, "\(j)")
        XCTAssertEqual(try registryState(), before, "a job killed while registering left a version behind")
        let versions = try lora(["versions", "reg"], expectFailure: true)
        XCTAssertTrue(versions.stderr.contains("no task named 'reg'"), "nothing registered: \(versions.stderr)")
        try assertConsistent()
    }
}
