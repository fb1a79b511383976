import Foundation
import Model
import TestSupport
import XCTest

final class ConfigLoadingTests: XCTestCase {
    static let path = "/models/x/config.json"

    /// SmolLM2-135M's config.json (values from the default model's GGUF metadata).
    static func base() -> [String: Any] {
        ["architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 49152, "hidden_size": 576,
         "intermediate_size": 1536, "num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3,
         "hidden_act": "silu", "max_position_embeddings": 8192, "rms_norm_eps": 1e-5, "rope_theta": 100000.0,
         "rope_scaling": NSNull(), "tie_word_embeddings": true, "bos_token_id": 1, "eos_token_id": 2,
         "attention_bias": false, "mlp_bias": false, "pretraining_tp": 1]
    }

    func parse(_ json: [String: Any], generation: [String: Any]? = nil) throws -> LlamaConfig {
        let data = try JSONSerialization.data(withJSONObject: json)
        let gen = try generation.map { try JSONSerialization.data(withJSONObject: $0) }
        return try HFConfigLoader.parse(config: data, path: Self.path, generationConfig: gen)
    }

    func assertRefused(_ change: (inout [String: Any]) -> Void, field: String, file: StaticString = #filePath, line: UInt = #line) {
        var json = Self.base()
        change(&json)
        XCTAssertThrowsError(try parse(json), file: file, line: line) { error in
            guard case let ModelError.unsupportedConfig(path, f, _) = error else {
                return XCTFail("expected unsupportedConfig(\(field)), got \(error)", file: file, line: line)
            }
            XCTAssertEqual(path, Self.path, file: file, line: line)
            XCTAssertEqual(f, field, file: file, line: line)
            XCTAssertTrue("\(error)".contains(field), file: file, line: line)
        }
    }

    func testSmolLMConfigGivesTheReferenceValues() throws {
        let c = try parse(Self.base())
        XCTAssertEqual(c, LlamaConfig(vocabSize: 49152, hiddenSize: 576, intermediateSize: 1536, numLayers: 30, numHeads: 9,
                                      numKVHeads: 3, headDim: 64, rmsNormEps: 1e-5, ropeTheta: 100_000,
                                      maxPositionEmbeddings: 8192, tieWordEmbeddings: true, bosTokenId: 1, eosTokenIds: [2]))
    }

    func testDefaultsFollowTransformersLlamaConfig() throws {
        var json = Self.base()
        for k in ["num_key_value_heads", "rms_norm_eps", "rope_theta", "max_position_embeddings", "tie_word_embeddings",
                  "bos_token_id", "eos_token_id", "hidden_act", "rope_scaling", "model_type"] { json[k] = nil }
        let c = try parse(json)
        XCTAssertEqual(c.numKVHeads, 9)
        XCTAssertEqual(c.headDim, 64)
        XCTAssertEqual(c.rmsNormEps, 1e-6)
        XCTAssertEqual(c.ropeTheta, 10_000)
        XCTAssertEqual(c.maxPositionEmbeddings, 2048)
        XCTAssertFalse(c.tieWordEmbeddings)
        XCTAssertEqual(c.bosTokenId, 1)
        XCTAssertEqual(c.eosTokenIds, [2])
    }

    func testRopeParametersThetaHeadDimAndEosListsAreRead() throws {
        var json = Self.base()
        json["rope_theta"] = nil
        json["rope_scaling"] = nil
        json["rope_parameters"] = ["rope_type": "default", "rope_theta": 500000.0]
        json["head_dim"] = 128
        json["eos_token_id"] = [2, 5]
        let c = try parse(json, generation: ["eos_token_id": [7, 2]])
        XCTAssertEqual(c.ropeTheta, 500_000)
        XCTAssertEqual(c.headDim, 128)
        XCTAssertEqual(c.qDim, 9 * 128)
        XCTAssertEqual(c.eosTokenIds, [7, 2, 5])
    }

    func testModelTypeLlamaWithoutArchitecturesIsAccepted() throws {
        var json = Self.base()
        json["architectures"] = nil
        XCTAssertEqual(try parse(json).architecture, "LlamaForCausalLM")
    }

    func testFieldsThatChangeTheMathAreRefusedNamingTheField() {
        assertRefused({ $0["rope_scaling"] = ["rope_type": "dynamic", "factor": 8.0] }, field: "rope_scaling.rope_type")
        assertRefused({ $0["rope_scaling"] = ["type": "yarn", "factor": 2.0] }, field: "rope_scaling.rope_type")
        assertRefused({ $0["rope_scaling"] = ["type": "longrope", "factor": 2.0] }, field: "rope_scaling.rope_type")
        assertRefused({ $0["rope_scaling"] = "linear" }, field: "rope_scaling")
        assertRefused({ $0["rope_parameters"] = ["rope_type": "yarn", "rope_theta": 10000.0] }, field: "rope_parameters.rope_type")
        assertRefused({ $0["rope_scaling"] = ["type": "linear", "factor": -2.0] }, field: "rope_scaling.factor")
        assertRefused({ $0["rope_scaling"] = ["rope_type": "llama3", "factor": 8.0, "low_freq_factor": 4.0, "high_freq_factor": 1.0] },
                      field: "rope_scaling.high_freq_factor")
        assertRefused({ $0["partial_rotary_factor"] = 0.5 }, field: "partial_rotary_factor")
        assertRefused({ $0["rope_parameters"] = ["rope_type": "default", "rope_theta": 1e4, "partial_rotary_factor": 0.5] },
                      field: "rope_parameters.partial_rotary_factor")
        assertRefused({ $0["sliding_window"] = 4096 }, field: "sliding_window")
        assertRefused({ $0["architectures"] = ["GemmaForCausalLM"] }, field: "architectures")
        assertRefused({ $0["architectures"] = nil; $0["model_type"] = "gemma" }, field: "model_type")
        assertRefused({ $0["architectures"] = ["MistralForCausalLM"] }, field: "model_type")   // model_type says llama
        assertRefused({ $0["attention_bias"] = true }, field: "attention_bias")
        assertRefused({ $0["mlp_bias"] = true }, field: "mlp_bias")
        assertRefused({ $0["hidden_act"] = "gelu" }, field: "hidden_act")
        assertRefused({ $0["quantization_config"] = ["quant_method": "bitsandbytes"] }, field: "quantization_config.load_in_4bit")
        assertRefused({ $0["num_key_value_heads"] = 4 }, field: "num_key_value_heads")
        assertRefused({ $0["hidden_size"] = "576" }, field: "hidden_size")
    }

