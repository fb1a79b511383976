import ChatTemplate
import Foundation
import Model
import Service

/// A decoded `POST /v1/completions` or `POST /v1/chat/completions`: the serving requests to submit
/// (one per prompt) and how the answer is written.
struct GenerationCall: Sendable {
    enum Kind: Sendable { case completion, chat }

    var kind: Kind
    /// The request's `model`, as asked (the answer names what served it).
    var model: String
    var requests: [ServingRequest]
    var stream: Bool
    /// `stream_options.include_usage`: a last chunk with empty `choices` and the usage.
    var includeUsage: Bool

    /// OpenAI's default for `/v1/completions` when `max_tokens` is absent.
    static let completionDefaultMaxTokens = 16
    /// OpenAI's default sampling temperature (0 is greedy).
    static let defaultTemperature: Float = 1
    static let maxStopSequences = 16

    /// Decodes a completions body: `prompt` a string or a list of strings, one request each.
    static func completion(_ body: JSON, requestId: String) throws -> GenerationCall {
        var r = try FieldReader(body)
        let model = try r.requiredString("model")
        let prompts = try readPrompts(&r)
        try r.unsupported("echo", neutral: Neutral.isFalse, "the prompt is not echoed back")
        try r.unsupported("best_of", neutral: Neutral.int(1), "one completion per prompt is generated")
        try r.unsupported("logprobs", neutral: { _ in false }, "log probabilities are not returned")
        try r.unsupported("suffix", neutral: Neutral.emptyString, "insertion (a suffix after the completion) is not implemented")
        let common = try Common(&r, defaultMaxTokens: completionDefaultMaxTokens)
        try r.rejectUnread()
        let requests = prompts.enumerated().map { i, p in
            common.request(model: model, input: .text(p), requestId: prompts.count == 1 ? requestId : "\(requestId)-\(i)")
        }
        return GenerationCall(kind: .completion, model: model, requests: requests, stream: common.stream,
                              includeUsage: common.includeUsage)
    }

    /// Decodes a chat completions body: `messages` through the model's chat template.
    static func chat(_ body: JSON, requestId: String) throws -> GenerationCall {
        var r = try FieldReader(body)
        let model = try r.requiredString("model")
        guard let list = r.value("messages") else { throw APIError.missing("messages", expected: "a non-empty array of messages") }
        guard case let .array(items) = list, !items.isEmpty else {
            throw APIError.invalid("messages", list, expected: "a non-empty array of messages")
        }
        let messages = try items.enumerated().map { try readMessage($1, path: "messages[\($0)]") }
        try r.unsupported("logprobs", neutral: Neutral.isFalse, "log probabilities are not returned")
        try r.unsupported("top_logprobs", neutral: Neutral.zero, "log probabilities are not returned")
        try r.unsupported("tools", neutral: Neutral.emptyArray, "tool calling is not implemented")
        try r.unsupported("tool_choice", neutral: Neutral.string("none"), "tool calling is not implemented")
        try r.unsupported("parallel_tool_calls", neutral: Neutral.anyBool, "tool calling is not implemented")
        try r.unsupported("functions", neutral: Neutral.emptyArray, "function calling is not implemented")
        try r.unsupported("function_call", neutral: Neutral.string("none"), "function calling is not implemented")
        try r.unsupported("response_format", neutral: Neutral.textFormat, "only plain text output is implemented")
        try r.unsupported("modalities", neutral: Neutral.textModality, "only text output is implemented")
        let maxCompletion = try r.int("max_completion_tokens", in: 1...Int64(Int32.max), expected: "an integer >= 1")
        var common = try Common(&r, defaultMaxTokens: nil)
        if let m = maxCompletion {
            if let given = common.maxTokens, given != Int(m) {
                throw APIError.badRequest("`max_tokens` (\(given)) and `max_completion_tokens` (\(m)) disagree; give one",
                                          param: "max_completion_tokens", code: "invalid_value")
            }
            common.maxTokens = Int(m)
            common.maxTokensField = "max_completion_tokens"
        }
        try r.rejectUnread()
        return GenerationCall(kind: .chat, model: model,
                              requests: [common.request(model: model, input: .chat(messages), requestId: requestId)],
                              stream: common.stream, includeUsage: common.includeUsage)
    }

