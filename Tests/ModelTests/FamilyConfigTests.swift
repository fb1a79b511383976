import Foundation
import Kernels
import Model
import TestSupport
import XCTest

/// Qwen2, Mistral and scaled-RoPE configurations: what is read from config.json / GGUF, the
/// inverse frequencies against transformers', and the refusals of what is not implemented.
final class FamilyConfigTests: XCTestCase {
    static let path = "/models/x/config.json"

    struct RefConfig: Decodable {
        struct Inner: Decodable { let inv_freq: [Float]; let sliding_window: Int?; let architecture: String }
        let config: Inner
    }

    func reference(_ name: String) throws -> RefConfig.Inner {
        try JSONDecoder().decode(RefConfig.self, from: Data(contentsOf: TestPaths.fixture("models/\(name)/reference.json"))).config
    }

    func parse(_ json: [String: Any]) throws -> LlamaConfig {
        try HFConfigLoader.parse(config: JSONSerialization.data(withJSONObject: json), path: Self.path)
    }

    static func sizes(_ arch: String, _ type: String) -> [String: Any] {
        ["architectures": [arch], "model_type": type, "vocab_size": 100, "hidden_size": 64, "intermediate_size": 128,
         "num_hidden_layers": 2, "num_attention_heads": 8]
    }

