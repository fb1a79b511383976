import Diagnostics
import Foundation
import Kernels
import Logging
import Model
import Registry
import Training

/// `lora worker`: claims jobs (FOR UPDATE SKIP LOCKED), trains them through TrainingService,
/// heartbeats from a separate thread, uploads checkpoints so any worker can resume a job whose
/// worker died, and registers the result as the task's next version.
///
/// Each job has its own connections (one for its events, checkpoints and finish, one for the
/// heartbeat). Liveness is the heartbeat only: a job runs as long as it needs.
public final class JobWorker: @unchecked Sendable {
    public struct Options: Sendable {
        /// Jobs run at once by this process.
        public var concurrency = 1
        /// Each slot's thread budget (its jobs run under this `ComputeContext`); nil: the process default.
        public var threads: Int?
        /// Exit once no job is queued or running, instead of waiting for more.
        public var once = false
        /// A running job whose heartbeat is older than this (seconds) is rescued by a worker.
        public var heartbeatTimeout: Double = 60
        /// Seconds between heartbeats (default: a third of the timeout, at most 5).
        public var heartbeatInterval: Double?
        /// Seconds between claims while the queue is empty (a NOTIFY wakes the worker earlier).
        public var pollInterval: Double = 2
        /// A failed attempt waits retryBackoff * 2^(attempt-1) seconds before the next.
        public var retryBackoff: Double = 10
        /// Sleep after every optimizer step (tests use it to kill a worker mid-job).
        public var stepDelay: Double = 0
        /// Asked between claims and after every micro-batch: true stops the worker gracefully
        /// (running jobs store a checkpoint and go back to the queue with their attempt unused).
        public var shouldExit: @Sendable () -> Bool = { false }
        /// Where jobs' data, checkpoints and adapters are written while they run.
        public var workDirectory: URL
        /// Where a claimed job runs: in a child process (the default for `lora worker` and
        /// `lora serve --workers`; a crash or an exhausted memory limit ends the attempt, never
        /// the worker), or in this process (library callers and tests of the queue discipline).
        public var isolation: Isolation = .inProcess
        /// A job whose estimated memory (TrainingSettings.estimatedMemory) is above this fails
        /// without starting; in a child process it is also the process's address-space limit.
        public var maxJobMemory = JobWorker.defaultMaxJobMemory
        public init(workDirectory: URL) { self.workDirectory = workDirectory }

        var interval: Double { heartbeatInterval ?? max(0.2, min(5, heartbeatTimeout / 3)) }
    }

    /// `--max-job-memory`'s default: 8 GiB, a third of a 24 GiB machine and eight times what a
    /// default-settings job on the 135M default model reserves (measured: 0.9 GB of address space).
    public static let defaultMaxJobMemory = 8 << 30
    /// Below this no job starts: the runtime, BLAS buffers and malloc arenas reserve about 0.5 GB.
    public static let minimumJobMemory = 1 << 30

    public let jobs: JobService
    public let options: Options
    var registry: RegistryService { jobs.registry }
    var store: JobStore { jobs.store }
    var logger: Logger { registry.logger }

    public init(jobs: JobService, options: Options) {
        self.jobs = jobs
        self.options = options
    }

    /// Runs `concurrency` slots until they end (only with `once`) and returns the number of
    /// jobs processed. The first slot error (a lost database, say) is rethrown.
    @discardableResult
    public func run() throws -> Int {
        final class Outcome: @unchecked Sendable {
            let lock = NSLock()
            var processed = 0
            var firstError: Error?
        }
        let outcome = Outcome()
        let done = DispatchSemaphore(value: 0)
        let slots = max(1, options.concurrency)
        let compute = options.threads.map(ComputeContext.init(threads:)) ?? ComputeContext.processDefault
        for slot in 0..<slots {
            let t = Thread { [self] in
                do {
                    let n = try ComputeContext.run(compute) { try runSlot(slot) }
                    outcome.lock.lock(); outcome.processed += n; outcome.lock.unlock()
                } catch {
                    logger.error("worker slot \(slot): \(error)")
                    outcome.lock.lock(); if outcome.firstError == nil { outcome.firstError = error }; outcome.lock.unlock()
                }
                done.signal()
            }
            t.stackSize = 64 << 20
            t.start()
        }
        for _ in 0..<slots { done.wait() }
        if let e = outcome.firstError { throw e }
        return outcome.processed
    }

    func workerName(_ slot: Int) -> String {
        "\(ProcessInfo.processInfo.hostName):\(getpid()):\(slot)"
    }

