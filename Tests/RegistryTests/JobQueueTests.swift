import Foundation
import Registry
import Service
import ServiceTestSupport
import TestSupport
import Training
import XCTest

/// The job queue tested directly (JobStore, JobService, JobWorker on a test database), without
/// subprocesses or sleeps: claims, rescue, guarded finishing updates, retries, cancel, release,
/// checkpoints, submission checks and one worker run end to end.
final class JobQueueTests: RegistryTestCase {
    let store = JobStore()
    var model: URL { TestPaths.fixture("models/tiny-llama-tied") }
    var trainData: URL { TestPaths.fixture("peft/train.jsonl") }

    func newJob(_ task: String = "summarize", maxAttempts: Int = 3) -> NewJob {
        let data = Array("{\"text\": \"hello\"}\n".utf8)
        return NewJob(task: task, base: "tiny", hyperparameters: .object([:]), dataName: "d.jsonl", data: data,
                      dataSHA256: ArtifactStore.sha256(Data(data)), maxAttempts: maxAttempts, actor: "tester")
    }

    override func setUpWithError() throws {
        try super.setUpWithError()
        try addTinyBase()   // the base model `tiny` that newJob() names
    }

    func withConnection<T>(_ body: (Connection) throws -> T) throws -> T { try service.pool.withConnection(body) }

    func status(_ id: Int) throws -> JobRecord.Status? { try withConnection { try store.job(id: id, on: $0)?.status } }

    // MARK: - JobStore

    func testAQueuedJobIsClaimedOnceAndFinishesOnlyWithItsOwnAttempt() throws {
        let job = try withConnection { try store.insert(newJob(), on: $0) }
        XCTAssertEqual(job.status, .queued)
        XCTAssertEqual(job.attempt, 0)
        let claimed = try XCTUnwrap(try withConnection { try store.claim(worker: "w1", heartbeatTimeout: 60, on: $0) })
        XCTAssertEqual(claimed.id, job.id)
        XCTAssertEqual(claimed.attempt, 1)
        XCTAssertEqual(claimed.record.worker, "w1")
        XCTAssertEqual(claimed.data, newJob().data)
        XCTAssertNil(try withConnection { try store.claim(worker: "w2", heartbeatTimeout: 60, on: $0) }, "one job, one claim")
        XCTAssertTrue(try withConnection { try store.heartbeat(job: job.id, attempt: 1, on: $0) })
        XCTAssertFalse(try withConnection { try store.heartbeat(job: job.id, attempt: 2, on: $0) }, "another attempt's heartbeat")
        XCTAssertFalse(try withConnection { try store.markSucceeded(job: job.id, attempt: 2, version: 1, on: $0) })
        XCTAssertEqual(try status(job.id), .running)
        XCTAssertTrue(try withConnection { try store.markSucceeded(job: job.id, attempt: 1, version: 7, on: $0) })
        let done = try XCTUnwrap(try withConnection { try store.job(id: job.id, on: $0) })
        XCTAssertEqual(done.status, .succeeded)
        XCTAssertEqual(done.version, 7)
        XCTAssertNotNil(done.finishedAt)
        XCTAssertFalse(try withConnection { try store.markSucceeded(job: job.id, attempt: 1, version: 8, on: $0) }, "final stays final")
        let messages = try withConnection { try store.events(job: job.id, on: $0) }.map(\.message)
        XCTAssertEqual(messages, ["queued by tester", "claimed by w1, attempt 1"])
    }

    func testConcurrentClaimersNeverShareAJob() throws {
        let ids = try (0..<6).map { _ in try withConnection { try store.insert(newJob(), on: $0).id } }
        let lock = NSLock()
        var claims: [Int] = []
        var errors: [Error] = []
        DispatchQueue.concurrentPerform(iterations: 8) { w in
            do {
                let conn = try db.connect()
                while let c = try store.claim(worker: "w\(w)", heartbeatTimeout: 60, on: conn) {
                    lock.lock(); claims.append(c.id); lock.unlock()
                }
            } catch {
                lock.lock(); errors.append(error); lock.unlock()
            }
        }
        XCTAssertTrue(errors.isEmpty, "\(errors)")
        XCTAssertEqual(claims.sorted(), ids, "every job claimed exactly once")
    }