    func assertRefused(_ json: [String: Any], field: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try parse(json), file: file, line: line) { error in
            guard case let ModelError.unsupportedConfig(_, f, _) = error else {
                return XCTFail("expected unsupportedConfig(\(field)), got \(error)", file: file, line: line)
            }
            XCTAssertEqual(f, field, file: file, line: line)
        }
    }

    func testFixtureConfigsGiveTheArchitectureBiasesWindowAndHeadDim() throws {
        let qwen = try ModelLoader.load(TestPaths.fixture("models/tiny-qwen2"))
        XCTAssertEqual(qwen.config.architecture, "Qwen2ForCausalLM")
        XCTAssertTrue(qwen.config.hasQKVBias)
        XCTAssertNil(qwen.config.slidingWindow)          // use_sliding_window false, sliding_window 4096 present
        XCTAssertEqual(qwen.config.headDim, 12)          // head_dim != hidden_size / heads (32 / 4)
        XCTAssertEqual(qwen.config.ropeTheta, 1_000_000)
        XCTAssertTrue(qwen.config.tieWordEmbeddings)
        for l in qwen.weights.layers {
            XCTAssertEqual(l.qBias?.count, 48)
            XCTAssertEqual(l.kBias?.count, 24)
            XCTAssertEqual(l.vBias?.count, 24)
            XCTAssertTrue(l.qBias!.contains { $0 != 0 })
        }
        let mistral = try ModelLoader.load(TestPaths.fixture("models/tiny-mistral"))
        XCTAssertEqual(mistral.config.architecture, "MistralForCausalLM")
        XCTAssertFalse(mistral.config.hasQKVBias)
        XCTAssertNil(mistral.weights.layers[0].qBias)
        XCTAssertEqual(mistral.config.slidingWindow, try reference("tiny-mistral").sliding_window)
        XCTAssertEqual(mistral.config.slidingWindow, 6)
        XCTAssertEqual(mistral.config.headDim, 12)
        XCTAssertEqual(mistral.config.numKVHeads, 1)
    }

    func testScaledRopeInverseFrequenciesEqualTransformers() throws {
        for name in ["tiny-llama3-rope", "tiny-llama-linear-rope", "tiny-qwen2", "tiny-mistral"] {
            let config = try ModelLoader.loadConfig(TestPaths.fixture("models/\(name)"))
            let expected = try reference(name).inv_freq
            XCTAssertEqual(config.ropeInverseFrequencies, expected, name)
        }
        let llama3 = try ModelLoader.loadConfig(TestPaths.fixture("models/tiny-llama3-rope"))
        XCTAssertEqual(llama3.ropeScaling, .llama3(factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 64))
        // The three regimes: unchanged (i = 0), smoothed (i = 1), divided by the factor (i >= 2).
        let plain = RoPE(headDim: 8, theta: 10_000).invFreq
        let scaled = llama3.ropeInverseFrequencies
        XCTAssertEqual(scaled[0], plain[0])
        XCTAssertTrue(scaled[1] < plain[1] && scaled[1] > plain[1] / 8)
        XCTAssertEqual(scaled[3], plain[3] / 8)
        let linear = try ModelLoader.loadConfig(TestPaths.fixture("models/tiny-llama-linear-rope"))
        XCTAssertEqual(linear.ropeScaling, .linear(factor: 4))   // legacy `rope_scaling` spelling
    }

    func testGGUFRopeScalingGivesTransformersFrequenciesWithinRounding() throws {
        for (name, hf) in [("tiny-llama3-rope-gguf/tiny-llama3-rope.gguf", "tiny-llama3-rope"),
                           ("tiny-llama-linear-rope-gguf/tiny-llama-linear-rope.gguf", "tiny-llama-linear-rope")] {
            let config = try ModelLoader.loadConfig(TestPaths.fixture("models/\(name)"))
            XCTAssertNotNil(config.ropeScaling, name)
            for (a, b) in zip(config.ropeInverseFrequencies, try reference(hf).inv_freq) {
                // A power, a division and the scaling's blend in fp32 against torch's: a few roundings, relative.
                XCTAssertEqual(Double(a), Double(b), accuracy: FP32.roundings(16) * Double(b), name)
            }
        }
    }

    func testQwen2GGUFLoadsBiasesAndUnpermutedRowsEqualToTheHFDirectory() throws {
        let g = try ModelLoader.load(TestPaths.fixture("models/tiny-qwen2-gguf/tiny-qwen2.gguf"))
        let h = try ModelLoader.load(TestPaths.fixture("models/tiny-qwen2"))
        XCTAssertEqual(g.config.architecture, "Qwen2ForCausalLM")
        XCTAssertEqual(g.config.headDim, 12)            // qwen2.attention.key_length
        XCTAssertEqual(g.config.ropeTheta, h.config.ropeTheta)
        for (a, b) in zip(g.weights.layers, h.weights.layers) {
            XCTAssertEqual(a.qBias, b.qBias)
            XCTAssertEqual(a.kBias, b.kBias)
            XCTAssertEqual(a.vBias, b.vBias)
            XCTAssertEqual((a.q as! DenseWeight).data, (b.q as! DenseWeight).data)   // no llama q/k permutation
            XCTAssertEqual((a.k as! DenseWeight).data, (b.k as! DenseWeight).data)
        }
    }

    func testFamilyDefaultsFollowTransformersConfigs() throws {
        let m = try parse(Self.sizes("MistralForCausalLM", "mistral"))
        XCTAssertEqual(m.numKVHeads, 8)                  // MistralConfig's default, not the head count
        XCTAssertEqual(m.slidingWindow, 4096)            // absent: transformers' default window
        XCTAssertEqual(m.maxPositionEmbeddings, 131_072)
        XCTAssertEqual(m.bosTokenId, 1)
        XCTAssertEqual(m.eosTokenIds, [2])
        var noWindow = Self.sizes("MistralForCausalLM", "mistral")
        noWindow["sliding_window"] = NSNull()
        XCTAssertNil(try parse(noWindow).slidingWindow)

        var qj = Self.sizes("Qwen2ForCausalLM", "qwen2")
        qj["num_attention_heads"] = 32
        qj["hidden_size"] = 256
        let q = try parse(qj)
        XCTAssertEqual(q.numKVHeads, 32)
        XCTAssertNil(q.slidingWindow)
        XCTAssertEqual(q.maxPositionEmbeddings, 32768)
        XCTAssertNil(q.bosTokenId)
        XCTAssertEqual(q.eosTokenIds, [])
        XCTAssertTrue(q.hasQKVBias)
        // attention_bias is a Llama field: Qwen2 ignores it (its q/k/v biases are unconditional).
        qj["attention_bias"] = false
        XCTAssertTrue(try parse(qj).hasQKVBias)

        // llama3 without original_max_position_embeddings uses max_position_embeddings; a top-level one wins.
        var l3 = Self.sizes("LlamaForCausalLM", "llama")
        l3["max_position_embeddings"] = 512
        l3["rope_parameters"] = ["rope_type": "llama3", "rope_theta": 500000.0, "factor": 32.0,
                                 "low_freq_factor": 1.0, "high_freq_factor": 4.0]
        XCTAssertEqual(try parse(l3).ropeScaling, .llama3(factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 512))
        XCTAssertEqual(try parse(l3).ropeTheta, 500_000)
        l3["original_max_position_embeddings"] = 128
        XCTAssertEqual(try parse(l3).ropeScaling, .llama3(factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 128))
    }

    func testUnimplementedFamilyFeaturesAreRefusedNamingTheField() {
        var q = Self.sizes("Qwen2ForCausalLM", "qwen2")
        q["use_sliding_window"] = true
        assertRefused(q, field: "use_sliding_window")
        q["use_sliding_window"] = false
        q["layer_types"] = ["full_attention", "sliding_attention"]
        assertRefused(q, field: "layer_types")
        var m = Self.sizes("MistralForCausalLM", "mistral")
        m["sliding_window"] = 0
        assertRefused(m, field: "sliding_window")
        m["sliding_window"] = 16
        m["rope_scaling"] = ["type": "dynamic", "factor": 2.0]
        assertRefused(m, field: "rope_scaling.rope_type")
        var l3 = Self.sizes("LlamaForCausalLM", "llama")
        l3["rope_scaling"] = ["rope_type": "llama3", "factor": 8.0, "high_freq_factor": 4.0]
        XCTAssertThrowsError(try parse(l3)) { error in
            XCTAssertEqual(error as? ModelError, .missingConfigField(path: Self.path, field: "rope_scaling.low_freq_factor"))
        }
    }

    func testSlidingWindowLimitsWhichPositionsAreVisible() {
        var c = LlamaConfig(vocabSize: 4, hiddenSize: 4, intermediateSize: 4, numLayers: 1, numHeads: 1, numKVHeads: 1,
                            rmsNormEps: 1e-6, ropeTheta: 1e4, maxPositionEmbeddings: 64, tieWordEmbeddings: true,
                            bosTokenId: nil, eosTokenIds: [], slidingWindow: 3)
        // transformers' sliding_window_overlay: key j is visible from query i when j > i - W.
        XCTAssertEqual((0..<6).map(c.firstVisiblePosition), [0, 0, 0, 1, 2, 3])
        c.slidingWindow = nil
        XCTAssertEqual(c.firstVisiblePosition(40), 0)
    }
}