    func testMissingRequiredFieldsAreNamed() {
        for field in ["vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads"] {
            var json = Self.base()
            json[field] = nil
            XCTAssertThrowsError(try parse(json)) { error in
                XCTAssertEqual(error as? ModelError, .missingConfigField(path: Self.path, field: field))
            }
        }
    }

    func testConfigOfTheHFFixtureWrittenByTransformers() throws {
        let c = try ModelLoader.loadConfig(TestPaths.fixture("formats/tiny_llama_hf"))
        XCTAssertEqual(c.numLayers, 2)
        XCTAssertEqual(c.hiddenSize, 32)
        XCTAssertEqual(c.numKVHeads, 2)
        XCTAssertEqual(c.headDim, 8)
        XCTAssertEqual(c.ropeTheta, 10_000)
        XCTAssertEqual(c.rmsNormEps, 1e-5)
        XCTAssertTrue(c.tieWordEmbeddings)
        XCTAssertEqual(c.eosTokenIds, [2, 7])   // generation_config.json's list first
    }

    // MARK: GGUF metadata

    func ggufURL(_ edit: (inout GGUFTestBuilder) -> Void) throws -> URL {
        var b = GGUFTestBuilder()
        b.add("general.architecture", string: "llama")
        b.add("llama.block_count", u32: 1)
        b.add("llama.embedding_length", u32: 8)
        b.add("llama.feed_forward_length", u32: 16)
        b.add("llama.attention.head_count", u32: 2)
        b.add("llama.attention.head_count_kv", u32: 1)
        b.add("llama.rope.freq_base", f32: 5e5)
        b.add("llama.attention.layer_norm_rms_epsilon", f32: 1e-5)
        b.add("llama.context_length", u32: 128)
        b.add("tokenizer.ggml.model", string: "gpt2")
        b.add("tokenizer.ggml.tokens", strings: ["a", "b", "c"])
        edit(&b)
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("cfg-\(UUID().uuidString).gguf")
        try b.build().write(to: url)
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }

    func testGGUFMetadataGivesTheConfig() throws {
        let c = try ModelLoader.loadConfig(ggufURL { _ in })
        XCTAssertEqual(c, LlamaConfig(vocabSize: 3, hiddenSize: 8, intermediateSize: 16, numLayers: 1, numHeads: 2, numKVHeads: 1,
                                      headDim: 4, rmsNormEps: 1e-5, ropeTheta: 5e5, maxPositionEmbeddings: 128,
                                      tieWordEmbeddings: true, bosTokenId: nil, eosTokenIds: []))
    }

    func testGGUFRefusesOtherArchitecturesAndRopeScalingNamingTheKey() throws {
        let cases: [(String, (inout GGUFTestBuilder) -> Void)] = [
            ("general.architecture", { $0.kvs[0] = ("general.architecture", 8, GGUFTestBuilder.str("gemma")) }),
            ("llama.rope.scaling.type", { $0.add("llama.rope.scaling.type", string: "yarn") }),
            ("llama.expert_count", { $0.add("llama.expert_count", u32: 8) }),
            ("llama.rope.dimension_count", { $0.add("llama.rope.dimension_count", u32: 2) }),
        ]
        for (field, edit) in cases {
            let url = try ggufURL(edit)
            XCTAssertThrowsError(try ModelLoader.loadConfig(url), field) { error in
                guard case let ModelError.unsupportedConfig(path, f, _) = error else { return XCTFail("\(field): \(error)") }
                XCTAssertEqual(path, url.path)
                XCTAssertEqual(f, field)
            }
        }
        // A rope scaling type of "none" is plain RoPE.
        XCTAssertNoThrow(try ModelLoader.loadConfig(ggufURL { $0.add("llama.rope.scaling.type", string: "none") }))
    }

    func testGGUFMissingKeysAreNamed() throws {
        let url = try ggufURL { b in b.kvs.removeAll { $0.key == "llama.block_count" } }
        XCTAssertThrowsError(try ModelLoader.loadConfig(url)) { error in
            XCTAssertEqual(error as? ModelError, .missingConfigField(path: url.path, field: "llama.block_count"))
        }
    }
}
