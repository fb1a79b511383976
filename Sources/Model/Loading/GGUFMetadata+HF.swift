import Foundation
import Tokenizer

extension LlamaConfig {
    /// llama.cpp's converter's GGUF architecture for this transformers architecture (Mistral and
    /// SmolLM are `llama`). A GGUF base keeps its own `general.architecture`.
    public var ggufArchitecture: String {
        architecture == "Qwen2ForCausalLM" ? "qwen2" : "llama"
    }
}

/// The GGUF metadata of a model read from an HF checkpoint, as llama.cpp's converter writes it
/// (convert_hf_to_gguf.py `TextModel.set_gguf_parameters`, gguf-py `constants.py` `Keys`): the
/// keys `GGUFFile.llamaConfig()` reads back to the same configuration, and the tokenizer's
/// `tokenizer.ggml.*` keys and chat template.
enum GGUFModelMetadata {
    /// Architecture and tokenizer keys, and the `rope_freqs.weight` values when the RoPE scaling
    /// is per-frequency (Llama 3.1's, as the converter's `generate_extra_tensors` writes it).
    static func fromHuggingFace(_ model: LoadedModel) throws -> (metadata: [(String, GGUFValue)], ropeFactors: [Float]?) {
        let c = model.config, path = model.sourcePath.path
        let arch = c.ggufArchitecture, p = arch + "."
        if let window = c.slidingWindow, window < c.maxPositionEmbeddings {
            throw ModelError.unsupportedConfig(path: path, field: "sliding_window",
                                               reason: "a \(window)-token window has no equivalent in llama.cpp's \(arch) architecture")
        }
        var kv: [(String, GGUFValue)] = [
            ("general.architecture", .string(arch)),
            ("general.name", .string(model.name)),
            (p + "vocab_size", .uint32(UInt32(c.vocabSize))),
            (p + "context_length", .uint32(UInt32(c.maxPositionEmbeddings))),
            (p + "embedding_length", .uint32(UInt32(c.hiddenSize))),
            (p + "block_count", .uint32(UInt32(c.numLayers))),
            (p + "feed_forward_length", .uint32(UInt32(c.intermediateSize))),
            (p + "attention.head_count", .uint32(UInt32(c.numHeads))),
            (p + "attention.head_count_kv", .uint32(UInt32(c.numKVHeads))),
            (p + "rope.freq_base", .float32(c.ropeTheta)),
            (p + "attention.layer_norm_rms_epsilon", .float32(c.rmsNormEps)),
            (p + "rope.dimension_count", .uint32(UInt32(c.headDim))),
        ]
        if c.headDim * c.numHeads != c.hiddenSize {
            kv.append((p + "attention.key_length", .uint32(UInt32(c.headDim))))
            kv.append((p + "attention.value_length", .uint32(UInt32(c.headDim))))
        }
        var ropeFactors: [Float]?
        switch c.ropeScaling {
        case nil: break
        case let .linear(factor)?:
            kv.append((p + "rope.scaling.type", .string("linear")))
            kv.append((p + "rope.scaling.factor", .float32(factor)))
        case let .frequencyFactors(f)?:
            ropeFactors = f
        case let scaling?:
            // Per-frequency divisors: default inverse frequency / scaled one (what llama.cpp divides by).
            let base = (0..<(c.headDim / 2)).map { i in 1 / powf(c.ropeTheta, Float(2 * i) / Float(c.headDim)) }
            ropeFactors = zip(base, scaling.apply(to: base)).map { $0 / $1 }
        }

        guard case let .huggingFace(json, config) = model.tokenizer else {
            throw ModelError.invalidArgument("\(path): not an HF checkpoint")
        }
        let t: GGUFTokenizerData
        do {
            t = try GGUFTokenizerData(tokenizerJSON: json, tokenizerConfig: config, vocabularySize: c.vocabSize,
                                      chatTemplate: model.chatTemplate)
        } catch let e as TokenizerError {
            throw ModelError.invalidArgument("\(e.description); --format gguf cannot describe this tokenizer, use --format hf")
        }
        kv.append(("tokenizer.ggml.model", .string(t.model)))
        if let pre = t.pre { kv.append(("tokenizer.ggml.pre", .string(pre))) }
        kv.append(("tokenizer.ggml.tokens", .array(t.tokens.map { .string($0) })))
        if let types = t.tokenTypes { kv.append(("tokenizer.ggml.token_type", .array(types.map { .int32($0) }))) }
        kv.append(("tokenizer.ggml.merges", .array(t.merges.map { .string($0) })))
        for (key, id) in [("bos_token_id", t.bosTokenId), ("eos_token_id", t.eosTokenId),
                          ("unknown_token_id", t.unknownTokenId), ("padding_token_id", t.paddingTokenId)] {
            if let id { kv.append(("tokenizer.ggml." + key, .uint32(UInt32(id)))) }
        }
        // An end-of-generation id of config.json that the tokenizer's EOS is not (Llama 3's <|eot_id|>):
        // llama.cpp stops at `eot_token_id` too, as `GGUFFile.llamaConfig()` reads it back.
        if let eot = c.eosTokenIds.first(where: { $0 != t.eosTokenId }), eot < c.vocabSize {
            kv.append(("tokenizer.ggml.eot_token_id", .uint32(UInt32(eot))))
        }
        if let b = t.addBosToken { kv.append(("tokenizer.ggml.add_bos_token", .bool(b))) }
        if let e = t.addEosToken { kv.append(("tokenizer.ggml.add_eos_token", .bool(e))) }
        if let template = t.chatTemplate { kv.append(("tokenizer.chat_template", .string(template))) }
        return (kv, ropeFactors)
    }
}
