import Foundation
import TestSupport
import XCTest

/// A worker killed with SIGKILL mid-job: after the heartbeat timeout another worker resumes the
/// job from its last stored checkpoint, and the result equals an uninterrupted run's.
final class JobsRescueCLITests: JobsCLITestCase {
    func testKilledWorkersJobResumesFromItsCheckpointAndEqualsAnUninterruptedRun() throws {
        // Dropout and shuffling on, so an inexact resume would show.
        let flags = hyper(steps: 30, lr: "1e-2", checkpointEvery: 4) + ["--dropout", "0.1"]
        let id = try submit("resumed", flags)
        let first = try startWorker(["--heartbeat-timeout", "3", "--poll-interval", "0.1"], stepDelayMS: 150)
        try waitUntil("a checkpoint past step 8 to be stored") {
            try events(id).contains { (($0["data"] as? [String: Any])?["checkpoint_step"] as? Int ?? 0) >= 8 }
        }
        kill(first.processIdentifier, SIGKILL)
        first.waitUntilExit()
        let killed = try job(id)
        XCTAssertEqual(killed["status"] as? String, "running", "a killed worker leaves its job running until the heartbeat expires")
        XCTAssertEqual(killed["attempt"] as? Int, 1)
        let stepsBeforeKill = try events(id).compactMap { ($0["data"] as? [String: Any])?["step"] as? Int }.max() ?? 0
        XCTAssertLessThan(stepsBeforeKill, 30, "killed mid-job")

        let second = try startWorker(["--once", "--heartbeat-timeout", "3", "--poll-interval", "0.2"])
        waitExit(second)
        let j = try job(id)
        XCTAssertEqual(j["status"] as? String, "succeeded", "\(j)")
        XCTAssertEqual(j["attempt"] as? Int, 2)
        XCTAssertEqual(j["version"] as? Int, 1)
        let msgs = try messages(id)
        XCTAssertTrue(msgs.contains { $0.hasPrefix("rescued by") }, "\(msgs)")
        let resumedAt = msgs.compactMap { m -> Int? in
            guard m.hasPrefix("resuming from checkpoint at step ") else { return nil }
            return Int(m.dropFirst("resuming from checkpoint at step ".count))
        }
        XCTAssertEqual(resumedAt.count, 1, "\(msgs)")
        XCTAssertGreaterThanOrEqual(resumedAt.first ?? 0, 8)
        // The second attempt trained only the steps after the checkpoint.
        let secondAttemptSteps = try events(id).filter { $0["attempt"] as? Int == 2 && $0["type"] as? String == "metrics" }
            .compactMap { ($0["data"] as? [String: Any])?["step"] as? Int }
        XCTAssertEqual(secondAttemptSteps.min(), (resumedAt.first ?? 0) + 1)
        let versions = try json(["versions", "resumed"])["data"] as? [[String: Any]] ?? []
        XCTAssertEqual(versions.count, 1, "exactly one version registered")

        // The same job, never interrupted.
        let straight = try submit("straight", flags)
        let third = try startWorker(["--once", "--poll-interval", "0.2"])
        waitExit(third)
        XCTAssertEqual(try job(straight)["status"] as? String, "succeeded")
        let a = scratch.appendingPathComponent("resumed"), b = scratch.appendingPathComponent("straight")
        try lora(["export", "resumed@1", a.path])
        try lora(["export", "straight@1", b.path])
        let ta = try readSafetensorsF32(a.appendingPathComponent("adapter_model.safetensors"))
        let tb = try readSafetensorsF32(b.appendingPathComponent("adapter_model.safetensors"))
        XCTAssertEqual(Set(ta.keys), Set(tb.keys))
        XCTAssertFalse(ta.isEmpty)
        var maxDiff: Float = 0, maxB: Float = 0
        for (name, x) in ta {
            guard let y = tb[name], y.count == x.count else { XCTFail("\(name) differs in shape"); continue }
            for i in x.indices { maxDiff = max(maxDiff, abs(x[i] - y[i])) }
            if name.contains("lora_B") { maxB = max(maxB, y.map(abs).max() ?? 0) }
        }
        // Exact: the rescuing worker resumes from the stored checkpoint (adapter, optimizer state, data
        // position, RNG streams) and repeats the same arithmetic on the same shapes and thread count.
        XCTAssertEqual(maxDiff, 0)
        XCTAssertGreaterThan(maxB, 0, "the adapter trained (B moved from zero)")
    }

