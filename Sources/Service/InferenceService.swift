import ChatTemplate
import Foundation
import Model
import Tokenizer

/// Generation and scoring use cases: what `lora generate` / `lora score` (and later the HTTP
/// server) call.
public struct InferenceService {
    public let model: LanguageModel

    public init(model: LanguageModel) { self.model = model }

    public struct GenerateOptions: Sendable {
        public var maxTokens: Int = 256
        public var sampling = SamplingParameters.greedy
        public var stop: [String] = []
        /// Prompt tokens per prefill forward call (the serving engine's `prefillChunk`; equal values compute equal bits).
        public var prefillChunk = LlamaModel.defaultPrefillChunk
        /// Prompt-lookup speculation (nil: off); the output is the same tokens either way.
        public var speculation: PromptLookup?
        public init() {}
    }

    /// Generates a completion of `prompt` (encoded with the tokenizer's own special tokens).
    public func generate(prompt: String, options: GenerateOptions, adapters: AdapterSet = .none,
                         onText: ((String) -> Void)? = nil) throws -> GenerationResult {
        try generate(promptIds: model.tokenizer.encode(prompt, addSpecialTokens: true), options: options,
                     adapters: adapters, onText: onText)
    }

    /// The model's chat template, parsed once when the model was loaded (`LanguageModel.parsedChatTemplate`).
    public func chatTemplate() throws -> ChatTemplate {
        guard let template = try model.parsedChatTemplate() else {
            throw ModelError.invalidArgument("\(model.source.path): the model has no chat template (chat_template.jinja, "
                + "tokenizer_config.json `chat_template` or GGUF `tokenizer.chat_template`)")
        }
        return template
    }

    /// The conversation `lora generate --chat` sends: an optional system message, then PROMPT as one user message.
    public static func chatMessages(prompt: String, system: String?) -> [ChatMessage] {
        (system.map { [ChatMessage(role: "system", content: $0)] } ?? []) + [ChatMessage(role: "user", content: prompt)]
    }

    /// `messages` rendered with the model's chat template and the generation prompt, with the tokenizer's
    /// BOS / EOS strings as `bos_token` / `eos_token`.
    public func chatPrompt(_ messages: [ChatMessage]) throws -> String {
        let tok = model.tokenizer
        return try chatTemplate().render(messages: messages, addGenerationPrompt: true,
                                         bosToken: tok.bosTokenId.flatMap { tok.token(forId: $0) },
                                         eosToken: tok.eosTokenId.flatMap { tok.token(forId: $0) })
    }

    /// Generates the assistant's reply to `messages`. The rendered template already holds the special
    /// tokens it wants, so it is encoded without adding any (as transformers' `apply_chat_template(tokenize=True)`).
    public func generate(chat messages: [ChatMessage], options: GenerateOptions, adapters: AdapterSet = .none,
                         onText: ((String) -> Void)? = nil) throws -> GenerationResult {
        let ids = model.tokenizer.encode(try chatPrompt(messages), addSpecialTokens: false)
        return try generate(promptIds: ids, options: options, adapters: adapters, onText: onText)
    }

    /// Generates a completion of already-encoded prompt tokens.
    public func generate(promptIds ids: [Int], options: GenerateOptions, adapters: AdapterSet = .none,
                         onText: ((String) -> Void)? = nil) throws -> GenerationResult {
        let request = GenerationRequest(prompt: ids, maxTokens: options.maxTokens, sampling: options.sampling,
                                        stopStrings: options.stop, eosTokenIds: model.eosTokenIds,
                                        prefillChunk: options.prefillChunk, speculation: options.speculation)
        let tok = model.tokenizer
        return try model.model.generate(request, adapters: adapters, decode: { tok.decode($0, skipSpecialTokens: false) },
                                        onText: onText)
    }

    public struct RecordScore: Sendable, Codable, Equatable {
        /// Mean NLL over this record's scored tokens, in nats.
        public var nll: Double
        public var tokens: Int
    }

    public struct ScoreReport: Sendable, Codable, Equatable {
        /// Mean NLL over all scored tokens of all records.
        public var mean_nll: Double
        public var tokens: Int
        public var records: [RecordScore]
    }

    /// Scores every record of a JSONL file (see `TextRecord`).
    public func score(file: URL, adapters: AdapterSet = .none) throws -> ScoreReport {
        let records = try model.tokenize(JSONLReader.readTextRecords(file), file: file)
        let maxLen = model.model.config.maxPositionEmbeddings
        var results: [RecordScore] = []
        var sum = 0.0, count = 0
        for (i, tr) in records.enumerated() {
            if maxLen > 0 && tr.tokens.count > maxLen {
                throw ModelError.invalidArgument("\(file.path): record \(i + 1) has \(tr.tokens.count) tokens, more than the model's context of \(maxLen)")
            }
            let nll = try model.model.negativeLogLikelihood(tr, adapters: adapters)
            results.append(RecordScore(nll: nll.mean, tokens: nll.count))
            sum += nll.sum
            count += nll.count
        }
        return ScoreReport(mean_nll: count == 0 ? .nan : sum / Double(count), tokens: count, records: results)
    }
}
