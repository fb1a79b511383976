import Foundation

/// Reads an HF checkpoint's `config.json` (and `generation_config.json`) into a `LlamaConfig`.
///
/// Families: Llama, Mistral and Qwen2 (see `Family` for each one's defaults). Llama's defaults are
/// transformers' `LlamaConfig` (5.x, models/llama/configuration_llama.py): num_key_value_heads
/// = num_attention_heads, head_dim = hidden_size / num_attention_heads, rms_norm_eps 1e-6, rope_theta
/// 10000, max_position_embeddings 2048, tie_word_embeddings false, bos 1, eos 2. The size fields
/// (vocab_size, hidden_size, intermediate_size, num_hidden_layers, num_attention_heads) are required:
/// a config without them is not a checkpoint's config. Every field that would change the math of
/// transformers' Llama and that this code does not implement is refused, naming the field.
public enum HFConfigLoader {
    public static let supportedArchitectures = Family.allCases.map(\.architecture)

    /// Loads `config.json` from a checkpoint directory, with `generation_config.json`'s eos ids when present.
    public static func load(directory: URL) throws -> LlamaConfig {
        let configURL = directory.appendingPathComponent("config.json")
        guard let data = FileManager.default.contents(atPath: configURL.path) else {
            throw ModelError.fileNotFound(path: configURL.path)
        }
        let genURL = directory.appendingPathComponent("generation_config.json")
        let gen = FileManager.default.contents(atPath: genURL.path)
        return try parse(config: data, path: configURL.path, generationConfig: gen, generationPath: genURL.path)
    }

    public static func parse(config data: Data, path: String, generationConfig: Data? = nil,
                             generationPath: String = "generation_config.json") throws -> LlamaConfig {
        guard let json = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw ModelError.malformedFile(path: path, offset: nil, reason: "not a JSON object")
        }
        let c = Fields(json: json, path: path)

        // Architecture: architectures[0], else model_type; the two must name the same family.
        var family: Family?
        if let archs = c.present("architectures") {
            guard let list = archs as? [Any], let first = list.first as? String else {
                throw ModelError.unsupportedConfig(path: path, field: "architectures", reason: "expected a non-empty list of names")
            }
            guard let f = Family.allCases.first(where: { $0.architecture == first }) else {
                throw ModelError.unsupportedConfig(path: path, field: "architectures",
                                                   reason: "\(first) is not supported (supported: \(supportedArchitectures.joined(separator: ", ")))")
            }
            family = f
        }
        if let mt = c.present("model_type") {
            guard let s = mt as? String, let f = Family(rawValue: s) else {
                throw ModelError.unsupportedConfig(path: path, field: "model_type",
                                                   reason: "\(mt) is not supported (\(Family.allCases.map(\.rawValue).joined(separator: ", ")) are)")
            }
            if let family, family != f {
                throw ModelError.unsupportedConfig(path: path, field: "model_type",
                                                   reason: "\(s) does not match architectures \(family.architecture)")
            }
            family = f
        }
        guard let family else { throw ModelError.missingConfigField(path: path, field: "architectures") }

        // Fields that change the math and are not implemented.
        if let act = c.present("hidden_act") {
            guard let s = act as? String, s == "silu" else {
                throw ModelError.unsupportedConfig(path: path, field: "hidden_act", reason: "\(act) is not supported (silu is)")
            }
        }
        // Only transformers' Llama reads these (Mistral and Qwen2 hard-code their biases).
        if family == .llama {
            for field in ["attention_bias", "mlp_bias"] {
                if let v = c.present(field) {
                    guard let b = boolean(v), !b else {
                        throw ModelError.unsupportedConfig(path: path, field: field, reason: "biases are not implemented (value \(v))")
                    }
                }
            }
        }
        let slidingWindow = try Self.slidingWindow(c, family: family)
        if let v = c.present("quantization_config") {
            try BnB4bitCheckpoint.validateConfig(v, path: path)  // bnb 4-bit NF4 double-quant only
        }
        let maxPos = c.present("max_position_embeddings") == nil
            ? family.defaultMaxPositionEmbeddings : try c.positiveInt("max_position_embeddings")
        let (ropeTheta, ropeScaling) = try Self.rope(c, maxPositionEmbeddings: maxPos)

