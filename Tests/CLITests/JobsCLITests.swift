import Foundation
import TestSupport
import XCTest

/// The job daemon end to end: submit, worker, versions, retries, cancel, promotion.
final class JobsCLITests: JobsCLITestCase {
    func testSubmittedJobRunByWorkerOnceSucceedsAndRegistersVersion1WithLineage() throws {
        let id = try submit("smoke", hyper(steps: 4) + ["--eval-data", trainData.path])
        let w = try startWorker(["--once", "--poll-interval", "0.2"])
        waitExit(w)
        XCTAssertEqual(w.terminationStatus, 0)
        let j = try job(id)
        XCTAssertEqual(j["status"] as? String, "succeeded")
        XCTAssertEqual(j["attempt"] as? Int, 1)
        XCTAssertEqual(j["version"] as? Int, 1)
        XCTAssertTrue(j["error"] is NSNull)
        XCTAssertEqual(j["task"] as? String, "smoke")
        let v = try version("smoke@latest")
        XCTAssertEqual(v["version"] as? Int, 1)
        XCTAssertEqual(v["job_id"] as? Int, id)
        XCTAssertEqual(v["base"] as? String, "tiny-llama-tied")
        XCTAssertEqual(v["data_sha256"] as? String, j["data_sha256"] as? String)
        XCTAssertNotNil((v["metrics"] as? [String: Any])?["eval_loss"])
        XCTAssertEqual(((v["hyperparameters"] as? [String: Any])?["settings"] as? [String: Any])?["maxSteps"] as? Int, 4)
        XCTAssertNil(try aliases("smoke")["production"], "production moves only with --auto-promote")
        // Per-step metrics were recorded.
        let steps = try events(id).filter { $0["type"] as? String == "metrics" }.compactMap { ($0["data"] as? [String: Any])?["loss"] }
        XCTAssertEqual(steps.count, 4)
        let list = try json(["jobs", "list"])
        XCTAssertEqual(list["object"] as? String, "list")
        XCTAssertEqual((list["data"] as? [[String: Any]])?.count, 1)
    }

    func testInvalidDataIsRefusedAtSubmissionNamingFileAndLine() throws {
        let bad = scratch.appendingPathComponent("bad.jsonl")
        try Data("{\"text\": \"fine\"}\n{\"text\": oops}\n".utf8).write(to: bad)
        let r = try lora(["jobs", "submit", "--task", "t", "--model", model.path, "--data", bad.path], expectFailure: true)
        XCTAssertTrue(r.stderr.contains(bad.path) && r.stderr.contains("2"), r.stderr)
        XCTAssertEqual((try json(["jobs", "list"])["data"] as? [Any])?.count, 0, "nothing queued")
        let unknown = try lora(["jobs", "submit", "--task", "t", "--base", "nope", "--data", trainData.path], expectFailure: true)
        XCTAssertTrue(unknown.stderr.contains("nope"), unknown.stderr)
        XCTAssertEqual((try json(["jobs", "list"])["data"] as? [Any])?.count, 0, "nothing queued")
        // --model registers the base under its directory name; --base then names it.
        _ = try submit("t", hyper(steps: 1))
        XCTAssertEqual((try json(["models", "list"])["data"] as? [[String: Any]])?.compactMap { $0["name"] as? String }, ["tiny-llama-tied"])
        let j = try json(["jobs", "submit", "--task", "t", "--base", "tiny-llama-tied", "--data", trainData.path] + hyper(steps: 1))
        XCTAssertEqual(j["base"] as? String, "tiny-llama-tied")
        XCTAssertEqual((try json(["jobs", "list", "--status", "queued"])["data"] as? [Any])?.count, 2)
    }

    func testSeveralWorkerProcessesNeverRunTheSameJob() throws {
        let ids = try (0..<6).map { _ in try submit("race", hyper(steps: 3)) }
        let workers = try (0..<3).map { _ in try startWorker(["--once", "--poll-interval", "0.1"], stepDelayMS: 50) }
        for w in workers { waitExit(w); XCTAssertEqual(w.terminationStatus, 0) }
        var versions: [Int] = []
        for id in ids {
            let j = try job(id)
            XCTAssertEqual(j["status"] as? String, "succeeded", "job \(id): \(j)")
            XCTAssertEqual(j["attempt"] as? Int, 1, "job \(id) was claimed once")
            versions.append(j["version"] as? Int ?? -1)
            XCTAssertEqual(try messages(id).filter { $0.hasPrefix("claimed by") }.count, 1)
        }
        XCTAssertEqual(versions.sorted(), Array(1...6))
    }

