import Tokenizer

/// The model configuration and tokenizer that a GGUF file's metadata describes.
///
/// Keys are those llama.cpp's converter writes for arch `llama` (`gguf` Python package
/// `constants.py` `Keys`): `{arch}.block_count`, `.embedding_length`, `.feed_forward_length`,
/// `.attention.head_count`, `.attention.head_count_kv`, `.rope.freq_base`,
/// `.attention.layer_norm_rms_epsilon`, `.context_length`, `.attention.key_length`,
/// `.rope.dimension_count`, `.rope.scaling.type`, `.rope.scaling.factor`, and the `rope_freqs.weight`
/// tensor; tokenizer keys `tokenizer.ggml.*`.
extension GGUFFile {
    public static let supportedArchitectures = ["llama", "qwen2"]

    /// The transformers architecture of a GGUF `general.architecture`.
    static func hfArchitecture(_ arch: String) -> String {
        arch == "qwen2" ? "Qwen2ForCausalLM" : "LlamaForCausalLM"
    }

    private func require(_ key: String) throws -> GGUFValue {
        guard let v = metadata[key] else { throw ModelError.missingConfigField(path: path, field: key) }
        return v
    }

    private func positiveInt(_ key: String) throws -> Int {
        let v = try require(key)
        guard let i = v.int, i > 0 else {
            throw ModelError.unsupportedConfig(path: path, field: key, reason: "\(v) is not a positive integer")
        }
        return i
    }

    private func optionalPositiveInt(_ key: String) throws -> Int? {
        metadata[key] == nil ? nil : try positiveInt(key)
    }

    private func positiveFloat(_ key: String) throws -> Float {
        let v = try require(key)
        guard let f = v.float, f > 0, f.isFinite else {
            throw ModelError.unsupportedConfig(path: path, field: key, reason: "\(v) is not a positive number")
        }
        return f
    }