    func testAnExpiredHeartbeatIsRescuedAndTheLateWorkerChangesNothing() throws {
        let job = try withConnection { try store.insert(newJob(), on: $0) }
        _ = try withConnection { try store.claim(worker: "late", heartbeatTimeout: 60, on: $0) }
        // A timeout of 0: any heartbeat is already expired, so the running job is claimable again.
        let rescued = try XCTUnwrap(try withConnection { try store.claim(worker: "rescuer", heartbeatTimeout: 0, on: $0) })
        XCTAssertEqual(rescued.id, job.id)
        XCTAssertEqual(rescued.attempt, 2)
        let cp = scratch.appendingPathComponent("cp.tar")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        try Data("checkpoint".utf8).write(to: cp)
        try withConnection { c in
            XCTAssertFalse(try store.heartbeat(job: job.id, attempt: 1, on: c))
            XCTAssertFalse(try store.saveCheckpoint(job: job.id, attempt: 1, step: 2, micro: 0, archive: cp, on: c))
            XCTAssertNil(try store.markFailed(job: job.id, attempt: 1, error: "late", backoff: 0, on: c))
            XCTAssertFalse(try store.markSucceeded(job: job.id, attempt: 1, version: 1, on: c))
            XCTAssertFalse(try store.release(job: job.id, attempt: 1, on: c))
        }
        let rec = try XCTUnwrap(try withConnection { try store.job(id: job.id, on: $0) })
        XCTAssertEqual(rec.status, .running)
        XCTAssertEqual(rec.worker, "rescuer")
        XCTAssertNil(rec.error)
        XCTAssertNil(try withConnection { try store.latestCheckpoint(job: job.id, on: $0) })
        let rescueEvent = try withConnection { try store.events(job: job.id, on: $0) }.last
        XCTAssertEqual(rescueEvent?.message, "rescued by rescuer (heartbeat expired), attempt 2")
    }

    func testAFailedAttemptWaitsItsBackoffAndTheLastAttemptFailsKeepingTheError() throws {
        let job = try withConnection { try store.insert(newJob(maxAttempts: 2), on: $0) }
        _ = try withConnection { try store.claim(worker: "w", heartbeatTimeout: 60, on: $0) }
        XCTAssertEqual(try withConnection { try store.markFailed(job: job.id, attempt: 1, error: "boom 1", backoff: 3600, on: $0) }, .queued)
        XCTAssertNil(try withConnection { try store.claim(worker: "w", heartbeatTimeout: 60, on: $0) }, "still in its backoff")
        XCTAssertTrue(try withConnection { try store.hasPendingWork(on: $0) })
        // Backoff over (set by hand rather than waited for).
        try withConnection { try $0.execute("UPDATE jobs SET next_attempt_at = now() - interval '1 second' WHERE id = $1", [.int(job.id)]) }
        let second = try XCTUnwrap(try withConnection { try store.claim(worker: "w", heartbeatTimeout: 60, on: $0) })
        XCTAssertEqual(second.attempt, 2)
        XCTAssertEqual(second.record.error, "boom 1", "the previous error is kept while retrying")
        XCTAssertEqual(try withConnection { try store.markFailed(job: job.id, attempt: 2, error: "boom 2", backoff: 0, on: $0) }, .failed)
        let rec = try XCTUnwrap(try withConnection { try store.job(id: job.id, on: $0) })
        XCTAssertEqual(rec.status, .failed)
        XCTAssertEqual(rec.error, "boom 2")
        XCTAssertNotNil(rec.finishedAt)
        XCTAssertFalse(try withConnection { try store.hasPendingWork(on: $0) })
    }