        let vocab = try c.positiveInt("vocab_size")
        let hidden = try c.positiveInt("hidden_size")
        let inter = try c.positiveInt("intermediate_size")
        let layers = try c.positiveInt("num_hidden_layers")
        let heads = try c.positiveInt("num_attention_heads")
        let kvHeads = c.present("num_key_value_heads") == nil
            ? (family.defaultKVHeads ?? heads) : try c.positiveInt("num_key_value_heads")
        guard heads % kvHeads == 0 else {
            throw ModelError.unsupportedConfig(path: path, field: "num_key_value_heads",
                                               reason: "\(kvHeads) does not divide num_attention_heads \(heads)")
        }
        var headDim: Int
        if c.present("head_dim") != nil {
            headDim = try c.positiveInt("head_dim")
        } else {
            guard hidden % heads == 0 else {
                throw ModelError.unsupportedConfig(path: path, field: "hidden_size",
                                                   reason: "\(hidden) is not a multiple of num_attention_heads \(heads)")
            }
            headDim = hidden / heads
        }
        guard headDim % 2 == 0 else {
            throw ModelError.unsupportedConfig(path: path, field: "head_dim", reason: "\(headDim) is odd (RoPE rotates pairs)")
        }
        let eps = c.present("rms_norm_eps") == nil ? 1e-6 : try c.double("rms_norm_eps")
        var tie = false
        if let t = c.present("tie_word_embeddings") {
            guard let b = boolean(t) else {
                throw ModelError.unsupportedConfig(path: path, field: "tie_word_embeddings", reason: "\(t) is not a boolean")
            }
            tie = b
        }

        // Token ids: absent means transformers' default, null means none.
        var bos: Int? = json.keys.contains("bos_token_id") ? try c.tokenIds("bos_token_id").first : family.defaultBos
        var eos: [Int] = json.keys.contains("eos_token_id") ? try c.tokenIds("eos_token_id") : family.defaultEos
        if let genData = generationConfig {
            guard let g = (try? JSONSerialization.jsonObject(with: genData)) as? [String: Any] else {
                throw ModelError.malformedFile(path: generationPath, offset: nil, reason: "not a JSON object")
            }
            let gf = Fields(json: g, path: generationPath)
            if g["eos_token_id"] != nil {
                let genEos = try gf.tokenIds("eos_token_id")
                eos = genEos + eos.filter { !genEos.contains($0) }
            }
            if bos == nil, g["bos_token_id"] != nil { bos = try gf.tokenIds("bos_token_id").first }
        }

        return LlamaConfig(architecture: family.architecture, vocabSize: vocab, hiddenSize: hidden, intermediateSize: inter,
                           numLayers: layers, numHeads: heads, numKVHeads: kvHeads, headDim: headDim,
                           rmsNormEps: Float(eps), ropeTheta: ropeTheta, maxPositionEmbeddings: maxPos,
                           tieWordEmbeddings: tie, bosTokenId: bos, eosTokenIds: eos,
                           slidingWindow: slidingWindow, ropeScaling: ropeScaling)
    }

    /// A JSON number (JSONSerialization boxes booleans as NSNumber too: their objCType is "c").
    static func number(_ v: Any) -> Double? {
        guard let n = v as? NSNumber, String(cString: n.objCType) != "c" else { return nil }
        return n.doubleValue
    }

    /// A JSON boolean.
    static func boolean(_ v: Any) -> Bool? {
        guard let n = v as? NSNumber, String(cString: n.objCType) == "c" else { return nil }
        return n.boolValue
    }

    /// Typed access to a JSON object's fields, with errors naming the field.
    struct Fields {
        let json: [String: Any]
        let path: String

        /// The field's value unless absent or null.
        func present(_ key: String) -> Any? {
            guard let v = json[key], !(v is NSNull) else { return nil }
            return v
        }

        func double(_ key: String) throws -> Double {
            guard let v = present(key) else { throw ModelError.missingConfigField(path: path, field: key) }
            guard let x = HFConfigLoader.number(v), x.isFinite else {
                throw ModelError.unsupportedConfig(path: path, field: key, reason: "\(v) is not a number")
            }
            return x
        }

        func positiveInt(_ key: String) throws -> Int {
            let x = try double(key)
            guard let i = Int(exactly: x), i > 0 else {
                throw ModelError.unsupportedConfig(path: path, field: key, reason: "\(x) is not a positive integer")
            }
            return i
        }

        /// An id, a list of ids, or null (no ids).
        func tokenIds(_ key: String) throws -> [Int] {
            guard let v = present(key) else { return [] }
            let items: [Any] = (v as? [Any]) ?? [v]
            return try items.map { item in
                guard let x = HFConfigLoader.number(item), let i = Int(exactly: x), i >= 0 else {
                    throw ModelError.unsupportedConfig(path: path, field: key, reason: "\(v) is not a token id or a list of token ids")
                }
                return i
            }
        }
    }
}