    /// The `LlamaConfig` of an arch-`llama` or arch-`qwen2` GGUF (same keys under the arch's
    /// prefix; qwen2 adds q/k/v bias tensors). Refuses other architectures (naming
    /// `general.architecture`), RoPE scaling, partial rotary and mixture-of-experts keys.
    public func llamaConfig() throws -> LlamaConfig {
        let archValue = try require("general.architecture")
        guard let arch = archValue.string, Self.supportedArchitectures.contains(arch) else {
            throw ModelError.unsupportedConfig(path: path, field: "general.architecture",
                                               reason: "\(archValue) is not supported (supported: \(Self.supportedArchitectures.joined(separator: ", ")))")
        }
        let p = arch + "."
        let linearFactor = try ropeLinearFactor(prefix: p)
        for key in ["expert_count", "expert_used_count"] {
            if let n = metadata[p + key], n.int != 0 {
                throw ModelError.unsupportedConfig(path: path, field: p + key, reason: "mixture-of-experts models are not supported (\(n))")
            }
        }

        let layers = try positiveInt(p + "block_count")
        let hidden = try positiveInt(p + "embedding_length")
        let ffn = try positiveInt(p + "feed_forward_length")
        let heads = try positiveInt(p + "attention.head_count")
        let kvHeads = try optionalPositiveInt(p + "attention.head_count_kv") ?? heads
        guard heads % kvHeads == 0 else {
            throw ModelError.unsupportedConfig(path: path, field: p + "attention.head_count_kv",
                                               reason: "\(kvHeads) does not divide the head count \(heads)")
        }
        var headDim = hidden / heads
        if let k = try optionalPositiveInt(p + "attention.key_length") {
            headDim = k
        } else if hidden % heads != 0 {
            throw ModelError.unsupportedConfig(path: path, field: p + "embedding_length",
                                               reason: "\(hidden) is not a multiple of the head count \(heads)")
        }
        if let vl = try optionalPositiveInt(p + "attention.value_length"), vl != headDim {
            throw ModelError.unsupportedConfig(path: path, field: p + "attention.value_length",
                                               reason: "\(vl) differs from the key length \(headDim)")
        }
        if let rd = try optionalPositiveInt(p + "rope.dimension_count"), rd != headDim {
            throw ModelError.unsupportedConfig(path: path, field: p + "rope.dimension_count",
                                               reason: "partial rotary (\(rd) of \(headDim) dimensions) is not implemented")
        }
        guard headDim % 2 == 0 else {
            throw ModelError.unsupportedConfig(path: path, field: p + "attention.key_length", reason: "\(headDim) is odd")
        }
        // llama.cpp's default base when the key is absent.
        let theta = metadata[p + "rope.freq_base"] == nil ? 10_000 : try positiveFloat(p + "rope.freq_base")
        let eps = try positiveFloat(p + "attention.layer_norm_rms_epsilon")
        let context = try positiveInt(p + "context_length")
        var scaling = linearFactor.map { RoPEScaling.linear(factor: $0) }
        if let factors = try ropeFrequencyFactors(headDim: headDim) {
            guard scaling == nil else {
                throw ModelError.unsupportedConfig(path: path, field: "rope_freqs.weight",
                                                   reason: "frequency factors together with linear RoPE scaling are not implemented")
            }
            scaling = .frequencyFactors(factors)
        }

        var vocab: Int
        if let v = try optionalPositiveInt(p + "vocab_size") {
            vocab = v
        } else if let tokens = metadata["tokenizer.ggml.tokens"]?.array {
            vocab = tokens.count
        } else if let embd = tensor(named: "token_embd.weight"), embd.ne.count == 2 {
            vocab = embd.ne[1]
        } else {
            throw ModelError.missingConfigField(path: path, field: "tokenizer.ggml.tokens")
        }
        if let tokens = metadata["tokenizer.ggml.tokens"]?.array, tokens.count != vocab {
            throw ModelError.unsupportedConfig(path: path, field: p + "vocab_size",
                                               reason: "\(vocab) differs from the \(tokens.count) tokens of tokenizer.ggml.tokens")
        }

        let bos = metadata["tokenizer.ggml.bos_token_id"]?.int
        var eos: [Int] = []
        for key in ["tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"] {
            if let id = metadata[key]?.int, !eos.contains(id) { eos.append(id) }
        }

        return LlamaConfig(architecture: Self.hfArchitecture(arch), vocabSize: vocab, hiddenSize: hidden, intermediateSize: ffn,
                           numLayers: layers, numHeads: heads, numKVHeads: kvHeads, headDim: headDim, rmsNormEps: eps,
                           ropeTheta: theta, maxPositionEmbeddings: context,
                           tieWordEmbeddings: tensor(named: "output.weight") == nil, bosTokenId: bos, eosTokenIds: eos,
                           ropeScaling: scaling)
    }

    /// `{arch}.rope.scaling.type` "linear" with `{arch}.rope.scaling.factor` (or the older
    /// `{arch}.rope.scale_linear`): positions scaled by 1/factor, as llama.cpp's `freq_scale`.
    /// nil when unscaled ("none", or no keys); other types (yarn, ...) are refused.
    private func ropeLinearFactor(prefix p: String) throws -> Float? {
        var type = "none"
        if let t = metadata[p + "rope.scaling.type"] {
            guard let s = t.string else {
                throw ModelError.unsupportedConfig(path: path, field: p + "rope.scaling.type", reason: "\(t) is not a string")
            }
            type = s
        }
        var factor: Float?
        for key in ["rope.scaling.factor", "rope.scale_linear"] {
            if let f = metadata[p + key] {
                guard let x = f.float, x >= 0, x.isFinite else {
                    throw ModelError.unsupportedConfig(path: path, field: p + key, reason: "\(f) is not a non-negative number")
                }
                if x != 0 && x != 1 { factor = x }
            }
        }
        switch type {
        case "none":
            if let factor, metadata[p + "rope.scaling.type"] == nil { return factor }   // legacy scale_linear alone
            if factor != nil {
                throw ModelError.unsupportedConfig(path: path, field: p + "rope.scaling.factor",
                                                   reason: "a scaling factor with rope.scaling.type none")
            }
            return nil
        case "linear":
            return factor
        default:
            throw ModelError.unsupportedConfig(path: path, field: p + "rope.scaling.type",
                                               reason: "RoPE scaling \(type) is not implemented (none and linear are)")
        }
    }

