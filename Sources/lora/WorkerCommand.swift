import ArgumentParser
import Foundation
import Kernels
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
    @OptionGroup var registry: RegistryOptions

    func validate() throws {
        if concurrency < 1 { throw ValidationError("--concurrency must be >= 1, got \(concurrency)") }
        if let t = threads, t < 1 { throw ValidationError("--threads must be at least 1, got \(t)") }
        if heartbeatTimeout <= 0 { throw ValidationError("--heartbeat-timeout must be > 0") }
        if let i = heartbeatInterval, i <= 0 || i >= heartbeatTimeout {
            throw ValidationError("--heartbeat-interval must be > 0 and below --heartbeat-timeout")
        }
        if pollInterval <= 0 || retryBackoff < 0 { throw ValidationError("--poll-interval must be > 0 and --retry-backoff >= 0") }
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
