import ChatTemplate
import Foundation
import Logging
import Metrics
import Model
import Training

extension ServingEngine {
    /// Resolves the model (one registry query at most), loads and pins its adapter (once, however many
    /// requests ask at the same time), encodes the prompt, checks sampling and the context, and queues
    /// the request. The sequence keeps what was resolved here for its whole life.
    public func submit(_ request: ServingRequest) throws -> ServingSequence {
        try checkAdmitting()
        let served = try resolver.resolve(request.model)
        try Self.validate(request.sampling)
        // A server-wide minimum above a request's own lookup_ngram yields to it; the request's own does not.
        let ngram = request.lookupNgram ?? options.lookupNgram
        let least = request.lookupMinNgram ?? options.lookupMinNgram.map { min($0, ngram) }
        let lookup = try Self.speculation(request.speculate ?? options.speculate, ngram, least,
                                          fields: ("speculate", "lookup_ngram", "lookup_min_ngram"))
        let (ids, promptField) = try encodePrompt(request.input)
        let maxTokens: Int
        if let m = request.maxTokens {
            guard m >= 0 else { throw ServingError.invalidField(field: request.maxTokensField, message: "must be >= 0, got \(m)") }
            guard ids.count + m <= contextLength else {
                throw ServingError.contextLengthExceeded(field: request.maxTokensField, promptTokens: ids.count, maxTokens: m, context: contextLength)
            }
            maxTokens = m
        } else {
            guard ids.count < contextLength else {
                throw ServingError.contextLengthExceeded(field: promptField, promptTokens: ids.count, maxTokens: 0, context: contextLength)
            }
            maxTokens = contextLength - ids.count
        }
        // Cheap refusal before any adapter load; checked again when queueing.
        try checkQueueRoom()

        var adapters = AdapterSet.none
        var release: (() -> Void)?
        if let sha = served.adapterSHA256 {
            guard let cache = adapterCache else { throw ServingError.internalError("no adapter cache without a registry") }
            do {
                adapters = AdapterSet([try cache.acquire(sha256: sha)])
            } catch let e as ServingError {
                throw e
            } catch {
                throw ServingError.internalError("adapter \(served.id) could not be loaded: \(error)")
            }
            release = { cache.release(sha256: sha) }
        }
        var log = logger
        log[metadataKey: "request_id"] = "\(request.requestId)"
        if let task = served.task { log[metadataKey: "task"] = "\(task)" }
        let seq = EngineSequence(served: served, requestId: request.requestId, promptTokenIds: ids, maxTokens: maxTokens,
                                 sampling: request.sampling, stop: request.stop, adapters: adapters,
                                 tokenizer: model.tokenizer, logger: log, metricsModel: served.task ?? baseModelId,
                                 engine: self, lookup: lookup, ignoreEOS: request.ignoreEOS)
        seq.onRetire = release
        seq.continuation.yield(.admitted(served, promptTokens: ids.count))
        cond.lock()
        if draining || stopped {
            cond.unlock()
            release?()
            throw ServingError.unavailable(stopped ? "the server is shut down" : "the server is draining")
        }
        if queue.count >= options.maxQueue {
            let after = retryAfterLocked()
            cond.unlock()
            release?()
            throw ServingError.overloaded(retryAfterSeconds: after)
        }
        queue.append(seq)
        cond.broadcast()
        cond.unlock()
        updateGauges()
        Counter(label: "lora_prompt_tokens_total", dimensions: [("model", seq.metricsModel)]).increment(by: ids.count)
        log.info("queued \(ids.count) prompt tokens, max \(maxTokens) new, as \(served.id)")
        return seq
    }

    func checkAdmitting() throws {
        cond.lock()
        defer { cond.unlock() }
        if stopped { throw ServingError.unavailable("the server is shut down") }
        if draining { throw ServingError.unavailable("the server is draining") }
    }

    func checkQueueRoom() throws {
        cond.lock()
        defer { cond.unlock() }
        if queue.count >= options.maxQueue { throw ServingError.overloaded(retryAfterSeconds: retryAfterLocked()) }
    }

    /// Seconds until a queue place is likely free: the queue drains about `maxRunning` sequences per round.
    func retryAfterLocked() -> Int { max(1, (queue.count + options.maxRunning - 1) / options.maxRunning) }

    /// Sampling parameters checked field by field, named as the OpenAI API names them.
    static func validate(_ p: SamplingParameters) throws {
        if !(p.temperature >= 0) || !p.temperature.isFinite {
            throw ServingError.invalidField(field: "temperature", message: "must be a finite number >= 0, got \(p.temperature)")
        }
        if let k = p.topK, k < 1 { throw ServingError.invalidField(field: "top_k", message: "must be >= 1, got \(k)") }
        if let t = p.topP, !(t > 0 && t <= 1) { throw ServingError.invalidField(field: "top_p", message: "must be in (0, 1], got \(t)") }
    }

    /// The drafter for these settings (nil: off), or `invalidField` naming the field out of range.
    static func speculation(_ k: Int, _ n: Int, _ least: Int?, fields: (draft: String, ngram: String, minNgram: String)) throws -> PromptLookup? {
        do { return try PromptLookup.make(draftTokens: k, ngram: n, minNgram: least) } catch let e as SpeculationError {
            switch e {
            case .draftTokensOutOfRange(let k):
                throw ServingError.invalidField(field: fields.draft, message: "must be an integer in 0...\(PromptLookup.maxDraftTokens), got \(k)")
            case .ngramOutOfRange(let n):
                throw ServingError.invalidField(field: fields.ngram, message: "must be an integer in 1...\(PromptLookup.maxNgram), got \(n)")
            case let .minNgramOutOfRange(m, ngram):
                throw ServingError.invalidField(field: fields.minNgram, message: "must be an integer in 1...\(ngram) (at most the longest n-gram), got \(m)")
            }
        }
    }

    /// Prompt token ids as `lora generate` encodes them, and the request field they came from.
    func encodePrompt(_ input: ServingRequest.Input) throws -> ([Int], String) {
        switch input {
        case .text(let s):
            let ids = model.tokenizer.encode(s, addSpecialTokens: true)
            guard !ids.isEmpty else { throw ServingError.invalidField(field: "prompt", message: "encodes to no tokens") }
            return (ids, "prompt")
        case .chat(let messages):
            guard !messages.isEmpty else { throw ServingError.invalidField(field: "messages", message: "must hold at least one message") }
            let text: String
            do { text = try InferenceService(model: model).chatPrompt(messages) } catch {
                throw ServingError.invalidField(field: "messages", message: "the model's chat template failed: \(error)")
            }
            let ids = model.tokenizer.encode(text, addSpecialTokens: false)
            guard !ids.isEmpty else { throw ServingError.invalidField(field: "messages", message: "encode to no tokens") }
            return (ids, "messages")
        }
    }
}