    /// llama.cpp's `rope_freqs.weight` [E/2] (Llama 3.1 GGUFs): each inverse frequency is divided
    /// by its factor (ggml_rope_ext's freq_factors).
    private func ropeFrequencyFactors(headDim: Int) throws -> [Float]? {
        guard let t = tensor(named: "rope_freqs.weight") else { return nil }
        guard t.shape == [headDim / 2] else {
            throw ModelError.wrongShape(path: path, name: "rope_freqs.weight", expected: [headDim / 2], actual: t.shape)
        }
        let f = try floats("rope_freqs.weight")
        for x in f where !(x > 0 && x.isFinite) {
            throw ModelError.unsupportedConfig(path: path, field: "rope_freqs.weight", reason: "factor \(x) is not a positive number")
        }
        return f
    }

    /// The tokenizer described by `tokenizer.ggml.*` and `tokenizer.chat_template`.
    public func tokenizerData() throws -> GGUFTokenizerData {
        let modelValue = try require("tokenizer.ggml.model")
        guard let model = modelValue.string else {
            throw ModelError.unsupportedConfig(path: path, field: "tokenizer.ggml.model", reason: "\(modelValue.typeName) is not a string")
        }
        let tokensValue = try require("tokenizer.ggml.tokens")
        guard let tokens = tokensValue.strings else {
            throw ModelError.unsupportedConfig(path: path, field: "tokenizer.ggml.tokens", reason: "not an array of strings")
        }
        func optional<T>(_ key: String, _ get: (GGUFValue) -> T?, _ expected: String) throws -> T? {
            guard let v = metadata[key] else { return nil }
            guard let x = get(v) else {
                throw ModelError.unsupportedConfig(path: path, field: key, reason: "expected \(expected), found \(v.typeName)")
            }
            return x
        }
        let types = try optional("tokenizer.ggml.token_type", { $0.ints }, "an array of integers")
        let merges = try optional("tokenizer.ggml.merges", { $0.strings }, "an array of strings")
        let scores = try optional("tokenizer.ggml.scores", { $0.floats }, "an array of numbers")
        for (key, count) in [("tokenizer.ggml.token_type", types?.count), ("tokenizer.ggml.scores", scores?.count)] {
            if let count, count != tokens.count {
                throw ModelError.unsupportedConfig(path: path, field: key, reason: "\(count) entries for \(tokens.count) tokens")
            }
        }
        func id(_ key: String) throws -> Int? {
            guard let i = try optional(key, { $0.int }, "an integer") else { return nil }
            guard i >= 0, i < tokens.count else {
                throw ModelError.unsupportedConfig(path: path, field: key, reason: "token id \(i) is outside the \(tokens.count)-token vocabulary")
            }
            return i
        }
        return GGUFTokenizerData(
            model: model,
            pre: try optional("tokenizer.ggml.pre", { $0.string }, "a string"),
            tokens: tokens,
            tokenTypes: types.map { $0.map { Int32(truncatingIfNeeded: $0) } },
            merges: merges ?? [],
            scores: scores,
            bosTokenId: try id("tokenizer.ggml.bos_token_id"),
            eosTokenId: try id("tokenizer.ggml.eos_token_id"),
            unknownTokenId: try id("tokenizer.ggml.unknown_token_id"),
            paddingTokenId: try id("tokenizer.ggml.padding_token_id"),
            addBosToken: try optional("tokenizer.ggml.add_bos_token", { $0.bool }, "a bool"),
            addEosToken: try optional("tokenizer.ggml.add_eos_token", { $0.bool }, "a bool"),
            chatTemplate: try optional("tokenizer.chat_template", { $0.string }, "a string"))
    }
}
