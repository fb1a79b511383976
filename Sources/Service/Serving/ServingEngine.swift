import ChatTemplate
import Foundation
import Kernels
import Logging
import Metrics
import Model
import Registry
import Training

/// The resident model serving requests: one frozen base, the right adapter per request (resolved
/// at submission, loaded through `AdapterCache`), continuous batching of many sequences on many
/// adapters in one forward call per step (`LlamaModel.forwardBatch`, batch-invariant), prompts
/// prefilled in fixed-size chunks, at most `prefillRowsPerStep` prompt rows a step, so long prompts
/// do not stall the others.
public final class ServingEngine: ServingBackend, @unchecked Sendable {
    public struct Options: Sendable {
        /// Sequences in the running batch at most.
        public var maxRunning = 8
        /// Requests waiting for a place in the batch at most; `submit` throws `.overloaded` beyond.
        public var maxQueue = 64
        public var adapterCacheBytes = 256 << 20
        /// Prompt tokens per prefill forward (the same value in `lora generate` computes the same bits).
        public var prefillChunk = LlamaModel.defaultPrefillChunk
        /// Prompt rows one step takes at most (whole chunks, in admission order; at least one chunk):
        /// bounds how long a step of decoding streams waits behind prompts arriving together.
        public var prefillRowsPerStep = LlamaModel.defaultPrefillChunk
        /// How long a resolved `TASK` / `TASK@ALIAS` is trusted without a notification.
        public var aliasRecheckSeconds = 0.5
        /// The scheduler's thread budget (every forward runs under it); nil: the process default.
        public var compute: ComputeContext?
        /// Prompt-lookup draft tokens per step for requests that do not say (`speculate`); 0: off.
        public var speculate = 0
        /// The longest n-gram looked up for drafts, for requests that do not say (`lookup_ngram`).
        public var lookupNgram = PromptLookup.defaultNgram
        /// The shortest n-gram a draft may come from, for requests that do not say (`lookup_min_ngram`);
        /// nil: `PromptLookup.defaultMinNgram`, never above the request's longest.
        public var lookupMinNgram: Int?
        /// Whether a step hands its text to the sequences' streams together once every row chose its
        /// token (true), or each row's as soon as it is chosen (false: the hand-off before, kept for A/B
        /// figures; `LORA_SERVE_HANDOFF=token` selects it, with the server's merged event stream for
        /// single-sequence calls too).
        public var handOffPerStep = EnvironmentSwitch.serveHandOff.value
        public init() {}
    }

    public let baseModelId: String
    public let contextLength: Int
    public let model: LanguageModel
    public let registry: RegistryService?
    public let options: Options
    public let resolver: ModelResolver
    /// nil without a registry (the base alone is served).
    public let adapterCache: AdapterCache?
    let logger: Logger
    let listener: AliasListener?
    let createdAt = Int(Date().timeIntervalSince1970)

    // Scheduler state, under `cond`.
    let cond = NSCondition()
    var queue: [EngineSequence] = []
    var running: [EngineSequence] = []
    var draining = false
    var stopped = false
    var thread: Thread?
    let schedulerExited = DispatchSemaphore(value: 0)

    // Scheduler-thread-only buffers (planned once, grown when needed).
    let workspace = Workspace()
    var hidden = FloatBuffer(count: 0)
    var lastRows = FloatBuffer(count: 0)
    var logits = FloatBuffer(count: 0)

    // Metrics.
    let runningGauge = Gauge(label: "lora_running_sequences")
    let queuedGauge = Gauge(label: "lora_queued_sequences")
    let batchRows = Recorder(label: "lora_batch_rows")
    let draftedCounter = Counter(label: "lora_speculative_drafted_tokens_total")
    let acceptedCounter = Counter(label: "lora_speculative_accepted_tokens_total")
    let ttftTimer = Metrics.Timer(label: "lora_time_to_first_token_seconds")
    let interTokenTimer = Metrics.Timer(label: "lora_inter_token_latency_seconds")
    let phaseTimers = StepPhaseTimers()
    let stepTimesLock = NSLock()
    var totals = StepTimes()

    /// Where the scheduler's steps spent their time so far, by phase (the engine's own clock).
    public var stepTimes: StepTimes { stepTimesLock.lock(); defer { stepTimesLock.unlock() }; return totals }

