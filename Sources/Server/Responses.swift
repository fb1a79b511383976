import Foundation
import Model
import Service

/// The answer to one request of a call: what served it and what it produced.
struct ChoiceResult: Sendable {
    var served: ServedModel
    var text: String
    var finishReason: FinishReason
    var promptTokens: Int
    var completionTokens: Int
}

/// OpenAI's response bodies, fields in OpenAI's order.
struct ResponseShapes: Sendable {
    let kind: GenerationCall.Kind
    /// `cmpl-...` or `chatcmpl-...`, the same in every chunk of a stream.
    let id: String
    let created: Int
    /// The served model's id (`TASK@N` or the base's id), from the first admission.
    let model: String

    init(kind: GenerationCall.Kind, model: String, created: Int = Int(Date().timeIntervalSince1970)) {
        self.kind = kind
        self.model = model
        self.created = created
        let hex = (0..<24).map { _ in String(UInt8.random(in: 0..<16), radix: 16) }.joined()
        id = (kind == .chat ? "chatcmpl-" : "cmpl-") + hex
    }

    var object: String { kind == .chat ? "chat.completion" : "text_completion" }
    var chunkObject: String { kind == .chat ? "chat.completion.chunk" : "text_completion" }

    static func usage(prompt: Int, completion: Int) -> JSON {
        .object([("prompt_tokens", JSON(prompt)), ("completion_tokens", JSON(completion)), ("total_tokens", JSON(prompt + completion))])
    }

    /// The whole (non-streamed) answer.
    func full(_ results: [ChoiceResult]) -> JSON {
        let choices: [JSON] = results.enumerated().map { i, r in
            switch kind {
            case .completion:
                return .object([("index", JSON(i)), ("text", .string(r.text)), ("logprobs", .null),
                                ("finish_reason", .string(r.finishReason.rawValue))])
            case .chat:
                return .object([("index", JSON(i)),
                                ("message", .object([("role", "assistant"), ("content", .string(r.text))])),
                                ("logprobs", .null), ("finish_reason", .string(r.finishReason.rawValue))])
            }
        }
        let prompt = results.reduce(0) { $0 + $1.promptTokens }
        let completion = results.reduce(0) { $0 + $1.completionTokens }
        return .object(header(object) + [("choices", .array(choices)), ("usage", Self.usage(prompt: prompt, completion: completion))])
    }

    private func header(_ object: String) -> [(String, JSON)] {
        [("id", .string(id)), ("object", .string(object)), ("created", JSON(created)), ("model", .string(model))]
    }

    /// One streamed chunk: for chat, `role` (the first), `content` or neither (the finish chunk);
    /// for completions, `text`. With `include_usage`, every chunk carries `"usage": null`.
    func chunk(index: Int, role: Bool = false, text: String?, finish: FinishReason?, includeUsage: Bool) -> JSON {
        var choice: [(String, JSON)] = [("index", JSON(index))]
        switch kind {
        case .completion:
            choice.append(("text", .string(text ?? "")))
        case .chat:
            var delta: [(String, JSON)] = []
            if role { delta.append(("role", "assistant")) }
            if let text { delta.append(("content", .string(text))) }
            choice.append(("delta", .object(delta)))
        }
        choice += [("logprobs", .null), ("finish_reason", JSON(finish?.rawValue))]
        var fields = header(chunkObject) + [("choices", .array([.object(choice)]))]
        if includeUsage { fields.append(("usage", .null)) }
        return .object(fields)
    }

    /// The last chunk with `include_usage`: no choices, the usage of the whole call.
    func usageChunk(prompt: Int, completion: Int) -> JSON {
        .object(header(chunkObject) + [("choices", .array([])), ("usage", Self.usage(prompt: prompt, completion: completion))])
    }
}

/// `GET /v1/models`.
enum ModelListShape {
    static let ownedBy = "lora"

    static func body(_ models: [ModelListing]) -> JSON {
        .object([("object", "list"), ("data", .array(models.map { m in
            .object([("id", .string(m.id)), ("object", "model"), ("created", JSON(m.created)), ("owned_by", .string(ownedBy)),
                     ("parent", JSON(m.parent))])
        }))])
    }
}