    func testARunningJobOnItsLastAttemptWhoseWorkerDiedIsFailedNotRescued() throws {
        let job = try withConnection { try store.insert(newJob(maxAttempts: 1), on: $0) }
        _ = try withConnection { try store.claim(worker: "dead", heartbeatTimeout: 60, on: $0) }
        XCTAssertNil(try withConnection { try store.claim(worker: "other", heartbeatTimeout: 0, on: $0) })
        let rec = try XCTUnwrap(try withConnection { try store.job(id: job.id, on: $0) })
        XCTAssertEqual(rec.status, .failed)
        XCTAssertEqual(rec.error, "worker dead stopped heartbeating on the last attempt")
    }

    func testCancelStopsQueuedAndRunningJobsAndLeavesFinalOnesAlone() throws {
        let queued = try withConnection { try store.insert(newJob(), on: $0) }
        XCTAssertEqual(try withConnection { try store.cancel(id: queued.id, actor: "op", on: $0) }.status, .cancelled)
        let running = try withConnection { try store.insert(newJob(), on: $0) }
        let claim = try XCTUnwrap(try withConnection { try store.claim(worker: "w", heartbeatTimeout: 60, on: $0) })
        XCTAssertEqual(claim.id, running.id)
        XCTAssertEqual(try withConnection { try store.cancel(id: running.id, actor: "op", on: $0) }.status, .cancelled)
        XCTAssertFalse(try withConnection { try store.heartbeat(job: running.id, attempt: 1, on: $0) }, "the worker learns at its next heartbeat")
        XCTAssertFalse(try withConnection { try store.markSucceeded(job: running.id, attempt: 1, version: 1, on: $0) })
        XCTAssertEqual(try withConnection { try store.cancel(id: running.id, actor: "op", on: $0) }.status, .cancelled)
        let messages = try withConnection { try store.events(job: running.id, on: $0) }.map(\.message)
        XCTAssertEqual(messages.filter { $0 == "cancelled by op" }.count, 1, "a second cancel records nothing")
        XCTAssertThrowsError(try withConnection { try store.cancel(id: 999_999, actor: "op", on: $0) })
    }

    func testReleaseReturnsARunningJobWithoutSpendingItsAttempt() throws {
        let job = try withConnection { try store.insert(newJob(maxAttempts: 1), on: $0) }
        _ = try withConnection { try store.claim(worker: "w", heartbeatTimeout: 60, on: $0) }
        XCTAssertTrue(try withConnection { try store.release(job: job.id, attempt: 1, on: $0) })
        let rec = try XCTUnwrap(try withConnection { try store.job(id: job.id, on: $0) })
        XCTAssertEqual(rec.status, .queued)
        XCTAssertEqual(rec.attempt, 0)
        let again = try XCTUnwrap(try withConnection { try store.claim(worker: "w2", heartbeatTimeout: 60, on: $0) })
        XCTAssertEqual(again.attempt, 1, "the single attempt is still available")
    }

    func testTrainedTokensSumEachStepOnceTheNewestAttemptsCount() throws {
        let job = try withConnection { try store.insert(newJob(), on: $0) }
        let other = try withConnection { try store.insert(newJob(), on: $0) }
        func step(_ j: Int, attempt: Int, _ n: Int, tokens: Int) throws {
            try withConnection { try store.addEvent(job: j, attempt: attempt, type: .metrics, data: .object([
                "step": .number(Double(n)), "loss": .number(1), "tokens": .number(Double(tokens))]), on: $0) }
        }
        XCTAssertEqual(try withConnection { try store.trainedTokens(jobs: [job.id], on: $0) }, [:], "nothing trained yet")
        try step(job.id, attempt: 1, 1, tokens: 100)
        try step(job.id, attempt: 1, 2, tokens: 120)
        // An eval event at the same step carries no tokens and counts nothing.
        try withConnection { try store.addEvent(job: job.id, attempt: 1, type: .metrics, data: .object([
            "step": .number(2), "eval_loss": .number(1)]), on: $0) }
        // Attempt 2 resumed from the step-1 checkpoint: step 2 again (another batch order), then 3.
        try step(job.id, attempt: 2, 2, tokens: 90)
        try step(job.id, attempt: 2, 3, tokens: 80)
        try step(other.id, attempt: 1, 1, tokens: 7)
        XCTAssertEqual(try withConnection { try store.trainedTokens(jobs: [job.id, other.id], on: $0) }, [job.id: 100 + 90 + 80, other.id: 7])
    }