    private static func readPrompts(_ r: inout FieldReader) throws -> [String] {
        guard let v = r.value("prompt") else { throw APIError.missing("prompt", expected: "a string or an array of strings") }
        switch v {
        case let .string(s): return [s]
        case let .array(items) where !items.isEmpty:
            if items.allSatisfy({ if case .int = $0 { return true }; if case .array = $0 { return true }; return false }) {
                throw APIError.unsupported("prompt", v, "prompts as token ids are not implemented; send text")
            }
            return try items.enumerated().map { i, item in
                guard case let .string(s) = item else { throw APIError.invalid("prompt[\(i)]", item, expected: "a string") }
                return s
            }
        default:
            throw APIError.invalid("prompt", v, expected: "a string or a non-empty array of strings")
        }
    }

    static let roles: Set<String> = ["system", "developer", "user", "assistant"]

    private static func readMessage(_ value: JSON, path: String) throws -> ChatMessage {
        var m = try FieldReader(value, path: path)
        let role = try m.requiredString("role")
        guard roles.contains(role) else {
            throw APIError.invalid(m.name("role"), .string(role), expected: "one of system, developer, user, assistant (tool messages need tool calling, which is not implemented)")
        }
        guard let content = m.value("content") else { throw APIError.missing(m.name("content"), expected: "a string or an array of text parts") }
        let text = try readContent(content, path: m.name("content"))
        try m.unsupported("name", neutral: { _ in false }, "participant names are not passed to the chat template")
        try m.unsupported("tool_calls", neutral: Neutral.emptyArray, "tool calling is not implemented")
        try m.unsupported("tool_call_id", neutral: { _ in false }, "tool calling is not implemented")
        try m.unsupported("function_call", neutral: { _ in false }, "function calling is not implemented")
        try m.unsupported("refusal", neutral: { _ in false }, "refusals are not implemented")
        try m.rejectUnread()
        // OpenAI's `developer` role is its newer name for `system` instructions; chat templates know `system`.
        return ChatMessage(role: role == "developer" ? "system" : role, content: text)
    }

    /// A message's content: a string, or text parts joined in order.
    private static func readContent(_ value: JSON, path: String) throws -> String {
        switch value {
        case let .string(s): return s
        case let .array(parts):
            return try parts.enumerated().map { i, part in
                var p = try FieldReader(part, path: "\(path)[\(i)]")
                let type = try p.requiredString("type")
                guard type == "text" else {
                    throw APIError.unsupported(p.name("type"), .string(type), "only text content parts are implemented")
                }
                let text = try p.requiredString("text")
                try p.rejectUnread()
                return text
            }.joined()
        default:
            throw APIError.invalid(path, value, expected: "a string or an array of text parts")
        }
    }
}

/// The fields completions and chat share: limits, sampling, stop strings, streaming, and the
/// parameters both refuse.
struct Common {
    var maxTokens: Int?
    var maxTokensField = "max_tokens"
    var sampling: SamplingParameters
    var stop: [String]
    var stream: Bool
    var includeUsage: Bool
    /// Prompt-lookup speculation (our extension fields); nil: the server's default.
    var speculate: Int?
    var lookupNgram: Int?
    var lookupMinNgram: Int?
    /// vLLM's extension: an EOS token does not end the sequence.
    var ignoreEOS: Bool