    public init(model: LanguageModel, baseModelId: String, registry: RegistryService?, options: Options, logger: Logger) throws {
        guard options.maxRunning >= 1 else { throw ServingError.invalidField(field: "maxRunning", message: "must be >= 1, got \(options.maxRunning)") }
        guard options.maxQueue >= 0 else { throw ServingError.invalidField(field: "maxQueue", message: "must be >= 0, got \(options.maxQueue)") }
        guard options.prefillChunk >= 1 else { throw ServingError.invalidField(field: "prefillChunk", message: "must be >= 1, got \(options.prefillChunk)") }
        guard options.prefillRowsPerStep >= 1 else {
            throw ServingError.invalidField(field: "prefillRowsPerStep", message: "must be >= 1, got \(options.prefillRowsPerStep)")
        }
        guard options.adapterCacheBytes >= 0 else { throw ServingError.invalidField(field: "adapterCacheBytes", message: "must be >= 0") }
        guard options.aliasRecheckSeconds > 0 else { throw ServingError.invalidField(field: "aliasRecheckSeconds", message: "must be > 0") }
        _ = try Self.speculation(options.speculate, options.lookupNgram, options.lookupMinNgram,
                                 fields: ("speculate", "lookupNgram", "lookupMinNgram"))
        self.model = model
        self.baseModelId = baseModelId
        self.registry = registry
        self.options = options
        self.logger = logger
        let ctx = model.model.config.maxPositionEmbeddings
        contextLength = ctx > 0 ? ctx : Int(Int32.max)
        if case let .failure(error)? = model.chatTemplateParse {
            logger.error("the model's chat template does not parse; /v1/chat/completions will answer 400 (param messages)",
                         metadata: ["error": "\(error)"])
        }
        resolver = ModelResolver(baseModelId: baseModelId, registry: registry, recheckSeconds: options.aliasRecheckSeconds)
        if let registry {
            adapterCache = AdapterCache(budgetBytes: options.adapterCacheBytes, logger: logger,
                                        loader: AdapterCache.registryLoader(registry, base: model.model.config))
            listener = AliasListener(conninfo: registry.pool.conninfo, resolver: resolver,
                                     pollSeconds: min(0.25, options.aliasRecheckSeconds), logger: logger)
        } else {
            adapterCache = nil
            listener = nil
        }
    }

    deinit {
        hidden.free(); lastRows.free(); logits.free()
    }

    /// Starts the scheduler thread and the alias listener.
    public func start() {
        cond.lock()
        defer { cond.unlock() }
        guard thread == nil, !stopped else { return }
        let compute = options.compute ?? ComputeContext.processDefault
        let t = Thread { [self] in
            ComputeContext.run(compute) { schedulerLoop() }
            schedulerExited.signal()
        }
        t.name = "lora-serving-scheduler"
        t.stackSize = 8 << 20
        thread = t
        t.start()
        listener?.start()
    }

    /// Waits until the alias listener's first LISTEN is in place (false on timeout or without a registry).
    public func waitUntilListening(timeout: Double) -> Bool {
        guard let listener else { return false }
        let ok = listener.listening.wait(timeout: .now() + timeout) == .success
        if ok { listener.listening.signal() }
        return ok
    }

    public var runningCount: Int { cond.lock(); defer { cond.unlock() }; return running.count }
    public var queuedCount: Int { cond.lock(); defer { cond.unlock() }; return queue.count }

    func wake() { cond.lock(); cond.broadcast(); cond.unlock() }

    /// Stops admitting (`submit` throws `.unavailable`), lets queued and running sequences finish for up
    /// to `timeout` seconds, then cancels the rest (their streams end with `.failed(.unavailable)`).
    public func drain(timeout: Double) {
        let deadline = Date().addingTimeInterval(max(0, timeout))
        cond.lock()
        draining = true
        while !(queue.isEmpty && running.isEmpty) && thread != nil && !stopped {
            if !cond.wait(until: deadline) { break }
        }
        let left = queue + running
        cond.unlock()
        for s in left { s.cancel(failing: .unavailable("the server is draining")) }
        cond.lock()
        // The scheduler retires cancelled sequences at its next step; without one, retire them here.
        if thread == nil || stopped {
            queue.removeAll(); running.removeAll()
            cond.unlock()
            for s in left { s.retire(nil) }
            return
        }
        while !(queue.isEmpty && running.isEmpty) { cond.wait() }
        cond.unlock()
    }

    /// Stops the scheduler and the listener; every sequence still queued or running fails with `.unavailable`.
    public func shutdown() {
        cond.lock()
        draining = true
        let wasRunning = thread != nil && !stopped
        stopped = true
        cond.broadcast()
        cond.unlock()
        if wasRunning { schedulerExited.wait() }
        listener?.stop()
        cond.lock()
        let left = queue + running
        queue.removeAll(); running.removeAll()
        cond.unlock()
        for s in left {
            s.cancel(failing: .unavailable("the server is shutting down"))
            s.retire(nil)
        }
        updateGauges()
    }

    public func ready() -> Bool {
        cond.lock()
        let up = !stopped && !draining
        cond.unlock()
        guard up else { return false }
        guard let registry else { return true }
        return (try? registry.pool.withConnection { try $0.execute("SELECT 1") }) != nil
    }

    /// The base model, then every task whose default reference names a live version on this base.
    public func listModels() throws -> [ModelListing] {
        var out = [ModelListing(id: baseModelId, created: createdAt, parent: nil)]
        guard let registry else { return out }
        do {
            let tasks = try registry.pool.withConnection { try registry.store.servableTasks(base: baseModelId, on: $0) }
            out += tasks.map { ModelListing(id: $0.name, created: $0.created, parent: baseModelId) }
        } catch {
            throw ServingError.unavailable("the adapter registry did not answer: \(error)")
        }
        return out
    }

    func updateGauges() {
        cond.lock()
        let r = running.count, q = queue.count
        cond.unlock()
        runningGauge.record(r)
        queuedGauge.record(q)
    }
}
