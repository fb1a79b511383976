import Foundation
import Model
import Registry

/// What the registry records about a base model besides its files' hashes.
public struct BaseModelInfo: Sendable, Equatable {
    public var architecture: String
    public var quantization: String
    /// The shape adapters are checked against; nil when unknown (then imports skip the shape
    /// check and say so).
    public var config: LlamaConfig?

    public init(architecture: String, quantization: String, config: LlamaConfig?) {
        self.architecture = architecture
        self.quantization = quantization
        self.config = config
    }
}

/// Reads a base model's architecture, quantization and shape. The CLI wires the Model target's
/// loader here (GGUF metadata, HF config.json); tests inject small configs.
public protocol BaseModelInspector: Sendable {
    func inspect(_ source: URL) throws -> BaseModelInfo
}

/// An inspector from a closure.
public struct ClosureInspector: BaseModelInspector {
    let body: @Sendable (URL) throws -> BaseModelInfo
    public init(_ body: @escaping @Sendable (URL) throws -> BaseModelInfo) { self.body = body }
    public func inspect(_ source: URL) throws -> BaseModelInfo { try body(source) }
}

/// Reads HF-style directories (`config.json`: hidden_size, intermediate_size, num_hidden_layers,
/// num_attention_heads, num_key_value_heads, head_dim, vocab_size, quantization_config) itself,
/// and hands other sources (GGUF files) to `fallback`. Without a fallback a GGUF file is
/// recorded as architecture "gguf", quantization "unknown", shape unknown.
public struct DefaultBaseModelInspector: BaseModelInspector {
    let fallback: (@Sendable (URL) throws -> BaseModelInfo)?

    public init(fallback: (@Sendable (URL) throws -> BaseModelInfo)? = nil) {
        self.fallback = fallback
    }

    public func inspect(_ source: URL) throws -> BaseModelInfo {
        var isDir: ObjCBool = false
        let configURL = source.appendingPathComponent("config.json")
        if FileManager.default.fileExists(atPath: source.path, isDirectory: &isDir), isDir.boolValue,
           FileManager.default.fileExists(atPath: configURL.path) {
            return try Self.readHFConfig(configURL)
        }
        if let fallback { return try fallback(source) }
        return BaseModelInfo(architecture: source.pathExtension.lowercased() == "gguf" ? "gguf" : "unknown",
                             quantization: "unknown", config: nil)
    }

    /// Parses the fields of an HF config.json that fix adapter shapes.
    public static func readHFConfig(_ url: URL) throws -> BaseModelInfo {
        let json = try JSONValue.parse(try Data(contentsOf: url))
        func int(_ key: String) throws -> Int {
            guard let v = json[key]?.intValue else { throw ModelError.missingConfigField(path: url.path, field: key) }
            return v
        }
        let heads = try int("num_attention_heads"), hidden = try int("hidden_size")
        let eos: [Int] = json["eos_token_id"]?.intValue.map { [$0] } ?? json["eos_token_id"]?.arrayValue?.compactMap(\.intValue) ?? []
        let config = LlamaConfig(
            architecture: json["architectures"]?.arrayValue?.first?.stringValue ?? "LlamaForCausalLM",
            vocabSize: try int("vocab_size"), hiddenSize: hidden, intermediateSize: try int("intermediate_size"),
            numLayers: try int("num_hidden_layers"), numHeads: heads,
            numKVHeads: json["num_key_value_heads"]?.intValue ?? heads, headDim: json["head_dim"]?.intValue,
            rmsNormEps: Float(json["rms_norm_eps"]?.doubleValue ?? 1e-5),
            ropeTheta: Float(json["rope_theta"]?.doubleValue ?? 10000),
            maxPositionEmbeddings: json["max_position_embeddings"]?.intValue ?? 2048,
            tieWordEmbeddings: json["tie_word_embeddings"]?.boolValue ?? false,
            bosTokenId: json["bos_token_id"]?.intValue, eosTokenIds: eos)
        let quant = json["quantization_config"]?["quant_method"]?.stringValue
            ?? json["torch_dtype"]?.stringValue ?? json["dtype"]?.stringValue ?? "none"
        return BaseModelInfo(architecture: config.architecture, quantization: quant, config: config)
    }
}