    func testCheckpointsAreStoredInChunksVerifiedAndOnlyTheNewestAreKept() throws {
        let job = try withConnection { try store.insert(newJob(), on: $0) }
        _ = try withConnection { try store.claim(worker: "w", heartbeatTimeout: 60, on: $0) }
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        // Larger than one 8 MiB chunk, so the archive spans two rows.
        var rng = TestRNG(seed: 5)
        let big = Data((0..<(9 << 20)).map { _ in UInt8(truncatingIfNeeded: rng.next() >> 40) })
        let first = scratch.appendingPathComponent("a.tar"), second = scratch.appendingPathComponent("b.tar")
        try Data("older".utf8).write(to: first)
        try big.write(to: second)
        XCTAssertTrue(try withConnection { try store.saveCheckpoint(job: job.id, attempt: 1, step: 2, micro: 0, archive: first, on: $0) })
        XCTAssertTrue(try withConnection { try store.saveCheckpoint(job: job.id, attempt: 1, step: 4, micro: 1, archive: second, on: $0) })
        let latest = try XCTUnwrap(try withConnection { try store.latestCheckpoint(job: job.id, on: $0) })
        XCTAssertEqual(latest.step, 4)
        XCTAssertEqual(latest.micro, 1)
        XCTAssertEqual(latest.size, big.count)
        XCTAssertEqual(latest.sha256, ArtifactStore.sha256(big))
        XCTAssertEqual(try withConnection { try store.checkpoints(job: job.id, on: $0) }.map(\.step), [4, 2], "both kept, newest first")
        // Past JobStore.keptCheckpoints (3), the oldest go: steps 6 and 8 push out step 2.
        for step in [6, 8] {
            XCTAssertTrue(try withConnection { try store.saveCheckpoint(job: job.id, attempt: 1, step: step, micro: 0, archive: first, on: $0) })
        }
        XCTAssertEqual(try withConnection { try store.checkpoints(job: job.id, on: $0) }.map(\.step), [8, 6, 4])
        XCTAssertEqual(try withConnection { try $0.execute("SELECT count(*) AS n FROM job_checkpoints WHERE job_id = $1", [.int(job.id)])[0].int("n") },
                       JobStore.keptCheckpoints)
        let out = scratch.appendingPathComponent("out.tar")
        try withConnection { try store.fetchCheckpoint(latest, to: out, on: $0) }
        XCTAssertEqual(try Data(contentsOf: out), big)
        // A damaged chunk is detected on fetch.
        try withConnection { try $0.execute("UPDATE job_checkpoint_chunks SET bytes = 'x'::bytea WHERE checkpoint_id = $1 AND seq = 1", [.int(latest.id)]) }
        XCTAssertThrowsError(try withConnection { try store.fetchCheckpoint(latest, to: out, on: $0) }) {
            guard case RegistryError.artifactCorrupt = $0 else { return XCTFail("\($0)") }
        }
    }

    // MARK: - JobService

    func hyperparameters(steps: Int) -> JobHyperparameters {
        var s = TrainingSettings()
        s.maxSteps = steps
        s.batchSize = 2
        s.lora.rank = 4
        s.learningRate = 1e-3
        return JobHyperparameters(settings: s, checkpointEvery: 1, quant: "auto")
    }

