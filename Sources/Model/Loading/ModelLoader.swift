import Foundation
import Tokenizer

/// Where a model's tokenizer is described.
public enum TokenizerSource: Sendable, Equatable {
    /// An HF checkpoint's `tokenizer.json` and, when present, `tokenizer_config.json`.
    case huggingFace(tokenizerJSON: URL, tokenizerConfig: URL?)
    /// A GGUF file's `tokenizer.ggml.*` metadata.
    case gguf(GGUFTokenizerData)
}

/// A model ready to run: configuration, fp32 weights (HF layout), tokenizer and chat template.
public struct LoadedModel: @unchecked Sendable {
    public enum Format: String, Sendable { case huggingFace = "hf", gguf }

    public var config: LlamaConfig
    public var weights: ModelWeights
    public var tokenizer: TokenizerSource
    /// `chat_template.jinja`, else `tokenizer_config.json`'s `chat_template`, else GGUF `tokenizer.chat_template`.
    public var chatTemplate: String?
    /// The directory or file the model was loaded from.
    public var sourcePath: URL
    public var format: Format
    /// A display name: GGUF `general.name`, else the file or directory name.
    public var name: String

    public init(config: LlamaConfig, weights: ModelWeights, tokenizer: TokenizerSource, chatTemplate: String?,
                sourcePath: URL, format: Format, name: String) {
        self.config = config; self.weights = weights; self.tokenizer = tokenizer; self.chatTemplate = chatTemplate
        self.sourcePath = sourcePath; self.format = format; self.name = name
    }

    /// "name (format, L layers, D width, ...)".
    public var description: String {
        let c = config
        return "\(name) (\(format.rawValue), \(c.numLayers) layers, D \(c.hiddenSize), F \(c.intermediateSize), "
            + "H \(c.numHeads)/Hk \(c.numKVHeads), E \(c.headDim), V \(c.vocabSize)\(c.tieWordEmbeddings ? ", tied" : ""))"
    }
}

/// The one entry point for reading models: a directory is an HF checkpoint (`config.json` plus
/// `model.safetensors` or its shard index); a file ending in `.gguf` is GGUF.
public enum ModelLoader {
    /// Loads a model with its linear weights held as `quantization` says (fp32 by default).
    public static func load(_ url: URL, quantization: QuantizationMode = .none) throws -> LoadedModel {
        switch try kind(of: url) {
        case .huggingFace: return try loadHuggingFace(url, quantization: quantization)
        case .gguf: return try loadGGUF(url, quantization: quantization)
        }
    }

    /// The configuration alone (reads only metadata, no tensor data).
    public static func loadConfig(_ url: URL) throws -> LlamaConfig {
        switch try kind(of: url) {
        case .huggingFace: return try HFConfigLoader.load(directory: url)
        case .gguf: return try GGUFFile(url).llamaConfig()
        }
    }

