import ArgumentParser
import Foundation
import Kernels
import Logging
import Model
import Server
import Service

/// `lora serve`: one resident base model answering OpenAI-compatible requests, the adapter chosen
/// per request by its `model`; optionally job-worker slots in the same process.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve the base model and its tasks' adapters over an OpenAI-compatible HTTP API.",
        discussion: """
        Routes: POST /v1/completions, POST /v1/chat/completions (stream: true for server-sent events), \
        GET /v1/models, GET /metrics, GET /healthz, GET /readyz. A request's `model` is the base's id, \
        TASK (production, else latest), TASK@N or TASK@ALIAS. SIGTERM / SIGINT drain and exit 0.
        """)

    @Option(name: .long, help: "The base model: an HF directory, a .gguf file, or a URL of either.") var model: String?
    @Option(name: .long, help: "A registered base model's name (instead of --model).") var base: String?
    @Option(name: .customLong("model-name"), help: "The id the base is served under (with --model; default: a registered base with the same sha256, else the file name).")
    var modelName: String?
    @Option(name: .long, help: "How linear weights are held: auto, keep, nf4, int8, none.") var quant: QuantizationMode = .auto
    @OptionGroup var registry: RegistryOptions
    @Option(name: .long, help: "Address to listen on.") var host = "127.0.0.1"
    @Option(name: .long, help: "Port to listen on (0: any free port; the bound address is printed).") var port = 8080
    @Option(name: .customLong("max-running"), help: "Sequences decoded together at most.") var maxRunning = 8
    @Option(name: .customLong("max-queue"), help: "Requests waiting at most; beyond, 429 with Retry-After.") var maxQueue = 64
    @Option(name: .customLong("adapter-cache-mb"), help: "Loaded adapters kept, in MiB.") var adapterCacheMB = 256
    @Option(name: .long, help: "Threads serving may use (default: all cores, less what --workers take).") var threads: Int?
    @Option(name: .long, help: "Job-worker slots run in this process, as `lora worker --concurrency N` runs them.") var workers = 0
    @Option(name: .customLong("worker-threads"), help: "Threads each --workers slot may use (default: cores / (workers + 1), at least 1).")
    var workerThreads: Int?
    @Option(name: .customLong("max-job-memory"), help: ArgumentHelp("Memory limit of each --workers job's process (bytes; K/M/G/T suffixes), as in `lora worker`.", valueName: "bytes"))
    var maxJobMemory = ByteSize(bytes: JobWorker.defaultMaxJobMemory)
    @Option(name: .long, help: "Prompt-lookup draft tokens per step for requests that do not send `speculate` (0: off). Same output tokens.") var speculate = 0
    @Option(name: .customLong("lookup-ngram"), help: "Longest n-gram looked up for drafts, for requests that do not send `lookup_ngram`.") var lookupNgram = PromptLookup.defaultNgram
    @Option(name: .customLong("lookup-min-ngram"), help: "Shortest n-gram a draft may come from, for requests that do not send `lookup_min_ngram` (default \(PromptLookup.defaultMinNgram); a request's smaller `lookup_ngram` lowers it).") var lookupMinNgram: Int?
    @Option(name: .customLong("drain-timeout"), help: "Seconds SIGTERM waits for running sequences before cutting them.") var drainTimeout = 30.0
    @Option(name: .customLong("max-body-bytes"), help: "Request bodies beyond this are answered 413.") var maxBodyBytes = 4 << 20
    @Option(name: .customLong("max-header-bytes"), help: "Request headers beyond this are answered 431.") var maxHeaderBytes = 16 << 10
    @Option(name: .customLong("log-level"), help: "Least severe log line written to stderr: trace, debug, info, notice, warning, error or critical.")
    var logLevel: Logger.Level = .info
    @OptionGroup var api: ServeAPIOptions

    func validate() throws {
        if (model == nil) == (base == nil) { throw ValidationError("give --model SRC or --base NAME (exactly one)") }
        if registry.json { throw ValidationError("--json: lora serve has no JSON output (it prints its address, then logs)") }
        if modelName != nil && model == nil { throw ValidationError("--model-name names a --model; with --base the id is NAME") }
        if !(0...65535).contains(port) { throw ValidationError("--port must be in 0...65535, got \(port)") }
        for (flag, value, least) in [("--max-running", maxRunning, 1), ("--max-queue", maxQueue, 1), ("--adapter-cache-mb", adapterCacheMB, 1),
                                     ("--workers", workers, 0), ("--max-body-bytes", maxBodyBytes, 1024), ("--max-header-bytes", maxHeaderBytes, 1024)]
        where value < least {
            throw ValidationError("\(flag) must be at least \(least), got \(value)")
        }
        if let t = threads, t < 1 { throw ValidationError("--threads must be at least 1, got \(t)") }
        if !(0...PromptLookup.maxDraftTokens).contains(speculate) {
            throw ValidationError("--speculate must be in 0...\(PromptLookup.maxDraftTokens), got \(speculate)")
        }
        if !(1...PromptLookup.maxNgram).contains(lookupNgram) {
            throw ValidationError("--lookup-ngram must be in 1...\(PromptLookup.maxNgram), got \(lookupNgram)")
        }
        if let m = lookupMinNgram, !(1...lookupNgram).contains(m) {
            throw ValidationError("--lookup-min-ngram must be in 1...\(lookupNgram) (--lookup-ngram), got \(m)")
        }
        if let t = workerThreads {
            if workers == 0 { throw ValidationError("--worker-threads needs --workers N (job-worker slots in this process)") }
            if t < 1 { throw ValidationError("--worker-threads must be at least 1, got \(t)") }
        }
        if maxJobMemory.bytes < JobWorker.minimumJobMemory {
            throw ValidationError("--max-job-memory must be at least \(ByteSize(bytes: JobWorker.minimumJobMemory)), got \(maxJobMemory)")
        }
        if !(drainTimeout >= 0) { throw ValidationError("--drain-timeout must be >= 0, got \(drainTimeout)") }
    }

    func run() async throws {
        // Every logger of the process (server, registry, engine, workers) at --log-level.
        let level = logLevel
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "lora.serve")
        let metrics = ServerMetrics()
        metrics.bootstrapSystem()
        let budget = ServeBudget(threads: threads, workers: workers, workerThreads: workerThreads)
        Parallel.configure(threads: budget.serving.threads, blasThreads: budget.blasThreads)
        logger.info("thread budget: serving \(budget.serving)\(workers > 0 ? ", each of \(workers) worker slot(s) \(budget.worker)" : ""), OpenBLAS \(budget.blasThreads)")
        let registry = try self.registry.open()
        // Checked before the model loads: no listening beyond loopback without keys unless asked.
        let apiServices = try api.services(registry: registry, host: host, logger: logger)
        let served = try base.map { try registry.servedBase(named: $0) }
            ?? registry.servedBase(source: model!, modelName: modelName)
        let lm = try LanguageModel.load(path: served.path.path, quantization: quant)
        var options = ServingEngine.Options()
        options.maxRunning = maxRunning
        options.maxQueue = maxQueue
        options.adapterCacheBytes = adapterCacheMB << 20
        options.compute = budget.serving
        options.speculate = speculate
        options.lookupNgram = lookupNgram
        options.lookupMinNgram = lookupMinNgram
        let engine = try ServingEngine(model: lm, baseModelId: served.id, registry: registry, options: options, logger: logger)
        engine.start()
        let worker = workers > 0 ? try WorkerSlots(registry: self.registry, slots: workers, threads: budget.worker.threads, maxJobMemory: maxJobMemory.bytes) : nil
        worker?.start()

        var limits = ServerLimits()
        limits.maxBodyBytes = maxBodyBytes
        limits.maxHeaderBytes = maxHeaderBytes
        var server = OpenAIServer(backend: engine, host: host, port: port, limits: limits, metrics: metrics, logger: logger)
        server.api = apiServices
        let timeout = drainTimeout
        try await server.run(onListening: { host, port in
            // One line tests and scripts wait for; port 0 has become the real port here.
            print("listening on http://\(host):\(port) serving \(served.id)")
            fflush(stdout)
        }, onShutdown: {
            _ = try? await offloadBlocking {
                worker?.requestStop()
                engine.drain(timeout: timeout)
                worker?.wait()
            }
        })
        engine.shutdown()
        logger.info("drained; exiting")
    }
}