    init(_ r: inout FieldReader, defaultMaxTokens: Int?) throws {
        maxTokens = try r.int("max_tokens", in: 1...Int64(Int32.max), expected: "an integer >= 1").map(Int.init) ?? defaultMaxTokens
        let temperature = try r.number("temperature", accept: { $0 >= 0 && $0 <= 2 }, expected: "a number from 0 to 2")
        let topP = try r.number("top_p", accept: { $0 > 0 && $0 <= 1 }, expected: "a number in (0, 1]")
        // top_k is vLLM's extension; -1 and 0 mean "all tokens" there.
        let topK = try r.int("top_k", in: -1...Int64(Int32.max), expected: "an integer >= 1 (or -1 / 0 for no limit)")
        let seed = try r.int("seed", in: Int64.min...Int64.max, expected: "an integer")
        sampling = SamplingParameters(temperature: Float(temperature ?? Double(GenerationCall.defaultTemperature)),
                                      topK: topK.flatMap { $0 >= 1 ? Int($0) : nil },
                                      topP: topP.map(Float.init),
                                      seed: seed.map { UInt64(bitPattern: $0) })
        stop = try Self.readStop(&r)
        speculate = try r.int("speculate", in: 0...Int64(PromptLookup.maxDraftTokens),
                              expected: "an integer in 0...\(PromptLookup.maxDraftTokens) (draft tokens per step; 0 off)").map(Int.init)
        lookupNgram = try r.int("lookup_ngram", in: 1...Int64(PromptLookup.maxNgram),
                                expected: "an integer in 1...\(PromptLookup.maxNgram)").map(Int.init)
        lookupMinNgram = try r.int("lookup_min_ngram", in: 1...Int64(PromptLookup.maxNgram),
                                   expected: "an integer in 1...\(PromptLookup.maxNgram), at most lookup_ngram").map(Int.init)
        ignoreEOS = try r.bool("ignore_eos") ?? false
        stream = try r.bool("stream") ?? false
        includeUsage = false
        if let options = r.value("stream_options") {
            guard stream else {
                throw APIError.badRequest("`stream_options` is only allowed when `stream` is true", param: "stream_options",
                                          code: "invalid_value")
            }
            var o = try FieldReader(options, path: "stream_options")
            includeUsage = try o.bool("include_usage") ?? false
            try o.rejectUnread()
        }
        try r.unsupported("n", neutral: Neutral.int(1), "one choice per prompt is generated")
        try r.unsupported("presence_penalty", neutral: Neutral.zero, "penalties are not implemented")
        try r.unsupported("frequency_penalty", neutral: Neutral.zero, "penalties are not implemented")
        try r.unsupported("repetition_penalty", neutral: Neutral.one, "penalties are not implemented")
        try r.unsupported("logit_bias", neutral: Neutral.emptyObject, "logit biases are not implemented")
        try r.unsupported("store", neutral: Neutral.isFalse, "completions are not stored")
        try r.unsupported("metadata", neutral: Neutral.emptyObject, "completions are not stored")
        try r.unsupported("service_tier", neutral: Neutral.string("auto"), "there is one service tier")
        // `user` identifies the end user for the caller's own bookkeeping; it never changes an answer.
        _ = try r.string("user")
    }

    private static func readStop(_ r: inout FieldReader) throws -> [String] {
        guard let v = r.value("stop") else { return [] }
        let list: [JSON]
        switch v {
        case .string: list = [v]
        case let .array(items): list = items
        default: throw APIError.invalid("stop", v, expected: "a string or an array of strings")
        }
        guard list.count <= GenerationCall.maxStopSequences else {
            throw APIError.invalid("stop", v, expected: "at most \(GenerationCall.maxStopSequences) stop strings")
        }
        return try list.map { item in
            guard case let .string(s) = item, !s.isEmpty else { throw APIError.invalid("stop", v, expected: "non-empty strings") }
            return s
        }
    }

    func request(model: String, input: ServingRequest.Input, requestId: String) -> ServingRequest {
        ServingRequest(model: model, input: input, maxTokens: maxTokens, maxTokensField: maxTokensField, sampling: sampling,
                       stop: stop, requestId: requestId, speculate: speculate, lookupNgram: lookupNgram,
                       lookupMinNgram: lookupMinNgram, ignoreEOS: ignoreEOS)
    }
}
