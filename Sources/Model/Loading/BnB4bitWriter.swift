import Foundation
import Kernels
import Quantization
import Tokenizer

/// Writes a model whose linear weights are NF4 (`--quant nf4`) as a bitsandbytes 4-bit HF checkpoint
/// directory, the layout `BnB4bitCheckpoint` reads and transformers + bitsandbytes load:
///
/// - `model.safetensors`: per linear the packed `weight` and its state tensors (see `BnB4bitCheckpoint`),
///   embeddings, norms and an untied lm_head in F32 (a tied head is not saved, as transformers does);
/// - `config.json`: the source's HF config (a GGUF's is derived from `LlamaConfig`: Llama, Mistral, Qwen2) with
///   `quantization_config` as transformers writes it and `dtype` float32;
/// - `generation_config.json`, `tokenizer.json`, `tokenizer_config.json`, `chat_template.jinja` (copied from
///   an HF source; built from the tokenizer metadata of a GGUF source).
///
/// Everything is written into a temporary directory beside `output` which is renamed into place at the end,
/// so `output` is either absent or complete.
public enum BnB4bitWriter {
    /// The transformers version whose output this mirrors (written in config.json like transformers does).
    public static let transformersVersion = "5.24.0"

    public static func write(_ model: LoadedModel, to output: URL) throws {
        let fm = FileManager.default
        guard !fm.fileExists(atPath: output.path) else {
            throw ModelError.invalidArgument("\(output.path) already exists; choose a new output directory")
        }
        let parent = output.deletingLastPathComponent()
        try? fm.createDirectory(at: parent, withIntermediateDirectories: true)
        let tmp = parent.appendingPathComponent(".\(output.lastPathComponent).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        do {
            try fm.createDirectory(at: tmp, withIntermediateDirectories: false)
        } catch {
            throw ModelError.invalidArgument("cannot create \(tmp.path): \(error.localizedDescription)")
        }
        do {
            try SafetensorsWriter.write(try tensors(model), metadata: ["format": "pt"],
                                        to: tmp.appendingPathComponent("model.safetensors"))
            try writeJSON(try configObject(model), to: tmp.appendingPathComponent("config.json"))
            try writeTokenizerFiles(model, into: tmp)
            guard rename(tmp.path, output.path) == 0 else {
                throw ModelError.invalidArgument("cannot rename \(tmp.path) to \(output.path): \(String(cString: strerror(errno)))")
            }
        } catch {
            try? fm.removeItem(at: tmp)
            throw error
        }
    }

    // MARK: tensors

    /// The safetensors tensors, sorted by name.
    static func tensors(_ model: LoadedModel) throws -> [SafetensorsWriter.Tensor] {
        let c = model.config, w = model.weights
        var out: [SafetensorsWriter.Tensor] = []
        guard w.quantizedEmbedding == nil, w.embedding.count == c.vocabSize * c.hiddenSize else {
            throw ModelError.invalidArgument("\(model.sourcePath.path): the embedding table is not held in fp32; load with --quant nf4")
        }
        let names = TensorNames.huggingFace
        out.append(f32(names.embedding, [c.vocabSize, c.hiddenSize], w.embedding))
        out.append(f32(names.finalNorm, [c.hiddenSize], w.finalNorm))
        for (i, layer) in w.layers.enumerated() {
            out.append(f32(names.layer(i, .attnNorm), [c.hiddenSize], layer.attnNorm))
            out.append(f32(names.layer(i, .mlpNorm), [c.hiddenSize], layer.mlpNorm))
            // Qwen2's q/k/v biases stay F32 beside the packed weights (Linear4bit keeps its bias unquantized).
            for (t, b) in [(TensorNames.LayerTensor.qBias, layer.qBias), (.kBias, layer.kBias), (.vBias, layer.vBias)] {
                if let b { out.append(f32(names.layer(i, t), [b.count], b)) }
            }
            let linears: [(TensorNames.LayerTensor, LinearWeight)] = [
                (.q, layer.q), (.k, layer.k), (.v, layer.v), (.o, layer.o), (.gate, layer.gate), (.up, layer.up), (.down, layer.down),
            ]
            for (t, lw) in linears {
                let name = names.layer(i, t)
                guard let nf4 = lw as? NF4Weight else {
                    throw ModelError.invalidArgument("\(name) is not held in NF4; load the source with --quant nf4")
                }
                out += try state(name: name, nf4.tensor)
            }
        }
        if !c.tieWordEmbeddings {
            guard let head = w.lmHead as? DenseWeight else {
                throw ModelError.invalidArgument("\(names.lmHead) is not held in fp32; load the source with --quant nf4")
            }
            out.append(f32(names.lmHead, [c.vocabSize, c.hiddenSize], head.data))
        }
        return out.sorted { $0.name < $1.name }
    }

