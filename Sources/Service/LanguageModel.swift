import Foundation
import Kernels
import Model
import Tokenizer

/// How a model's linear weights are held in memory. Only `none` (fp32) exists until the
/// quantization issue adds the others.
public enum QuantizationMode: String, CaseIterable, Sendable {
    case none
}

/// A base model ready to run: frozen weights, tokenizer, and what generation needs from its config.
public final class LanguageModel: @unchecked Sendable {
    public let model: LlamaModel
    public let tokenizer: Tokenizer
    public let source: URL
    public let chatTemplate: String?

    public init(model: LlamaModel, tokenizer: Tokenizer, source: URL, chatTemplate: String?) {
        self.model = model
        self.tokenizer = tokenizer
        self.source = source
        self.chatTemplate = chatTemplate
    }

    /// Loads a model from a local path: an HF directory or a .gguf file.
    public static func load(path: String, quantization: QuantizationMode = .none) throws -> LanguageModel {
        let url = URL(fileURLWithPath: (path as NSString).expandingTildeInPath)
        guard FileManager.default.fileExists(atPath: url.path) else { throw ModelError.fileNotFound(path: url.path) }
        let loaded = try ModelLoader.load(url)
        let tokenizer: Tokenizer
        switch loaded.tokenizer {
        case let .huggingFace(json, config):
            tokenizer = try Tokenizer(tokenizerJSON: json, tokenizerConfig: config)
        case let .gguf(data):
            tokenizer = try Tokenizer(gguf: data)
        }
        return LanguageModel(model: LlamaModel(config: loaded.config, weights: loaded.weights),
                             tokenizer: tokenizer, source: url,
                             chatTemplate: loaded.chatTemplate ?? tokenizer.chatTemplate)
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