    func runSlot(_ slot: Int) throws -> Int {
        let name = workerName(slot)
        let conn = try Connection(registry.pool.conninfo)
        try conn.listen(JobStore.queuedChannel)
        var processed = 0
        while !options.shouldExit() {
            if let job = try store.claim(worker: name, heartbeatTimeout: options.heartbeatTimeout, on: conn) {
                logger.info("\(name): job \(job.id) attempt \(job.attempt)")
                process(job, worker: name)
                processed += 1
                continue
            }
            if options.once, try !store.hasPendingWork(on: conn) { return processed }
            _ = try conn.waitForNotification(timeout: options.pollInterval)
        }
        return processed
    }

    // MARK: - One job

    /// Set by the heartbeat thread (job no longer ours: cancelled or rescued elsewhere), read
    /// by the trainer after every micro-batch.
    /// In a worker running jobs in child processes, the child's pid is registered here so a
    /// stop (cancel, rescue) and a worker shutdown reach it as signals.
    final class Control: @unchecked Sendable {
        private let lock = NSLock()
        private var _stop = false, _done = false, _shutdownSent = false
        private var child: pid_t = 0
        /// Also consulted by `stopRequested` (a child process's SIGUSR1 flag).
        private let external: @Sendable () -> Bool
        init(external: @escaping @Sendable () -> Bool = { false }) { self.external = external }
        var stopRequested: Bool { lock.lock(); defer { lock.unlock() }; return _stop || external() }
        var done: Bool { lock.lock(); defer { lock.unlock() }; return _done }
        func stop() {
            lock.lock(); defer { lock.unlock() }
            _stop = true
            if child > 0 { kill(child, JobChild.stopSignal) }
        }
        func finish() { lock.lock(); _done = true; lock.unlock() }
        /// Registers the running child; a stop requested before it started is sent at once.
        func attach(child pid: pid_t) {
            lock.lock(); defer { lock.unlock() }
            child = pid
            if _stop { kill(pid, JobChild.stopSignal) }
        }
        func detach() { lock.lock(); child = 0; lock.unlock() }
        /// The worker is shutting down: the child checkpoints and returns its job (sent once).
        func forwardShutdown() {
            lock.lock(); defer { lock.unlock() }
            guard child > 0, !_shutdownSent else { return }
            _shutdownSent = true
            kill(child, SIGTERM)
        }
    }

    struct JobLost: Error, CustomStringConvertible {
        let reason: String
        var description: String { reason }
    }

    func process(_ job: ClaimedJob, worker: String) {
        let control = Control()
        let heartbeatDone = DispatchSemaphore(value: 0)
        let hb = Thread { [self] in
            heartbeatLoop(job, control: control)
            heartbeatDone.signal()
        }
        hb.start()
        defer {
            control.finish()
            heartbeatDone.wait()
        }
        do {
            // A job whose settings need more memory than this worker allows fails here, before any
            // memory is reserved (another worker with a larger limit may take its next attempt).
            let hp = try JobHyperparameters.from(job.record.hyperparameters)
            if let config = try jobs.baseConfig(job.record.base) {
                try JobService.checkMemory(hp, config: config, limit: options.maxJobMemory, flag: "this worker's --max-job-memory")
            }
        } catch {
            let backoff = options.retryBackoff * pow(2, Double(max(0, job.attempt - 1)))
            logger.error("job \(job.id) attempt \(job.attempt) refused: \(error)")
            _ = try? registry.pool.withConnection {
                try store.markFailed(job: job.id, attempt: job.attempt, error: ErrorText.describe(error), backoff: backoff, on: $0)
            }
            return
        }
        switch options.isolation {
        case .inProcess: run(job, control: control)
        case let .childProcess(child): runInChild(job, worker: worker, child: child, control: control)
        }
    }

