import Foundation

extension HFConfigLoader {
    /// The decoder families read from `config.json`, by `model_type`. They share Llama's math;
    /// what differs is listed here and in `LlamaConfig` (Qwen2's q/k/v biases, Mistral's window).
    public enum Family: String, CaseIterable, Sendable {
        case llama
        case mistral
        case qwen2

        public var architecture: String {
            switch self {
            case .llama: return "LlamaForCausalLM"
            case .mistral: return "MistralForCausalLM"
            case .qwen2: return "Qwen2ForCausalLM"
            }
        }

        // Defaults of transformers 5.x models/{llama,mistral,qwen2}/configuration_*.py for absent fields.

        /// nil: num_attention_heads (Llama). Mistral's dataclass default is 8, Qwen2's 32.
        var defaultKVHeads: Int? {
            switch self {
            case .llama: return nil
            case .mistral: return 8
            case .qwen2: return 32
            }
        }

        var defaultMaxPositionEmbeddings: Int {
            switch self {
            case .llama: return 2048
            case .mistral: return 4096 * 32
            case .qwen2: return 32768
            }
        }

        var defaultBos: Int? { self == .qwen2 ? nil : 1 }
        var defaultEos: [Int] { self == .qwen2 ? [] : [2] }
    }

    /// The attention window. Mistral: `sliding_window` (absent means transformers' default 4096,
    /// null means none). Qwen2: windows only when `use_sliding_window` is true, and then only on
    /// layers from `max_window_layers` on: refused. Llama has no window: the field is refused.
    static func slidingWindow(_ c: Fields, family: Family) throws -> Int? {
        switch family {
        case .llama:
            if let v = c.present("sliding_window") {
                throw ModelError.unsupportedConfig(path: c.path, field: "sliding_window",
                                                   reason: "LlamaForCausalLM has no sliding-window attention (value \(v))")
            }
            return nil
        case .mistral:
            guard c.json.keys.contains("sliding_window") else { return 4096 }
            guard c.present("sliding_window") != nil else { return nil }
            return try c.positiveInt("sliding_window")
        case .qwen2:
            if let v = c.present("use_sliding_window") {
                guard let b = boolean(v), !b else {
                    throw ModelError.unsupportedConfig(path: c.path, field: "use_sliding_window",
                                                       reason: "Qwen2's per-layer sliding-window attention is not implemented (value \(v))")
                }
            }
            if let v = c.present("layer_types") {
                guard let list = v as? [String], list.allSatisfy({ $0 == "full_attention" }) else {
                    throw ModelError.unsupportedConfig(path: c.path, field: "layer_types",
                                                       reason: "only full_attention layers are implemented (value \(v))")
                }
            }
            return nil
        }
    }

    /// rope_theta and the scaling, read as transformers 5 does (`convert_rope_params_to_dict`,
    /// `standardize_rope_params`): the parameters are `rope_scaling` (legacy spelling) when
    /// non-empty, else `rope_parameters`; rope_theta comes from them, else the top level, else
    /// 10000; the type is `rope_type`, else `type`, else "default". Types other than default,
    /// linear and llama3 are refused naming the field.
    static func rope(_ c: Fields, maxPositionEmbeddings: Int) throws -> (theta: Float, scaling: RoPEScaling?) {
        var field = "rope_parameters"
        var params: [String: Any] = [:]
        if let v = c.present("rope_scaling"), !((v as? [String: Any])?.isEmpty ?? false) {
            guard let d = v as? [String: Any] else {
                throw ModelError.unsupportedConfig(path: c.path, field: "rope_scaling", reason: "expected an object (value \(v))")
            }
            field = "rope_scaling"; params = d
        } else if let v = c.present("rope_parameters") {
            guard let d = v as? [String: Any] else {
                throw ModelError.unsupportedConfig(path: c.path, field: "rope_parameters", reason: "expected an object")
            }
            params = d
        }
        let p = Fields(json: params, path: c.path)
        func number(_ key: String) throws -> Double {
            guard let v = p.present(key) else { throw ModelError.missingConfigField(path: c.path, field: "\(field).\(key)") }
            guard let x = HFConfigLoader.number(v), x.isFinite, x > 0 else {
                throw ModelError.unsupportedConfig(path: c.path, field: "\(field).\(key)", reason: "\(v) is not a positive number")
            }
            return x
        }

        var theta: Float = 10_000
        if p.present("rope_theta") != nil {
            theta = Float(try number("rope_theta"))
        } else if c.present("rope_theta") != nil {
            let x = try c.double("rope_theta")
            guard x > 0 else { throw ModelError.unsupportedConfig(path: c.path, field: "rope_theta", reason: "\(x) is not positive") }
            theta = Float(x)
        } else if field == "rope_parameters" && !params.isEmpty {
            throw ModelError.missingConfigField(path: c.path, field: "rope_parameters.rope_theta")
        }

        for (name, value) in [("\(field).partial_rotary_factor", p.present("partial_rotary_factor")),
                              ("partial_rotary_factor", c.present("partial_rotary_factor"))] {
            if let f = value {
                guard let x = HFConfigLoader.number(f), x == 1 else {
                    throw ModelError.unsupportedConfig(path: c.path, field: name,
                                                       reason: "partial rotary embeddings are not implemented (value \(f))")
                }
            }
        }

        let typeValue = p.present("rope_type") ?? p.present("type") ?? "default"
        guard let type = typeValue as? String else {
            throw ModelError.unsupportedConfig(path: c.path, field: "\(field).rope_type", reason: "\(typeValue) is not a string")
        }
        switch type {
        case "default":
            return (theta, nil)
        case "linear":
            return (theta, .linear(factor: Float(try number("factor"))))
        case "llama3":
            let factor = try number("factor"), low = try number("low_freq_factor"), high = try number("high_freq_factor")
            guard high > low else {
                throw ModelError.unsupportedConfig(path: c.path, field: "\(field).high_freq_factor",
                                                   reason: "\(high) is not above low_freq_factor \(low)")
            }
            // A top-level original_max_position_embeddings wins; else the scaling's; else the context.
            var original = maxPositionEmbeddings
            if c.present("original_max_position_embeddings") != nil {
                original = try c.positiveInt("original_max_position_embeddings")
            } else if p.present("original_max_position_embeddings") != nil {
                original = try p.positiveInt("original_max_position_embeddings")
            }
            return (theta, .llama3(factor: Float(factor), lowFreqFactor: Float(low), highFreqFactor: Float(high),
                                   originalMaxPositionEmbeddings: original))
        default:
            throw ModelError.unsupportedConfig(path: c.path, field: "\(field).rope_type",
                                               reason: "RoPE type \(type) is not implemented (default, linear and llama3 are)")
        }
    }
}
