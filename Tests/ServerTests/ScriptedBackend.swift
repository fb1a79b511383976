import ChatTemplate
import Foundation
import Model
import Service

/// A deterministic test double of the serving engine, for route tests: it "generates" the words of
/// the prompt (the last message's content for chat) in upper case, one word a token, so every
/// expected body can be written down. Tests only; the server never sees anything but `ServingBackend`.
final class ScriptedBackend: ServingBackend, @unchecked Sendable {
    let baseModelId = "tiny-base"
    let contextLength = 64
    /// Task -> its versions; `TASK` serves the highest.
    var versions: [String: [Int]] = ["greet": [1, 2]]

    private let lock = NSLock()
    private var _submitted: [ServingRequest] = []
    private var _sequences: [ScriptedSequence] = []
    /// Refuse every submission with this error (429, 503, ...).
    var refuse: ServingError?
    /// Refuse submissions with this error once this many sequences were accepted.
    var refuseAfter: (accepted: Int, error: ServingError)?
    /// Hold every sequence after its first word until cancelled (disconnect tests).
    var holdAfterFirstWord = false
    /// Fail each sequence with this error after its first word.
    var failAfterFirstWord: ServingError?
    var isReady = true

    var submitted: [ServingRequest] { lock.lock(); defer { lock.unlock() }; return _submitted }
    var sequences: [ScriptedSequence] { lock.lock(); defer { lock.unlock() }; return _sequences }

    func listModels() throws -> [ModelListing] {
        [ModelListing(id: baseModelId, created: 1_700_000_000, parent: nil)]
            + versions.keys.sorted().map { ModelListing(id: $0, created: 1_700_000_100, parent: baseModelId) }
    }

    func ready() -> Bool { isReady }

    /// `TASK`, `TASK@N` or the base, as the engine resolves them.
    func resolve(_ model: String) throws -> ServedModel {
        if model == baseModelId { return ServedModel(id: model) }
        let parts = model.split(separator: "@", maxSplits: 1).map(String.init)
        guard let known = versions[parts[0]] else {
            throw ServingError.modelNotFound(model: model, reason: "no task named `\(parts[0])`")
        }
        let version = parts.count == 2 ? Int(parts[1]) : known.max()
        guard let v = version, known.contains(v) else {
            throw ServingError.modelNotFound(model: model, reason: "task `\(parts[0])` has no version `\(parts[1])`")
        }
        return ServedModel(id: "\(parts[0])@\(v)", task: parts[0], version: v, adapterSHA256: String(repeating: "a", count: 64))
    }

    func submit(_ request: ServingRequest) throws -> ServingSequence {
        lock.lock(); _submitted.append(request); lock.unlock()
        if let refuse { throw refuse }
        if let (accepted, error) = refuseAfter, sequences.count >= accepted { throw error }
        let served = try resolve(request.model)
        let (promptWords, words): ([Substring], [Substring])
        switch request.input {
        case let .text(p):
            promptWords = p.split(separator: " "); words = promptWords
        case let .chat(messages):
            promptWords = messages.flatMap { $0.content.split(separator: " ") }
            words = (messages.last?.content ?? "").split(separator: " ")
        }
        if let max = request.maxTokens, promptWords.count + max > contextLength {
            throw ServingError.contextLengthExceeded(field: request.maxTokensField, promptTokens: promptWords.count, maxTokens: max, context: contextLength)
        }
        let sequence = ScriptedSequence(served: served, promptTokens: promptWords.count,
                                        words: words.enumerated().map { ($0 == 0 ? "" : " ") + $1.uppercased() },
                                        request: request, hold: holdAfterFirstWord, failure: failAfterFirstWord)
        lock.lock(); _sequences.append(sequence); lock.unlock()
        sequence.start()
        return sequence
    }
}

/// One scripted request: admitted, its words (up to max_tokens, cut at a stop string), finished.
final class ScriptedSequence: ServingSequence, @unchecked Sendable {
    let events: AsyncStream<ServingEvent>
    private let continuation: AsyncStream<ServingEvent>.Continuation
    private let served: ServedModel
    private let promptTokens: Int
    private let words: [String]
    private let request: ServingRequest
    private let hold: Bool
    private let failure: ServingError?
    private let lock = NSLock()
    private var _cancelled = false
    var cancelled: Bool { lock.lock(); defer { lock.unlock() }; return _cancelled }

    init(served: ServedModel, promptTokens: Int, words: [String], request: ServingRequest, hold: Bool, failure: ServingError?) {
        (events, continuation) = AsyncStream.makeStream()
        self.served = served; self.promptTokens = promptTokens; self.words = words
        self.request = request; self.hold = hold; self.failure = failure
    }

    func start() {
        continuation.yield(.admitted(served, promptTokens: promptTokens))
        var text = ""
        var count = 0
        for word in words {
            if let max = request.maxTokens, count == max { break }
            text += word
            count += 1
            if let stop = request.stop.first(where: { text.contains($0) }), let r = text.range(of: stop) {
                let kept = String(text[..<r.lowerBound])
                let before = text.count - word.count
                if kept.count > before { continuation.yield(.text(String(kept.dropFirst(before)))) }
                continuation.yield(.finished(.stop, promptTokens: promptTokens, completionTokens: count))
                continuation.finish()
                return
            }
            continuation.yield(.text(word))
            if count == 1, let failure {
                continuation.yield(.failed(failure)); continuation.finish(); return
            }
            if count == 1 && hold { return } // the rest waits for cancel()
        }
        let reason: FinishReason = request.maxTokens.map { count == $0 && count < words.count } == true ? .length : .stop
        continuation.yield(.finished(reason, promptTokens: promptTokens, completionTokens: count))
        continuation.finish()
    }

    func cancel() {
        lock.lock(); _cancelled = true; lock.unlock()
        continuation.finish()
    }
}