    func testFailingJobRetriesWithBackoffThenFailsKeepingItsError() throws {
        let copy = scratch.appendingPathComponent("doomed-model")
        try FileManager.default.copyItem(at: model, to: copy)
        let j0 = try json(["jobs", "submit", "--task", "doomed", "--model", copy.path, "--data", trainData.path,
                           "--max-attempts", "2"] + hyper(steps: 2))
        let id = try XCTUnwrap(j0["id"] as? Int)
        try FileManager.default.removeItem(at: copy)
        let w = try startWorker(["--once", "--poll-interval", "0.1", "--retry-backoff", "0.3"])
        waitExit(w)
        let j = try job(id)
        XCTAssertEqual(j["status"] as? String, "failed")
        XCTAssertEqual(j["attempt"] as? Int, 2)
        let error = try XCTUnwrap(j["error"] as? String)
        XCTAssertTrue(error.contains("doomed-model"), error)
        XCTAssertTrue(j["version"] is NSNull)
        let msgs = try messages(id)
        XCTAssertTrue(msgs.contains { $0.hasPrefix("attempt 1 failed (retry in") }, "\(msgs)")
        XCTAssertTrue(msgs.contains { $0.hasPrefix("failed: ") }, "\(msgs)")
    }

    func testCancelStopsARunningJobWithinOneStepAndAQueuedJobAtOnce() throws {
        let queued = try submit("cancel-me", hyper(steps: 2))
        XCTAssertEqual(try json(["jobs", "cancel", String(queued)])["status"] as? String, "cancelled")
        let id = try submit("cancel-me", hyper(steps: 500, checkpointEvery: 1000))
        let w = try startWorker(["--once", "--poll-interval", "0.1"], stepDelayMS: 100)
        func stepsSeen() throws -> [Int] {
            try events(id).filter { $0["type"] as? String == "metrics" }.compactMap { ($0["data"] as? [String: Any])?["step"] as? Int }
        }
        try waitUntil("the job to train a few steps") { try stepsSeen().count >= 3 }
        XCTAssertEqual(try json(["jobs", "cancel", String(id)])["status"] as? String, "cancelled")
        waitExit(w, timeout: 30)
        // Events are ordered: at most the step in flight when the cancel landed reports after it.
        let all = try events(id)
        let cancelAt = try XCTUnwrap(all.firstIndex { ($0["message"] as? String ?? "").hasPrefix("cancelled by") })
        let stepsAfter = all[(cancelAt + 1)...].filter { $0["type"] as? String == "metrics" }.count
        XCTAssertLessThanOrEqual(stepsAfter, 1, "stopped within one optimizer step of the cancel")
        XCTAssertLessThan(try stepsSeen().max() ?? 0, 500)
        let j = try job(id)
        XCTAssertEqual(j["status"] as? String, "cancelled")
        XCTAssertTrue(j["version"] is NSNull)
        XCTAssertTrue(try messages(id).contains { $0.contains("stopped: cancelled") })
        XCTAssertEqual(try job(queued)["attempt"] as? Int, 0, "a job cancelled while queued never runs")
    }

    func testAutoPromoteMovesProductionAndTheEvalGateKeepsItOnWorseVersions() throws {
        let eval = ["--eval-data", trainData.path]
        func run(_ extra: [String]) throws -> Int {
            let id = try submit("promo", extra)
            let w = try startWorker(["--once", "--poll-interval", "0.1"])
            waitExit(w)
            XCTAssertEqual(try job(id)["status"] as? String, "succeeded")
            return try job(id)["version"] as? Int ?? -1
        }
        func evalLoss(_ v: Int) throws -> Double {
            try XCTUnwrap((try version("promo@\(v)")["metrics"] as? [String: Any])?["eval_loss"] as? Double)
        }
        // 1: trained well, auto-promoted.
        XCTAssertEqual(try run(hyper(steps: 12, lr: "1e-2") + eval + ["--auto-promote"]), 1)
        XCTAssertEqual(try aliases("promo")["production"], 1)
        // 2: barely trained (worse eval loss), gated: production stays.
        XCTAssertEqual(try run(hyper(steps: 1, lr: "1e-7") + eval + ["--auto-promote", "--promote-if-better"]), 2)
        XCTAssertGreaterThan(try evalLoss(2), try evalLoss(1))
        XCTAssertEqual(try aliases("promo")["production"], 1)
        XCTAssertEqual(try aliases("promo")["latest"], 2)
        // 3: trained longer (better), gated: production moves.
        XCTAssertEqual(try run(hyper(steps: 24, lr: "1e-2") + eval + ["--auto-promote", "--promote-if-better"]), 3)
        XCTAssertLessThanOrEqual(try evalLoss(3), try evalLoss(1))
        XCTAssertEqual(try aliases("promo")["production"], 3)
        // 4: no --auto-promote: production stays.
        XCTAssertEqual(try run(hyper(steps: 24, lr: "1e-2") + eval), 4)
        XCTAssertEqual(try aliases("promo")["production"], 3)
        // 5: worse, auto-promoted without the gate: production moves anyway.
        XCTAssertEqual(try run(hyper(steps: 1, lr: "1e-7") + eval + ["--auto-promote"]), 5)
        XCTAssertEqual(try aliases("promo")["production"], 5)
        let history = try json(["history", "promo"])["data"] as? [[String: Any]] ?? []
        XCTAssertTrue(history.contains { $0["alias"] as? String == "production" && $0["to_version"] as? Int == 3 && $0["action"] as? String == "auto" })
    }
}
