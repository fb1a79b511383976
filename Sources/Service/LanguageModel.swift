import ChatTemplate
import Fetch
import Foundation
import Kernels
import Model
import Tokenizer

/// A base model ready to run: frozen weights, tokenizer, and what generation needs from its config.
public final class LanguageModel: @unchecked Sendable {
    public let model: LlamaModel
    public let tokenizer: Tokenizer
    public let source: URL
    public let chatTemplate: String?
    /// `chatTemplate` parsed once, with the model: every chat render (each `lora chat` turn, each
    /// `/v1/chat/completions` request) shares this one syntax tree. nil without a template; a template
    /// that does not parse keeps its error, thrown by `parsedChatTemplate()` to whoever needs chat, so the
    /// model still loads for plain prompts, scoring and training on text.
    public let chatTemplateParse: Result<ChatTemplate, any Error>?

    public init(model: LlamaModel, tokenizer: Tokenizer, source: URL, chatTemplate: String?) {
        self.model = model
        self.tokenizer = tokenizer
        self.source = source
        self.chatTemplate = chatTemplate
        chatTemplateParse = chatTemplate.map { source in Result { try ChatTemplate(source) } }
    }

    /// The parsed chat template (nil without one); throws the template's parse error (line and column).
    public func parsedChatTemplate() throws -> ChatTemplate? { try chatTemplateParse?.get() }

    /// Loads a model from a local path (an HF directory or a .gguf file) or a URL, which is
    /// fetched into the content-addressed cache first (resumable, verified).
    public static func load(path: String, quantization: QuantizationMode = .auto,
                            fetcher: ModelFetcher? = nil,
                            progress: ((FetchProgress) -> Void)? = nil) throws -> LanguageModel {
        let local: String
        if ModelFetcher.isRemote(path) {
            local = try (fetcher ?? ModelFetcher()).fetchModel(path, progress: progress).path
        } else {
            local = path
        }
        let url = URL(fileURLWithPath: (local as NSString).expandingTildeInPath)
        guard FileManager.default.fileExists(atPath: url.path) else { throw ModelError.fileNotFound(path: url.path) }
        let loaded = try ModelLoader.load(url, quantization: quantization)
        let tokenizer: Tokenizer
        switch loaded.tokenizer {
        case let .huggingFace(json, config):
            tokenizer = try Tokenizer(tokenizerJSON: json, tokenizerConfig: config)
        case let .gguf(data):
            tokenizer = try Tokenizer(gguf: data)
        }
        // Every id the tokenizer can produce must have an embedding row (the config's vocab_size was
        // checked against the embedding's rows when loading); more rows than tokens is normal (padding).
        if tokenizer.vocabSize > loaded.config.vocabSize {
            let (file, field): (String, String)
            switch loaded.tokenizer {
            case let .huggingFace(json, _): (file, field) = (json.path, "model.vocab")
            case .gguf: (file, field) = (url.path, "tokenizer.ggml.tokens")
            }
            throw ModelError.unsupportedConfig(path: file, field: field, reason: "the tokenizer has ids up to \(tokenizer.vocabSize - 1), "
                + "but the model's vocab_size (embedding rows) is \(loaded.config.vocabSize)")
        }
        return LanguageModel(model: LlamaModel(config: loaded.config, weights: loaded.weights),
                             tokenizer: tokenizer, source: url,
                             chatTemplate: loaded.chatTemplate ?? tokenizer.chatTemplate)
    }

    /// The chat template and BOS/EOS strings chat records are rendered with; nil without a template.
    public func chatFormat() throws -> ChatFormat? {
        guard let template = try parsedChatTemplate() else { return nil }
        return ChatFormat(template: template, tokenizer: tokenizer)
    }

    /// Tokenizes records as `lora score` and `lora train` define them (chat records through the chat template).
    public func tokenize(_ records: [TextRecord], file: URL) throws -> [TokenizedRecord] {
        let needsEOS = records.contains { if case .promptCompletion = $0 { return true } else { return false } }
        let eos = needsEOS ? try scoringEOS() : 0
        let hasChat = records.contains { if case .chat = $0 { return true } else { return false } }
        let chat = hasChat ? try chatFormat() : nil
        if hasChat && chat == nil {
            throw ModelError.invalidArgument("\(file.path): chat records need a chat template, and \(source.path) has none")
        }
        return try records.enumerated().map { i, r in
            do { return try r.tokenize(with: tokenizer, eosTokenId: eos, chat: chat) } catch {
                throw ModelError.badInput(path: file.path, line: i + 1, reason: "\(error)")
            }
        }
    }

    /// Token ids that end generation: the config's EOS ids and the tokenizer's EOS.
    public var eosTokenIds: Set<Int> {
        var s = Set(model.config.eosTokenIds)
        if let e = tokenizer.eosTokenId { s.insert(e) }
        return s
    }

    /// The EOS appended to prompt/completion records: the tokenizer's, else the config's first.
    public func scoringEOS() throws -> Int {
        if let e = tokenizer.eosTokenId ?? model.config.eosTokenIds.first { return e }
        throw ModelError.invalidArgument("\(source.path): the model defines no EOS token; prompt/completion records need one")
    }
}
