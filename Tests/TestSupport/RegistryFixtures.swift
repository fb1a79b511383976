import Foundation

/// Tiny models and adapters written by the tests (nothing committed): a Llama config with
/// D 8, F 16, L 2, H 2, Hk 1, E 4, and PEFT adapters for it in safetensors format.
public enum RegistryFixtures {
    public static let hidden = 8, intermediate = 16, layers = 2, heads = 2, kvHeads = 1, headDim = 4

    public static func writeTinyBase(to dir: URL) throws {
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let config = """
            {"architectures": ["LlamaForCausalLM"], "hidden_size": \(hidden), "intermediate_size": \(intermediate),
             "num_hidden_layers": \(layers), "num_attention_heads": \(heads), "num_key_value_heads": \(kvHeads),
             "head_dim": \(headDim), "vocab_size": 32, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
             "max_position_embeddings": 64, "tie_word_embeddings": true, "bos_token_id": 1, "eos_token_id": 2,
             "torch_dtype": "float32"}
            """
        try Data(config.utf8).write(to: dir.appendingPathComponent("config.json"))
        try Data(repeating: 7, count: 1000).write(to: dir.appendingPathComponent("model.safetensors"))
    }

    /// (in, out) of each linear layer of the tiny config.
    public static func dims(_ module: String) -> (Int, Int) {
        switch module {
        case "q_proj": return (hidden, heads * headDim)
        case "k_proj", "v_proj": return (hidden, kvHeads * headDim)
        case "o_proj": return (heads * headDim, hidden)
        case "gate_proj", "up_proj": return (hidden, intermediate)
        default: return (intermediate, hidden)
        }
    }

    public static func writeAdapter(to dir: URL, seed: Int, rank: Int, modules: [String],
                             shapeOverride: [String: [Int]] = [:], peftType: String = "LORA") throws {
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let mods = modules.map { "\"\($0)\"" }.joined(separator: ", ")
        let config = """
            {"peft_type": "\(peftType)", "r": \(rank), "lora_alpha": 16, "target_modules": [\(mods)],
             "lora_dropout": 0.0, "bias": "none", "task_type": "CAUSAL_LM", "base_model_name_or_path": "tiny"}
            """
        try Data(config.utf8).write(to: dir.appendingPathComponent("adapter_config.json"))
        var tensors: [(String, [Int])] = []
        for layer in 0..<layers {
            for m in modules {
                let group = ["gate_proj", "up_proj", "down_proj"].contains(m) ? "mlp" : "self_attn"
                let (i, o) = dims(m)
                let prefix = "base_model.model.model.layers.\(layer).\(group).\(m)"
                tensors.append(("\(prefix).lora_A.weight", [rank, i]))
                tensors.append(("\(prefix).lora_B.weight", [o, rank]))
            }
        }
        tensors = tensors.map { ($0.0, shapeOverride[$0.0] ?? $0.1) }
        try writeSafetensors(tensors, seed: seed, to: dir.appendingPathComponent("adapter_model.safetensors"))
    }

    /// F32 tensors with deterministic pseudo-random values.
    public static func writeSafetensors(_ tensors: [(String, [Int])], seed: Int, to url: URL) throws {
        var header: [String] = []
        var data = [UInt8]()
        var rng = TestRNG(seed: UInt64(truncatingIfNeeded: seed))
        _ = rng.next()
        for (name, shape) in tensors {
            let start = data.count
            for _ in 0..<shape.reduce(1, *) {
                let f = rng.signedUnit()
                withUnsafeBytes(of: f.bitPattern.littleEndian) { data.append(contentsOf: $0) }
            }
            header.append("\"\(name)\":{\"dtype\":\"F32\",\"shape\":[\(shape.map(String.init).joined(separator: ","))],\"data_offsets\":[\(start),\(data.count)]}")
        }
        var json = Array(("{" + header.joined(separator: ",") + "}").utf8)
        while json.count % 8 != 0 { json.append(UInt8(ascii: " ")) }
        var out = [UInt8]()
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
        out += json
        out += data
        try Data(out).write(to: url)
    }
}