    func testSubmissionValidatesEverythingBeforeQueueing() throws {
        let jobs = JobService(registry: service)
        let bad = scratch.appendingPathComponent("bad.jsonl")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        try Data("{\"text\": \"ok\"}\n{\"txet\": \"typo\"}\n".utf8).write(to: bad)
        var s = JobService.Submission(task: "t1", base: nil, model: model, data: bad, evalData: nil, hyperparameters: hyperparameters(steps: 1))
        XCTAssertThrowsError(try jobs.submit(s)) { XCTAssertTrue("\($0)".contains("bad.jsonl") && "\($0)".contains("2"), "\($0)") }
        s.data = trainData
        s.task = "Not A Task!"
        XCTAssertThrowsError(try jobs.submit(s)) { XCTAssertTrue("\($0)".contains("Not A Task!"), "\($0)") }
        s.task = "t1"
        s.promoteIfBetter = true
        XCTAssertThrowsError(try jobs.submit(s)) { XCTAssertTrue("\($0)".contains("--auto-promote"), "\($0)") }
        s.promoteIfBetter = false
        s.base = "no-such-base"
        s.model = nil
        XCTAssertThrowsError(try jobs.submit(s))
        XCTAssertEqual(try jobs.jobs(), [], "nothing was queued by a refused submission")
        s.base = nil
        s.model = model
        let queued = try jobs.submit(s)
        XCTAssertEqual(queued.status, .queued)
        XCTAssertEqual(queued.base, "tiny-llama-tied", "a model given by path is registered under its directory name")
        XCTAssertEqual(try service.baseModel(named: "tiny-llama-tied").name, "tiny-llama-tied")
    }

    // MARK: - JobWorker

    func workerOptions() -> JobWorker.Options {
        var o = JobWorker.Options(workDirectory: scratch.appendingPathComponent("work"))
        o.once = true
        o.pollInterval = 0.1
        o.retryBackoff = 0
        return o
    }

    func testAWorkerRunsAQueuedJobToARegisteredVersionWithLineage() throws {
        let jobs = JobService(registry: service)
        let s = JobService.Submission(task: "tiny-task", base: nil, model: model, data: trainData, evalData: nil,
                                      hyperparameters: hyperparameters(steps: 2))
        let job = try jobs.submit(s)
        XCTAssertEqual(try JobWorker(jobs: jobs, options: workerOptions()).run(), 1)
        let done = try jobs.job(job.id)
        XCTAssertEqual(done.status, .succeeded, done.error ?? "")
        let version = try service.version("tiny-task@\(try XCTUnwrap(done.version))")
        XCTAssertEqual(version.jobID, job.id)
        XCTAssertEqual(version.dataSHA256, job.dataSHA256)
        XCTAssertEqual(version.base, "tiny-llama-tied")
        XCTAssertTrue(try jobs.events(job.id).contains { $0.type == .metrics }, "steps are reported as metrics events")
    }

    func testAJobWhoseBaseDisappearedFailsWithoutStoppingTheWorker() throws {
        let jobs = JobService(registry: service)
        // A copy of the base that is removed after submission: every attempt fails to load it.
        let copy = scratch.appendingPathComponent("vanishing-base")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: model, to: copy)
        var s = JobService.Submission(task: "doomed", base: nil, model: copy, data: trainData, evalData: nil,
                                      hyperparameters: hyperparameters(steps: 1))
        s.maxAttempts = 2
        let doomed = try jobs.submit(s)
        let fine = try jobs.submit(JobService.Submission(task: "fine", base: nil, model: model, data: trainData, evalData: nil,
                                                         hyperparameters: hyperparameters(steps: 1)))
        try FileManager.default.removeItem(at: copy)
        XCTAssertNoThrow(try JobWorker(jobs: jobs, options: workerOptions()).run())
        let failed = try jobs.job(doomed.id)
        XCTAssertEqual(failed.status, .failed)
        XCTAssertEqual(failed.attempt, 2, "both attempts were spent")
        XCTAssertNotNil(failed.error)
        XCTAssertEqual(try jobs.job(fine.id).status, .succeeded, "the other job ran in the same worker")
    }
}