    /// Runs the attempt in this process: trains, registers, and records how it ended (failed,
    /// stopped, or returned to the queue) under the attempt's guard.
    func run(_ job: ClaimedJob, control: Control) {
        let work = options.workDirectory.appendingPathComponent("job-\(job.id)-a\(job.attempt)-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(at: work) }
        let conn: Connection
        do { conn = try Connection(registry.pool.conninfo) } catch {
            logger.error("job \(job.id): cannot connect: \(error)")
            return
        }
        do {
            let result = try train(job, work: work, control: control, conn: conn)
            try finish(job, result: result, conn: conn)
        } catch let e where e is Trainer.Interrupted && options.shouldExit() && !control.stopRequested {
            // Shutting down: the checkpoint just stored is where the next worker resumes.
            let released = (try? store.release(job: job.id, attempt: job.attempt, on: conn)) ?? false
            logger.info("job \(job.id) attempt \(job.attempt) \(released ? "returned to the queue" : "stopped") (worker shutting down)")
        } catch let e where e is Trainer.Interrupted || control.stopRequested {
            let state = (try? store.job(id: job.id, on: conn))??.status
            let why = state == .cancelled ? "cancelled" : "no longer this worker's (rescued elsewhere)"
            logger.info("job \(job.id) attempt \(job.attempt) stopped: \(why)")
            try? store.addEvent(job: job.id, attempt: job.attempt, level: .warning, type: .message,
                                message: "attempt \(job.attempt) stopped: \(why)", on: conn)
        } catch {
            let backoff = options.retryBackoff * pow(2, Double(max(0, job.attempt - 1)))
            logger.error("job \(job.id) attempt \(job.attempt) failed: \(error)")
            _ = try? store.markFailed(job: job.id, attempt: job.attempt, error: ErrorText.describe(error), backoff: backoff, on: conn)
        }
    }

    func heartbeatLoop(_ job: ClaimedJob, control: Control) {
        guard let conn = try? Connection(registry.pool.conninfo) else { return }
        try? conn.listen(JobStore.cancelChannel)
        var next = Date().addingTimeInterval(options.interval)
        while !control.done {
            if options.shouldExit() { control.forwardShutdown() }
            let wait = min(0.25, max(0, next.timeIntervalSinceNow))
            if let n = try? conn.waitForNotification(timeout: wait), n.payload == String(job.id) {
                next = Date() // check now
            }
            guard Date() >= next, !control.done else { continue }
            next = Date().addingTimeInterval(options.interval)
            do {
                if try !store.heartbeat(job: job.id, attempt: job.attempt, on: conn) { control.stop() }
            } catch {
                logger.warning("job \(job.id): heartbeat failed: \(error)")
            }
        }
    }

    func train(_ job: ClaimedJob, work: URL, control: Control, conn: Connection) throws -> TrainingService.Result {
        let rec = job.record
        let hp = try JobHyperparameters.from(rec.hyperparameters)
        let fm = FileManager.default
        try fm.createDirectory(at: work, withIntermediateDirectories: true)
        let dataURL = work.appendingPathComponent(rec.dataName.isEmpty ? "data.jsonl" : "train-" + rec.dataName)
        try Data(job.data).write(to: dataURL)
        var evalURL: URL?
        if let e = job.evalData {
            evalURL = work.appendingPathComponent("eval-" + (rec.evalDataName ?? "data.jsonl"))
            try Data(e).write(to: evalURL!)
        }
        let output = work.appendingPathComponent("output")
        try fm.createDirectory(at: output, withIntermediateDirectories: true)
        var resume = false
        if let cp = try store.latestCheckpoint(job: rec.id, on: conn) {
            let tar = work.appendingPathComponent("resume.tar")
            try store.fetchCheckpoint(cp, to: tar, on: conn)
            let name = cp.micro > 0 ? "checkpoint-\(cp.step)-\(cp.micro)" : "checkpoint-\(cp.step)"
            try AdapterArchive.extract(tar, to: output.appendingPathComponent(name))
            try? fm.removeItem(at: tar)
            resume = true
            try store.addEvent(job: rec.id, attempt: rec.attempt, type: .message, message: "resuming from checkpoint at step \(cp.step)",
                               data: .object(["step": .number(Double(cp.step)), "micro": .number(Double(cp.micro))]), on: conn)
        }
        let base = try registry.baseModel(named: rec.base)
        guard let quant = QuantizationMode(rawValue: hp.quant) else {
            throw ModelError.invalidArgument("job \(rec.id): unknown quantization '\(hp.quant)'")
        }
        // A base registered by URL is fetched (verified against its registered sha256) on this machine.
        let lm = try LanguageModel.load(path: RegistryService.localPath(of: base).path, quantization: quant)
        var request = TrainingService.Request(data: dataURL, evalData: evalURL, output: output, settings: hp.settings, initAdapter: nil)
        request.checkpointEvery = hp.checkpointEvery
        request.keepCheckpoints = 1
        request.resume = resume
        let exit = options.shouldExit
        request.shouldStop = { control.stopRequested || exit() }
        let delay = options.stepDelay
        var eventError: Error?
        let result = try TrainingService(model: lm).train(request) { event in
            do {
                switch event {
                case let .step(r):
                    try store.addEvent(job: rec.id, attempt: rec.attempt, type: .metrics, data: .object([
                        "step": .number(Double(r.step)), "total_steps": .number(Double(r.total_steps)), "loss": .number(r.loss),
                        "lr": .number(Double(r.lr)), "grad_norm": .number(Double(r.grad_norm)),
                        "tokens_per_s": .number(r.tokens_per_s), "tokens": .number(Double(r.tokens)),
                    ]), on: conn)
                    if delay > 0 { Thread.sleep(forTimeInterval: delay) }
                case let .eval(step, loss, accuracy):
                    var d: [String: JSONValue] = ["step": .number(Double(step)), "eval_loss": .number(loss)]
                    if let accuracy { d["eval_accuracy"] = .number(accuracy) }
                    try store.addEvent(job: rec.id, attempt: rec.attempt, type: .metrics, data: .object(d), on: conn)
                case let .skipped(step, reason):
                    try store.addEvent(job: rec.id, attempt: rec.attempt, level: .warning, type: .message,
                                       message: "step \(step) skipped (--max-bad-steps): \(reason)",
                                       data: .object(["skipped_step": .number(Double(step))]), on: conn)
                case let .checkpoint(dir):
                    // Stored only while the job is still this attempt's (not cancelled or rescued).
                    try upload(checkpoint: dir, job: job, work: work, conn: conn)
                }
            } catch {
                // A lost database connection surfaces at the next claim or finish; note it once.
                if eventError == nil { eventError = error; logger.warning("job \(rec.id): \(error)") }
            }
        }
        if let eventError, !conn.isHealthy { throw eventError }
        return result
    }

    func upload(checkpoint dir: URL, job: ClaimedJob, work: URL, conn: Connection) throws {
        let parts = dir.lastPathComponent.dropFirst("checkpoint-".count).split(separator: "-").compactMap { Int($0) }
        guard let step = parts.first else { return }
        let micro = parts.count > 1 ? parts[1] : 0
        let names = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { !$0.hasPrefix(".") }.sorted()
        let tar = work.appendingPathComponent("upload.tar")
        defer { try? FileManager.default.removeItem(at: tar) }
        try AdapterArchive.write(directory: dir, names: names, to: tar)
        if try store.saveCheckpoint(job: job.id, attempt: job.attempt, step: step, micro: micro, archive: tar, on: conn) {
            try store.addEvent(job: job.id, attempt: job.attempt, type: .message, message: "checkpoint at step \(step) stored",
                               data: .object(["checkpoint_step": .number(Double(step))]), on: conn)
        }
    }

    /// Registers the adapter as the task's next version and finishes the job, in one
    /// transaction that first checks the job is still this attempt's.
    func finish(_ job: ClaimedJob, result: TrainingService.Result, conn: Connection) throws {
        let rec = job.record
        let prepared = try registry.prepareAdapter(directory: result.adapter, task: rec.task, base: rec.base)
        defer { prepared.discard() }
        var metrics: [String: Double] = ["steps": Double(result.steps), "tokens_per_s": result.tokensPerSecond]
        if let l = result.trainLoss { metrics["train_loss"] = l }
        if let l = result.evalLoss { metrics["eval_loss"] = l }
        let actor = "job \(rec.id)"
        let lineage = Lineage(jobID: rec.id, dataSHA256: rec.dataSHA256, hyperparameters: rec.hyperparameters)
        let outcome: (VersionRecord, String)? = try conn.withTransaction { c in
            guard try store.lockIfOwned(job: rec.id, attempt: rec.attempt, on: c) else { return nil }
            let v = try registry.register(prepared, task: rec.task, metrics: metrics, lineage: lineage, actor: actor, on: c)
            var note = "registered \(v.reference)"
            if rec.autoPromote {
                var promote = true
                if rec.promoteIfBetter, let current = try store.production(task: rec.task, on: c) {
                    if let mine = result.evalLoss, let theirs = current.evalLoss {
                        promote = mine <= theirs
                        note += String(format: "; eval loss %.6f vs production's %.6f (version %d)", mine, theirs, current.version)
                    } else {
                        promote = false
                        note += "; production (version \(current.version)) has no eval loss to compare"
                    }
                }
                if promote {
                    try registry.store.promote(task: rec.task, version: v.version, alias: Names.production, actor: actor,
                                               reason: "auto-promoted by job \(rec.id)", action: .auto, on: c)
                    note += "; production -> \(v.version)"
                } else {
                    note += "; production not moved"
                }
            }
            guard try store.markSucceeded(job: rec.id, attempt: rec.attempt, version: v.version, on: c) else {
                throw JobLost(reason: "job \(rec.id) changed state while finishing")
            }
            try store.addEvent(job: rec.id, attempt: rec.attempt, type: .message, message: "succeeded: " + note,
                               data: .object(["version": .number(Double(v.version))]), on: c)
            return (v, note)
        }
        if let (_, note) = outcome {
            logger.info("job \(rec.id): \(note)")
        } else {
            logger.warning("job \(rec.id) attempt \(rec.attempt): no longer this worker's; result discarded")
        }
    }
}
