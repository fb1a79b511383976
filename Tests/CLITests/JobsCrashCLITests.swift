import Foundation
import TestSupport
import XCTest

/// A job can never take its worker down: each attempt runs in a process of its own, under the
/// worker's --max-job-memory, and a crash is a failed attempt naming the signal, with the last
/// lines of the job process's stderr in the job's events.
final class JobsCrashCLITests: JobsCLITestCase {
    func testACrashingJobFailsNamingItsSignalWhileTheHealthyJobBesideItSucceedsAndTheWorkerSurvives() throws {
        let crashing = try submit("crashing", hyper(steps: 3) + ["--max-attempts", "1"])
        let healthy = try submit("healthy", hyper(steps: 4))
        let w = try startWorker(["--once", "--concurrency", "2", "--poll-interval", "0.1"],
                                environment: ["LORA_TEST_JOB_CRASH": "crashing"])
        waitExit(w)
        XCTAssertEqual(w.terminationReason, .exit, "the worker was not killed")
        let log = try String(contentsOf: workerLog(w), encoding: .utf8)
        XCTAssertEqual(w.terminationStatus, 0, log)
        XCTAssertTrue(log.contains("worker: 2 job(s) processed"), log)

        let ok = try job(healthy)
        XCTAssertEqual(ok["status"] as? String, "succeeded", "\(ok)")
        XCTAssertEqual(ok["version"] as? Int, 1)

        let bad = try job(crashing)
        XCTAssertEqual(bad["status"] as? String, "failed", "\(bad)")
        let error = bad["error"] as? String ?? ""
        XCTAssertTrue(error.contains("killed by signal \(SIGSEGV) (SIGSEGV"), error)
        XCTAssertTrue(error.contains("crashing on purpose"), "the last line of its stderr: \(error)")
        let output = try events(crashing).first { ($0["message"] as? String ?? "").hasPrefix("job process output") }
        let data = output?["data"] as? [String: Any]
        XCTAssertEqual(data?["signal"] as? Int, Int(SIGSEGV), "\(String(describing: output))")
        XCTAssertTrue((data?["stderr"] as? [String] ?? []).contains { $0.contains("crashing on purpose before training") },
                      "\(String(describing: output))")
        let versions = try lora(["versions", "crashing"], expectFailure: true)
        XCTAssertTrue(versions.stderr.contains("no task named 'crashing'"), "nothing registered: \(versions.stderr)")
    }

    func testAJobPastTheWorkersMemoryLimitFailsAloneAndItsNextAttemptRunsAgain() throws {
        let greedy = try submit("greedy", hyper(steps: 2) + ["--max-attempts", "2"])
        // 4 GiB touched under a 2 GiB address-space limit: the allocation fails in the job's process.
        let w = try startWorker(["--once", "--poll-interval", "0.1", "--max-job-memory", "2G", "--retry-backoff", "0"],
                                environment: ["LORA_TEST_JOB_ALLOCATE": "greedy:\(4 << 30)"])
        waitExit(w)
        let log = try String(contentsOf: workerLog(w), encoding: .utf8)
        XCTAssertEqual(w.terminationStatus, 0, log)
        let j = try job(greedy)
        XCTAssertEqual(j["status"] as? String, "failed", "\(j)")
        XCTAssertEqual(j["attempt"] as? Int, 2, "both attempts ran and failed; the worker went on")
        XCTAssertTrue((j["error"] as? String ?? "").contains("killed by signal"), "\(j)")
        // Without the hook the same worker settings run the job: the limit leaves room for real work.
        let fine = try submit("fine", hyper(steps: 2))
        let w2 = try startWorker(["--once", "--poll-interval", "0.1", "--max-job-memory", "2G"])
        waitExit(w2)
        XCTAssertEqual(try job(fine)["status"] as? String, "succeeded")
    }

    func testAJobEstimatedOverTheMemoryLimitIsRefusedAtSubmissionAndByAWorkerWithLessMemory() throws {
        let r = try lora(["jobs", "submit", "--task", "huge", "--model", model.path, "--data", trainData.path,
                          "--batch-size", "4096"], expectFailure: true)
        XCTAssertTrue(r.stderr.contains("max-job-memory") && r.stderr.contains("batch-size 4096"), r.stderr)
        XCTAssertEqual((try json(["jobs", "list"])["data"] as? [Any])?.count, 0, "nothing queued")
        // Accepted for workers with 64 GiB, refused (not crashed) by a worker allowing 1 GiB.
        let id = try submit("big", hyper(steps: 1) + ["--batch-size", "64", "--max-job-memory", "64G", "--max-attempts", "1"])
        let w = try startWorker(["--once", "--poll-interval", "0.1", "--max-job-memory", "1G"])
        waitExit(w)
        XCTAssertEqual(w.terminationStatus, 0)
        let j = try job(id)
        XCTAssertEqual(j["status"] as? String, "failed")
        XCTAssertTrue((j["error"] as? String ?? "").contains("this worker's --max-job-memory 1073741824"), "\(j)")
        let bad = try lora(["worker", "--once", "--max-job-memory", "12x"], expectFailure: true)
        XCTAssertTrue(bad.stderr.contains("max-job-memory"), bad.stderr)
    }
}