/// Runs a blocking call on a thread of its own, off Swift's cooperative pool.
func offloadBlocking<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { c in
        Thread { c.resume(with: Result { try work() }) }.start()
    }
}

/// `--workers N`: job-worker slots in the serving process, run as `lora worker` runs them; stopping
/// them checkpoints their jobs and returns them to the queue.
final class WorkerSlots: @unchecked Sendable {
    private let worker: JobWorker
    private let stop = StopFlag()
    private let done = DispatchSemaphore(value: 0)

    init(registry: RegistryOptions, slots: Int, threads: Int, maxJobMemory: Int) throws {
        var options = JobWorker.Options(workDirectory: registry.configuration.dataDirectory.appendingPathComponent("worker"))
        options.concurrency = slots
        options.threads = threads
        // Each job in a process of its own, as `lora worker` runs them: a crashing job never takes the server down.
        options.maxJobMemory = maxJobMemory
        options.isolation = .childProcess(try JobRunCommand.child(registry: registry, threads: threads, memoryLimit: maxJobMemory))
        // The test hook `lora worker` has: slows each optimizer step so a test can stop the server mid-job.
        if let ms = ProcessInfo.processInfo.environment["LORA_WORKER_STEP_DELAY_MS"].flatMap(Double.init) {
            options.stepDelay = ms / 1000
        }
        let stop = self.stop
        options.shouldExit = { stop.isSet }
        worker = JobWorker(jobs: try registry.openJobs(), options: options)
    }

    func start() {
        let t = Thread { [self] in
            do { try worker.run() } catch { FileHandle.standardError.write(Data("worker: \(error)\n".utf8)) }
            done.signal()
        }
        t.start()
    }

    func requestStop() { stop.set() }
    func wait() { done.wait() }
}

final class StopFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    var isSet: Bool { lock.lock(); defer { lock.unlock() }; return value }
    func set() { lock.lock(); value = true; lock.unlock() }
}

/// `lora serve`'s thread budgets: serving's, each worker slot's, and OpenBLAS's process-wide count
/// (the smallest budget, so no matrix product exceeds the budget of the work that made it).
struct ServeBudget: Equatable {
    let serving: ComputeContext
    let worker: ComputeContext
    let blasThreads: Int

    init(threads: Int?, workers: Int, workerThreads: Int?, cores: Int = ComputeContext.cores) {
        let perWorker = workerThreads ?? max(1, cores / (workers + 1))
        worker = ComputeContext(threads: perWorker)
        serving = ComputeContext(threads: threads ?? (workers > 0 ? max(1, cores - workers * perWorker) : cores))
        blasThreads = workers > 0 ? ComputeContext.blasThreads(for: [serving, worker]) : serving.threads
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}
