import Foundation
import Logging
import Metrics
import Model
import Training
import Tokenizer

/// One request inside the engine: what was resolved and encoded at submission, and the state the
/// scheduler advances (KV cache, sampler with its seed, incremental text decoder, stop matcher).
/// Everything but `cancel()` and the read-only accessors is touched by the scheduler thread only.
public final class EngineSequence: ServingSequence, @unchecked Sendable {
    public let events: AsyncStream<ServingEvent>
    public let served: ServedModel
    public let requestId: String
    public let promptTokenIds: [Int]
    public let maxTokens: Int

    let continuation: AsyncStream<ServingEvent>.Continuation
    let adapters: AdapterSet
    let logger: Logger
    let metricsModel: String
    let completionTokens: Counter
    var sampler: Sampler
    var decoder: StreamingDecoder
    var stopMatcher: StopMatcher
    var cache: KVCache?
    /// Prompt tokens already in the KV cache.
    var prefilled = 0
    /// The token to feed at the next decode step.
    var lastToken = 0
    /// Prompt-lookup drafter (nil: no speculation) and what it looks in: prompt + generated tokens.
    let lookup: PromptLookup?
    var context: [Int] = []
    var draftLength: DraftLength?
    /// Draft tokens proposed and accepted so far.
    public internal(set) var draftedTokens = 0
    public internal(set) var acceptedTokens = 0
    /// Rows of this sequence that chose a token or verified a draft (a decode row plus its drafts, the
    /// last prompt row), and those whose LM head was computed (rows after a rejected draft's window are not).
    public internal(set) var fedRows = 0
    public internal(set) var headRows = 0
    let submittedAt: UInt64
    /// An EOS token is generated text, not the end (`ServingRequest.ignoreEOS`).
    let ignoreEOS: Bool
    var lastTokenAt: UInt64 = 0
    /// Called once when the sequence leaves the engine (unpins its adapter).
    var onRetire: (() -> Void)?

    private let lock = NSLock()
    private var _cancelled = false
    private var _failure: ServingError?
    private var _tokens: [Int] = []
    private var _finished = false
    private weak var engine: ServingEngine?

    init(served: ServedModel, requestId: String, promptTokenIds: [Int], maxTokens: Int, sampling: SamplingParameters,
         stop: [String], adapters: AdapterSet, tokenizer: Tokenizer, logger: Logger, metricsModel: String,
         engine: ServingEngine, lookup: PromptLookup? = nil, ignoreEOS: Bool = false) {
        self.lookup = lookup
        self.ignoreEOS = ignoreEOS
        if let lookup { context = promptTokenIds; draftLength = DraftLength(lookup) }
        self.served = served; self.requestId = requestId; self.promptTokenIds = promptTokenIds
        self.maxTokens = maxTokens; self.adapters = adapters; self.logger = logger; self.metricsModel = metricsModel
        self.engine = engine
        completionTokens = Counter(label: "lora_completion_tokens_total", dimensions: [("model", metricsModel)])
        sampler = Sampler(sampling)
        decoder = StreamingDecoder(tokenizer: tokenizer, skipSpecialTokens: false)
        stopMatcher = StopMatcher(stops: stop)
        submittedAt = DispatchTime.now().uptimeNanoseconds
        (events, continuation) = AsyncStream.makeStream(of: ServingEvent.self)
        // A consumer that stops listening (a client that went away) cancels the sequence.
        continuation.onTermination = { [weak self] reason in
            if case .cancelled = reason { self?.cancel() }
        }
    }

    /// Frees the sequence and its KV slot at the next scheduler step; `events` ends with nothing more.
    public func cancel() {
        lock.lock()
        let first = !_cancelled && !_finished
        _cancelled = true
        lock.unlock()
        if first { engine?.wake() }
    }

    /// Cancels with a failure event (the engine is draining or shutting down).
    func cancel(failing error: ServingError) {
        lock.lock()
        if _failure == nil { _failure = error }
        lock.unlock()
        cancel()
    }

    var isCancelled: Bool { lock.lock(); defer { lock.unlock() }; return _cancelled }

    /// Generated token ids so far (excluding an EOS that ended generation).
    public var completionTokenIds: [Int] { lock.lock(); defer { lock.unlock() }; return _tokens }

    /// Whether the sequence has left the engine (finished, failed or cancelled).
    public var isFinished: Bool { lock.lock(); defer { lock.unlock() }; return _finished }

    func appendToken(_ t: Int) { lock.lock(); _tokens.append(t); lock.unlock() }

    var generatedCount: Int { lock.lock(); defer { lock.unlock() }; return _tokens.count }

    /// Ends the event stream once: with `finished`, with `failed`, or (cancelled by its client) with nothing.
    func retire(_ reason: FinishReason?) {
        lock.lock()
        if _finished { lock.unlock(); return }
        _finished = true
        let failure = _failure
        let count = _tokens.count
        lock.unlock()
        if let reason {
            continuation.yield(.finished(reason, promptTokens: promptTokenIds.count, completionTokens: count))
        } else if let failure {
            continuation.yield(.failed(failure))
        }
        continuation.finish()
        cache = nil
        onRetire?()
        onRetire = nil
    }
}