    /// An F32 tensor (the host is little-endian, as safetensors stores).
    static func f32(_ name: String, _ shape: [Int], _ floats: [Float]) -> SafetensorsWriter.Tensor {
        SafetensorsWriter.Tensor(name: name, dtype: "F32", shape: shape, bytes: floats.withUnsafeBytes { Data($0) })
    }

    /// A linear weight's six tensors as bitsandbytes' `QuantState.as_dict(packed=True)` names them.
    public static func state(name: String, _ t: NF4Tensor) throws -> [SafetensorsWriter.Tensor] {
        let json = quantStateJSON(t)
        return [
            .init(name: name, dtype: "U8", shape: [t.packed.count, 1], bytes: Data(t.packed)),
            .init(name: name + BnB4bitCheckpoint.absmaxSuffix, dtype: "U8", shape: [t.absmaxCodes.count], bytes: Data(t.absmaxCodes)),
            f32(name + BnB4bitCheckpoint.quantMapSuffix, [NF4Tensor.code.count], NF4Tensor.code),
            f32(name + BnB4bitCheckpoint.nestedAbsmaxSuffix, [t.nestedAbsmax.count], t.nestedAbsmax),
            f32(name + BnB4bitCheckpoint.nestedQuantMapSuffix, [t.nestedCode.count], t.nestedCode),
            .init(name: name + BnB4bitCheckpoint.quantStateSuffix, dtype: "U8", shape: [json.count], bytes: json),
        ]
    }

    /// The quant-state JSON as bitsandbytes' `pack_dict_to_tensor` writes it: `json.dumps` of the
    /// non-tensor items in `as_dict` order, Python's default separators, the offset as Python's `repr`
    /// of the fp32 value widened to a double (Swift's shortest round-trip `Double.description` agrees).
    public static func quantStateJSON(_ t: NF4Tensor) -> Data {
        let shape = t.shape.map(String.init).joined(separator: ", ")
        let s = "{\"quant_type\": \"nf4\", \"blocksize\": \(NF4Tensor.blockSize), \"dtype\": \"float32\", \"shape\": [\(shape)], "
            + "\"nested_blocksize\": \(NF4Tensor.nestedBlockSize), \"nested_dtype\": \"float32\", \"nested_offset\": \(Double(t.offset).description)}"
        return Data(s.utf8)
    }

    // MARK: config

