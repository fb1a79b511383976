import ChatTemplate
import Foundation
import Model

// The contract between the serving engine (resident base model, adapter cache, continuous
// batching; Sources/Service/Serving) and the HTTP layer (Sources/Server, `lora serve`). The HTTP
// layer decodes a request into a `ServingRequest`, submits it, and encodes the events it gets
// back; everything else (which adapter, which version, when the sequence runs) is the engine's.

/// What a request asks the resident model to do, after the server decoded and validated its JSON.
public struct ServingRequest: Sendable {
    public enum Input: Sendable, Equatable {
        /// A completion of this text (encoded with the tokenizer's own special tokens, as `lora generate`).
        case text(String)
        /// The assistant's reply to these messages (the model's chat template, with the generation prompt).
        case chat([ChatMessage])
    }

    /// The request's `model`: the base model's id (no adapter), `TASK` (its `production` alias, else
    /// `latest`), `TASK@N` (version N) or `TASK@ALIAS`.
    public var model: String
    public var input: Input
    /// New tokens at most; nil means as many as the context leaves after the prompt.
    public var maxTokens: Int?
    /// The request field `maxTokens` came from (`max_tokens`, or chat's `max_completion_tokens`):
    /// errors about it name this field.
    public var maxTokensField: String
    public var sampling: SamplingParameters
    public var stop: [String]
    /// Carried into logs as `request_id`.
    public var requestId: String
    /// Prompt-lookup draft tokens per step (request field `speculate`; 0 off); nil: the engine's default.
    public var speculate: Int?
    /// The longest n-gram looked up for drafts (request field `lookup_ngram`); nil: the engine's default.
    public var lookupNgram: Int?
    /// The shortest n-gram a draft may come from (request field `lookup_min_ngram`); nil: the engine's default.
    public var lookupMinNgram: Int?
    /// An end-of-sequence token does not end the sequence (request field `ignore_eos`, vLLM's extension, as load
    /// generators use it to make every request decode `maxTokens` tokens): it is emitted as a token like any other,
    /// and only `maxTokens`, a stop string or the context ends the sequence.
    public var ignoreEOS: Bool

    public init(model: String, input: Input, maxTokens: Int?, maxTokensField: String = "max_tokens",
                sampling: SamplingParameters = .greedy, stop: [String] = [], requestId: String,
                speculate: Int? = nil, lookupNgram: Int? = nil, lookupMinNgram: Int? = nil, ignoreEOS: Bool = false) {
        self.model = model; self.input = input; self.maxTokens = maxTokens; self.maxTokensField = maxTokensField
        self.sampling = sampling; self.stop = stop; self.requestId = requestId
        self.speculate = speculate; self.lookupNgram = lookupNgram; self.lookupMinNgram = lookupMinNgram
        self.ignoreEOS = ignoreEOS
    }
}

/// What answered a request: resolved once, when the request is admitted, and kept for its whole life.
public struct ServedModel: Sendable, Equatable {
    /// `TASK@N` for an adapter version, the base model's id for the base alone.
    public var id: String
    public var task: String?
    public var version: Int?
    /// The adapter artifact's sha256; nil for the base alone.
    public var adapterSHA256: String?

    public init(id: String, task: String? = nil, version: Int? = nil, adapterSHA256: String? = nil) {
        self.id = id; self.task = task; self.version = version; self.adapterSHA256 = adapterSHA256
    }
}

/// One entry of `GET /v1/models`.
public struct ModelListing: Sendable, Equatable {
    /// The base model's id, or a task name (served through its `production` alias, else `latest`).
    public var id: String
    /// Unix seconds.
    public var created: Int
    /// nil for the base model; the base model's id for a task.
    public var parent: String?

    public init(id: String, created: Int, parent: String?) {
        self.id = id; self.created = created; self.parent = parent
    }
}

/// What a submitted request produces, in order: `admitted` once, `text` zero or more times (each
/// piece final: never retracted, never a partial UTF-8 sequence, never a prefix of a stop string
/// that may still complete), then exactly one of `finished` or `failed`.
public enum ServingEvent: Sendable, Equatable {
    case admitted(ServedModel, promptTokens: Int)
    case text(String)
    case finished(FinishReason, promptTokens: Int, completionTokens: Int)
    case failed(ServingError)
}

/// Errors a request can meet, typed so the CLI maps them to flags and exit codes and the server to
/// HTTP status and OpenAI's error shape (`{"error": {"message", "type", "param", "code"}}`).
public enum ServingError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Unknown task, version or alias, an archived version, or a version trained on another base (404,
    /// `model_not_found`, param `model`).
    case modelNotFound(model: String, reason: String)
    /// A request field is out of range or inconsistent (400, param = the field).
    case invalidField(field: String, message: String)
    /// Prompt + max_tokens beyond the model's context (400, param: the field that asked for the tokens,
    /// `max_tokens` or `max_completion_tokens`, else `messages`/`prompt` when the prompt alone is too long).
    case contextLengthExceeded(field: String, promptTokens: Int, maxTokens: Int, context: Int)
    /// The queue is full (429 with `Retry-After` seconds).
    case overloaded(retryAfterSeconds: Int)
    /// The server is draining or not ready (503).
    case unavailable(String)
    /// Anything else (500); the message is safe to show.
    case internalError(String)

    public var description: String {
        switch self {
        case let .modelNotFound(model, reason): return "The model `\(model)` does not exist: \(reason)"
        case let .invalidField(field, message): return "\(field): \(message)"
        case let .contextLengthExceeded(field, prompt, maxTokens, context):
            if maxTokens == 0 { return "This model's maximum context length is \(context) tokens; the prompt (`\(field)`) has \(prompt)" }
            return "This model's maximum context length is \(context) tokens; the prompt has \(prompt) and `\(field)` asks for \(maxTokens) more"
        case let .overloaded(after): return "Too many requests are queued; retry after \(after) s"
        case let .unavailable(why): return "The server is not available: \(why)"
        case let .internalError(message): return message
        }
    }
}

/// A submitted request: its events arrive on `events`; `cancel()` (a client that went away) frees
/// its sequence and KV slot at the next scheduler step and ends `events` with `failed` or nothing more.
public protocol ServingSequence: AnyObject, Sendable {
    var events: AsyncStream<ServingEvent> { get }
    func cancel()
}

/// The resident model, as the HTTP layer sees it.
public protocol ServingBackend: AnyObject, Sendable {
    /// The base model's id (in `/v1/models` with `parent: nil`).
    var baseModelId: String { get }
    /// The model's context length in tokens.
    var contextLength: Int { get }
    /// The base model, then every task with a servable version on this base.
    func listModels() throws -> [ModelListing]
    /// Resolves the model, renders and encodes the prompt, checks the context, and queues the
    /// request. Throws `ServingError` for what is known at admission (404, 400, 429, 503).
    func submit(_ request: ServingRequest) throws -> ServingSequence
    /// True once the model is loaded and the database (when configured) answers.
    func ready() -> Bool
}
