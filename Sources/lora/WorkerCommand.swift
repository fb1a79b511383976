import ArgumentParser
import Foundation
import Kernels
import Registry
import Service

/// `lora worker`: runs queued jobs.
struct WorkerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker", abstract: "Run queued fine-tune jobs: claim, train with checkpoints, register the result.")
    @Option(help: "Jobs run at once.") var concurrency: Int = 1
    @Option(help: "Threads each job may use, OpenBLAS's included (default: cores / --concurrency).") var threads: Int?
    @Flag(help: "Exit once no job is queued or running (instead of waiting for more).") var once = false
    @Option(help: "Seconds without a heartbeat after which a running job is taken over.") var heartbeatTimeout: Double = 60
    @Option(help: "Seconds between heartbeats (default: a third of the timeout, at most 5).") var heartbeatInterval: Double?
    @Option(help: "Seconds between looks at an empty queue.") var pollInterval: Double = 2
    @Option(help: "Seconds before retrying a failed attempt, doubled at each further attempt.") var retryBackoff: Double = 10
    @Option(help: ArgumentHelp("Memory limit of each job's process (bytes; K/M/G/T suffixes): its address space (RLIMIT_AS). "
                               + "A job whose estimated memory is larger fails without starting.", valueName: "bytes"))
    var maxJobMemory = ByteSize(bytes: JobWorker.defaultMaxJobMemory)
    @Flag(help: .hidden) var inProcess = false
    @OptionGroup var registry: RegistryOptions

    func validate() throws {
        if concurrency < 1 { throw ValidationError("--concurrency must be >= 1, got \(concurrency)") }
        if let t = threads, t < 1 { throw ValidationError("--threads must be at least 1, got \(t)") }
        if heartbeatTimeout <= 0 { throw ValidationError("--heartbeat-timeout must be > 0") }
        if let i = heartbeatInterval, i <= 0 || i >= heartbeatTimeout {
            throw ValidationError("--heartbeat-interval must be > 0 and below --heartbeat-timeout")
        }
        if pollInterval <= 0 || retryBackoff < 0 { throw ValidationError("--poll-interval must be > 0 and --retry-backoff >= 0") }
        if maxJobMemory.bytes < JobWorker.minimumJobMemory {
            throw ValidationError("--max-job-memory must be at least \(ByteSize(bytes: JobWorker.minimumJobMemory)), got \(maxJobMemory)")
        }
    }

    func run() throws {
        // Each job's thread budget (its ComputeContext); OpenBLAS's process-wide count is the same.
        let perJob = threads ?? max(1, ComputeContext.cores / concurrency)
        Parallel.configure(threads: perJob)
        let jobs = try registry.openJobs()
        var options = JobWorker.Options(workDirectory: registry.configuration.dataDirectory.appendingPathComponent("worker"))
        options.concurrency = concurrency
        options.threads = perJob
        options.once = once
        options.heartbeatTimeout = heartbeatTimeout
        options.heartbeatInterval = heartbeatInterval
        options.pollInterval = pollInterval
        options.retryBackoff = retryBackoff
        options.maxJobMemory = maxJobMemory.bytes
        if !inProcess {
            options.isolation = .childProcess(try JobRunCommand.child(registry: registry, threads: perJob, memoryLimit: maxJobMemory.bytes))
        }
        // Test hook: slows each optimizer step so a test can kill the worker mid-job.
        if let ms = ProcessInfo.processInfo.environment["LORA_WORKER_STEP_DELAY_MS"].flatMap(Double.init) {
            options.stepDelay = ms / 1000
        }
        // SIGINT / SIGTERM: running jobs checkpoint and return to the queue, then the worker exits.
        StopSignal.install()
        options.shouldExit = { StopSignal.requested }
        let n = try JobWorker(jobs: jobs, options: options).run()
        if registry.json {
            struct Done: Encodable { let processed: Int }
            try printJSON(Done(processed: n))
        } else {
            FileHandle.standardError.write(Data("worker: \(n) job(s) processed\n".utf8))
        }
    }
}

/// `lora job-run` (hidden): runs one claimed attempt of a job, started by `lora worker` in a process
/// of its own so a crash or an exhausted memory limit takes this process, never the worker.
struct JobRunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "job-run", abstract: "Run one claimed attempt of a job (started by lora worker).", shouldDisplay: false)
    @Option var jobId: Int
    @Option var attempt: Int
    @Option var threads: Int = 1
    @Option var memoryLimit: Int?
    @Option var parentPid: Int32?
    @OptionGroup var registry: RegistryOptions

    /// How a worker starts this command: its own binary, the registry's data directory, the thread budget.
    static func child(registry: RegistryOptions, threads: Int, memoryLimit: Int) throws -> JobWorker.ChildProcess {
        let exe = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        return JobWorker.ChildProcess(
            executable: exe, arguments: ["job-run", "--data-dir", registry.configuration.dataDirectory.path, "--threads", String(threads)],
            environment: ProcessInfo.processInfo.environment, memoryLimit: memoryLimit)
    }

    func run() throws {
        // First, before anything is loaded: the limit covers everything this process allocates.
        if let memoryLimit { try JobChild.limitAddressSpace(bytes: memoryLimit) }
        Parallel.configure(threads: max(1, threads))
        StopSignal.install()
        JobChild.installStopHandler()
        let jobs = try registry.openJobs()
        var options = JobWorker.Options(workDirectory: registry.configuration.dataDirectory.appendingPathComponent("worker"))
        let env = ProcessInfo.processInfo.environment
        if let ms = env["LORA_WORKER_STEP_DELAY_MS"].flatMap(Double.init) { options.stepDelay = ms / 1000 }
        options.shouldExit = { StopSignal.requested }
        try JobWorker(jobs: jobs, options: options).runAttempt(jobID: jobId, attempt: attempt, parent: parentPid) { job in
            try Self.testHooks(job, environment: env)
        }
    }

    /// Test-only hooks, honoured only when their variable is set: LORA_TEST_JOB_CRASH=TASK makes this
    /// process die of SIGSEGV before training a job of TASK; LORA_TEST_JOB_ALLOCATE=TASK:BYTES makes it
    /// allocate and touch BYTES first (an allocation its memory limit refuses).
    static func testHooks(_ job: ClaimedJob, environment env: [String: String]) throws {
        if env["LORA_TEST_JOB_CRASH"] == job.record.task {
            FileHandle.standardError.write(Data("crashing on purpose before training (LORA_TEST_JOB_CRASH=\(job.record.task))\n".utf8))
            raise(SIGSEGV)
        }
        if let spec = env["LORA_TEST_JOB_ALLOCATE"], let colon = spec.lastIndex(of: ":"), spec[..<colon] == job.record.task,
           let bytes = Int(spec[spec.index(after: colon)...]) {
            FileHandle.standardError.write(Data("allocating \(bytes) bytes on purpose (LORA_TEST_JOB_ALLOCATE)\n".utf8))
            let p = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
            // Touched, so the pages are real even without a limit on the address space.
            for i in stride(from: 0, to: bytes, by: 4096) { p.storeBytes(of: 1, toByteOffset: i, as: UInt8.self) }
            p.deallocate()
        }
    }
}