    /// The source's config.json (HF) or one derived from `LlamaConfig` (GGUF), with `quantization_config`.
    static func configObject(_ model: LoadedModel) throws -> [String: Any] {
        var json: [String: Any]
        let sourceConfig = model.sourcePath.appendingPathComponent("config.json")
        if model.format == .huggingFace, let data = FileManager.default.contents(atPath: sourceConfig.path),
           let obj = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] {
            json = obj
        } else {
            json = try derivedConfig(model.config)
        }
        json["quantization_config"] = BnB4bitCheckpoint.quantizationConfig
        json["dtype"] = "float32"
        json.removeValue(forKey: "torch_dtype")
        json["transformers_version"] = transformersVersion
        return json
    }

    /// An HF config.json for `c` (Llama, Mistral or Qwen2), with the fields transformers 5.24 writes and
    /// rope scaling in `rope_parameters`. llama.cpp's per-frequency factors (`rope_freqs.weight`) have no
    /// config.json spelling and are refused.
    public static func derivedConfig(_ c: LlamaConfig) throws -> [String: Any] {
        func ids(_ v: [Int]) -> Any { v.isEmpty ? NSNull() : (v.count == 1 ? v[0] as Any : v as Any) }
        var rope: [String: Any] = ["rope_theta": shortest(c.ropeTheta), "rope_type": "default"]
        switch c.ropeScaling {
        case nil: break
        case let .linear(factor)?:
            rope["rope_type"] = "linear"; rope["factor"] = shortest(factor)
        case let .llama3(factor, low, high, original)?:
            rope["rope_type"] = "llama3"; rope["factor"] = shortest(factor)
            rope["low_freq_factor"] = shortest(low); rope["high_freq_factor"] = shortest(high)
            rope["original_max_position_embeddings"] = original
        case .frequencyFactors?:
            throw ModelError.unsupportedConfig(path: "config.json", field: "rope_parameters",
                                               reason: "the GGUF's per-frequency RoPE factors (rope_freqs.weight) have no config.json form")
        }
        var json: [String: Any] = [
            "architectures": [c.architecture],
            "attention_dropout": 0.0,
            "bos_token_id": c.bosTokenId.map { $0 as Any } ?? NSNull(),
            "eos_token_id": ids(c.eosTokenIds),
            "head_dim": c.headDim,
            "hidden_act": "silu",
            "hidden_size": c.hiddenSize,
            "initializer_range": 0.02,
            "intermediate_size": c.intermediateSize,
            "max_position_embeddings": c.maxPositionEmbeddings,
            "num_attention_heads": c.numHeads,
            "num_hidden_layers": c.numLayers,
            "num_key_value_heads": c.numKVHeads,
            "rms_norm_eps": shortest(c.rmsNormEps),
            "rope_parameters": rope,
            "tie_word_embeddings": c.tieWordEmbeddings,
            "use_cache": true,
            "vocab_size": c.vocabSize,
        ]
        switch c.architecture {
        case "LlamaForCausalLM":
            json["model_type"] = "llama"
            json["attention_bias"] = false
            json["mlp_bias"] = false
            json["pretraining_tp"] = 1
        case "MistralForCausalLM":
            json["model_type"] = "mistral"
            json["sliding_window"] = c.slidingWindow.map { $0 as Any } ?? NSNull()
        case "Qwen2ForCausalLM":
            json["model_type"] = "qwen2"
            json["use_sliding_window"] = false
        default:
            throw ModelError.unsupportedConfig(path: "config.json", field: "architectures",
                                               reason: "\(c.architecture) cannot be written as an HF config")
        }
        if c.slidingWindow != nil && c.architecture != "MistralForCausalLM" {
            throw ModelError.unsupportedConfig(path: "config.json", field: "sliding_window",
                                               reason: "a sliding window on \(c.architecture) cannot be written")
        }
        return json
    }

    /// An fp32 value as the double its shortest decimal spells (1e-5, not 9.99999974737875e-06).
    static func shortest(_ f: Float) -> Double { Double(f.description) ?? Double(f) }

    // MARK: tokenizer and generation config

    static func writeTokenizerFiles(_ model: LoadedModel, into dir: URL) throws {
        let fm = FileManager.default
        switch model.tokenizer {
        case let .huggingFace(tokenizerJSON, tokenizerConfig):
            try copy(tokenizerJSON, to: dir.appendingPathComponent("tokenizer.json"))
            if let tokenizerConfig { try copy(tokenizerConfig, to: dir.appendingPathComponent("tokenizer_config.json")) }
            let src = model.sourcePath
            for name in ["chat_template.jinja", "generation_config.json", "special_tokens_map.json"] {
                let f = src.appendingPathComponent(name)
                if fm.fileExists(atPath: f.path) { try copy(f, to: dir.appendingPathComponent(name)) }
            }
            if !fm.fileExists(atPath: src.appendingPathComponent("generation_config.json").path) {
                try writeJSON(generationConfig(model.config), to: dir.appendingPathComponent("generation_config.json"))
            }
        case let .gguf(g):
            let tokenizerJSON: [String: Any]
            do { tokenizerJSON = try g.tokenizerJSONObject() } catch {
                throw ModelError.invalidArgument("\(model.sourcePath.path): cannot write tokenizer.json: \(error)")
            }
            try writeJSON(tokenizerJSON, to: dir.appendingPathComponent("tokenizer.json"), compact: true)
            try writeJSON(g.tokenizerConfigObject(modelMaxLength: model.config.maxPositionEmbeddings),
                          to: dir.appendingPathComponent("tokenizer_config.json"))
            if let template = model.chatTemplate {
                try write(Data(template.utf8), to: dir.appendingPathComponent("chat_template.jinja"))
            }
            try writeJSON(generationConfig(model.config), to: dir.appendingPathComponent("generation_config.json"))
        }
    }

    /// generation_config.json as transformers derives it from a model config.
    public static func generationConfig(_ c: LlamaConfig) -> [String: Any] {
        var g: [String: Any] = ["_from_model_config": true, "transformers_version": transformersVersion, "use_cache": true]
        if let b = c.bosTokenId { g["bos_token_id"] = b }
        if !c.eosTokenIds.isEmpty { g["eos_token_id"] = c.eosTokenIds.count == 1 ? c.eosTokenIds[0] as Any : c.eosTokenIds as Any }
        return g
    }

    /// Configs as Python writes them (floats keep their fraction); tokenizer.json (large, no floats) compactly.
    static func writeJSON(_ object: [String: Any], to url: URL, compact: Bool = false) throws {
        var data: Data
        if compact {
            data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
            data.append(0x0A)
        } else {
            data = try PythonStyleJSON.data(object)
        }
        try write(data, to: url)
    }

    static func write(_ data: Data, to url: URL) throws {
        do { try data.write(to: url) } catch {
            throw ModelError.invalidArgument("cannot write \(url.path): \(error.localizedDescription)")
        }
    }

    static func copy(_ src: URL, to dst: URL) throws {
        guard let data = FileManager.default.contents(atPath: src.path) else { throw ModelError.fileNotFound(path: src.path) }
        try write(data, to: dst)
    }
}