    func testAPausedWorkerThatComesBackAfterTheRescueChangesNothing() throws {
        let id = try submit("late", hyper(steps: 20, checkpointEvery: 2))
        let first = try startWorker(["--once", "--heartbeat-timeout", "2", "--poll-interval", "0.1"], stepDelayMS: 150)
        try waitUntil("a stored checkpoint") {
            try events(id).contains { (($0["data"] as? [String: Any])?["checkpoint_step"] as? Int ?? 0) >= 2 }
        }
        // The worker and the process running its job: paused together, as a stalled machine would be.
        try waitUntil("the job's process") { !childProcesses(of: first.processIdentifier).isEmpty }
        let jobProcesses = childProcesses(of: first.processIdentifier)
        kill(first.processIdentifier, SIGSTOP)
        for c in jobProcesses { kill(c, SIGSTOP) }
        let second = try startWorker(["--once", "--heartbeat-timeout", "2", "--poll-interval", "0.2"])
        waitExit(second)
        let rescued = try job(id)
        XCTAssertEqual(rescued["status"] as? String, "succeeded")
        XCTAssertEqual(rescued["attempt"] as? Int, 2)
        for c in jobProcesses { kill(c, SIGCONT) }
        kill(first.processIdentifier, SIGCONT)
        waitExit(first, timeout: 30)
        let after = try job(id)
        XCTAssertEqual(after["status"] as? String, "succeeded")
        XCTAssertEqual(after["attempt"] as? Int, 2)
        XCTAssertEqual(after["version"] as? Int, 1)
        XCTAssertEqual((try json(["versions", "late"])["data"] as? [Any])?.count, 1, "the late worker registered nothing")
        let msgs = try messages(id)
        XCTAssertTrue(msgs.contains { $0.contains("attempt 1 stopped: no longer this worker's") }, "\(msgs)")
    }

    func testEventsFollowShowsLiveProgressUntilTheJobFinishes() throws {
        let id = try submit("followed", hyper(steps: 6))
        let w = try startWorker(["--once", "--poll-interval", "0.1", "--concurrency", "2"], stepDelayMS: 100)
        let r = try lora(["jobs", "events", String(id), "--follow", "--json"])
        waitExit(w)
        let lines = r.stdout.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        let steps = lines.compactMap { ($0["data"] as? [String: Any])?["step"] as? Int }
        XCTAssertEqual(Set(steps), Set(1...6), r.stdout)
        XCTAssertTrue(lines.contains { ($0["message"] as? String ?? "").hasPrefix("succeeded: registered followed@1") }, r.stdout)
    }

    func testSIGTERMReturnsTheRunningJobToTheQueueWithACheckpointAndTheNextWorkerResumesIt() throws {
        let id = try submit("termed", hyper(steps: 40, checkpointEvery: 100))
        let first = try startWorker(["--poll-interval", "0.2"], stepDelayMS: 100)
        try waitUntil("a few steps") {
            try events(id).filter { $0["type"] as? String == "metrics" }.count >= 3
        }
        kill(first.processIdentifier, SIGTERM)
        waitExit(first, timeout: 20)
        XCTAssertEqual(first.terminationStatus, 0)
        let released = try job(id)
        XCTAssertEqual(released["status"] as? String, "queued", "\(released)")
        XCTAssertEqual(released["attempt"] as? Int, 0, "a clean shutdown does not spend an attempt")
        let stored = try events(id).compactMap { ($0["data"] as? [String: Any])?["checkpoint_step"] as? Int }
        XCTAssertEqual(stored.count, 1, "the checkpoint taken at the stop was stored (none were due before step 100)")
        let second = try startWorker(["--once", "--poll-interval", "0.2"])
        waitExit(second)
        let j = try job(id)
        XCTAssertEqual(j["status"] as? String, "succeeded")
        XCTAssertEqual(j["attempt"] as? Int, 1)
        XCTAssertTrue(try messages(id).contains { $0 == "resuming from checkpoint at step \(stored.first ?? -1)" })
    }
}