    static func kind(of url: URL) throws -> LoadedModel.Format {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir) else {
            throw ModelError.fileNotFound(path: url.path)
        }
        if isDir.boolValue { return .huggingFace }
        if url.pathExtension.lowercased() == "gguf" { return .gguf }
        throw ModelError.invalidArgument("\(url.path): expected an HF checkpoint directory or a .gguf file")
    }

    // MARK: GGUF

    public static func loadGGUF(_ url: URL, quantization: QuantizationMode = .none) throws -> LoadedModel {
        let file = try GGUFFile(url)
        let config = try file.llamaConfig()
        let tokenizer = try file.tokenizerData()
        let source = TensorSource(
            path: { _ in url.path },
            shape: { file.tensor(named: $0)?.shape },
            floats: { try file.floats($0) },
            raw: { name in
                guard let t = file.tensor(named: name) else { return nil }
                return (t.type, try file.rawBytes(name))
            })
        // auto: a GGUF whose linear weights are stored in blocks we compute with keeps them; else NF4.
        var quant = quantization
        if quant == .auto {
            let q = file.tensor(named: TensorNames.gguf.layer(0, .q))?.type
            quant = q.map { WeightLoader.keptTypes.contains($0) } == true ? .keep : .nf4
        }
        // convert_hf_to_gguf.py permutes q/k rows for arch llama only (qwen2 keeps HF's rotate-half rows).
        var names = TensorNames.gguf
        names.permutedQK = config.architecture == "LlamaForCausalLM"
        try ConfigClaims.check(config, names: names, source: source,
                               fields: .gguf(path: url.path, arch: file.metadata["general.architecture"]?.string ?? "llama"))
        let weights = try WeightLoader.load(config: config, names: names, source: source, quant: quant)
        let name = file.metadata["general.name"]?.string ?? url.deletingPathExtension().lastPathComponent
        return LoadedModel(config: config, weights: weights, tokenizer: .gguf(tokenizer),
                           chatTemplate: tokenizer.chatTemplate, sourcePath: url, format: .gguf, name: name)
    }

    // MARK: Hugging Face directory

    public static func loadHuggingFace(_ dir: URL, quantization: QuantizationMode = .none) throws -> LoadedModel {
        let config = try HFConfigLoader.load(directory: dir)
        let tokenizerJSON = dir.appendingPathComponent("tokenizer.json")
        guard FileManager.default.fileExists(atPath: tokenizerJSON.path) else {
            throw ModelError.fileNotFound(path: tokenizerJSON.path)
        }
        let tokenizerConfigURL = dir.appendingPathComponent("tokenizer_config.json")
        let hasTokenizerConfig = FileManager.default.fileExists(atPath: tokenizerConfigURL.path)
        let template = try chatTemplate(directory: dir, tokenizerConfig: hasTokenizerConfig ? tokenizerConfigURL : nil)

        let collection = try SafetensorsCollection(directory: dir)
        var source = TensorSource(
            path: { collection.path(for: $0) },
            shape: { collection.info($0)?.shape },
            floats: { try collection.floats($0) })
        // fp16/bf16/fp32 checkpoints become NF4 under auto; `keep` has no blocks to keep here.
        var quant: QuantizationMode = quantization == .auto ? .nf4 : (quantization == .keep ? .none : quantization)
        if try BnB4bitCheckpoint.isQuantized(directory: dir) {
            // A bnb-4bit checkpoint stays as stored under auto, keep and nf4 (no re-quantization).
            if quantization == .keep { quant = .nf4 }
            source.nf4 = { try BnB4bitCheckpoint.storedNF4(collection, name: $0, expectedShape: $1) }
        }
        try ConfigClaims.check(config, names: .huggingFace, source: source,
                               fields: .huggingFace(path: dir.appendingPathComponent("config.json").path))
        let weights = try WeightLoader.load(config: config, names: .huggingFace, source: source, quant: quant)
        return LoadedModel(config: config, weights: weights,
                           tokenizer: .huggingFace(tokenizerJSON: tokenizerJSON,
                                                   tokenizerConfig: hasTokenizerConfig ? tokenizerConfigURL : nil),
                           chatTemplate: template, sourcePath: dir, format: .huggingFace,
                           name: dir.standardizedFileURL.lastPathComponent)
    }

    /// `chat_template.jinja` (what transformers 5 writes), else `tokenizer_config.json`'s
    /// `chat_template` (a string, or a list of {name, template} of which "default" is used).
    static func chatTemplate(directory: URL, tokenizerConfig: URL?) throws -> String? {
        let jinja = directory.appendingPathComponent("chat_template.jinja")
        if let data = FileManager.default.contents(atPath: jinja.path) {
            return String(decoding: data, as: UTF8.self)
        }
        guard let tokenizerConfig, let data = FileManager.default.contents(atPath: tokenizerConfig.path) else { return nil }
        guard let json = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw ModelError.malformedFile(path: tokenizerConfig.path, offset: nil, reason: "not a JSON object")
        }
        switch json["chat_template"] {
        case let s as String:
            return s
        case let list as [Any]:
            for item in list {
                if let d = item as? [String: Any], d["name"] as? String == "default", let t = d["template"] as? String { return t }
            }
            throw ModelError.unsupportedConfig(path: tokenizerConfig.path, field: "chat_template", reason: "no template named \"default\"")
        case nil, is NSNull:
            return nil
        default:
            throw ModelError.unsupportedConfig(path: tokenizerConfig.path, field: "chat_template", reason: "not a string")
        }
    }
}
