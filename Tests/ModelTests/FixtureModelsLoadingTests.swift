import Foundation
import Kernels
import Model
import TestSupport
import XCTest

/// The forward-pass fixtures (Tests/Fixtures/models, written by make_model_fixtures.py with transformers)
/// load through `ModelLoader` with the configuration their README states.
final class FixtureModelsLoadingTests: XCTestCase {
    static func dir(_ name: String) -> URL { TestPaths.fixture("models/\(name)") }

    static func dense(_ w: LinearWeight) -> [Float] { (w as? DenseWeight)?.data ?? [] }

    /// Every tensor of a model in a fixed order, by HF name.
    static func tensors(_ m: LoadedModel) -> [(String, [Float])] {
        var out = [("model.embed_tokens.weight", m.weights.embedding), ("model.norm.weight", m.weights.finalNorm)]
        for (i, l) in m.weights.layers.enumerated() {
            out.append(("model.layers.\(i).input_layernorm.weight", l.attnNorm))
            out.append(("model.layers.\(i).post_attention_layernorm.weight", l.mlpNorm))
            for n in LayerWeights.linearNames { out.append(("model.layers.\(i).\(n).weight", dense(l.linear(n)!))) }
        }
        return out
    }

    /// fp32 -> bf16 -> fp32 with round-to-nearest-even (torch's `.to(torch.bfloat16)`).
    static func bf16Round(_ x: Float) -> Float {
        let b = x.bitPattern
        let rounded = (b &+ 0x7FFF &+ ((b >> 16) & 1)) >> 16
        return Float(bitPattern: rounded << 16)
    }

    func testTiedAndUntiedHFDirectoriesLoadWithTheirConfigs() throws {
        let tied = try ModelLoader.load(Self.dir("tiny-llama-tied"))
        XCTAssertEqual(tied.config, LlamaConfig(vocabSize: 384, hiddenSize: 64, intermediateSize: 160, numLayers: 2, numHeads: 4,
                                                numKVHeads: 2, headDim: 16, rmsNormEps: 1e-6, ropeTheta: 10_000,
                                                maxPositionEmbeddings: 256, tieWordEmbeddings: true, bosTokenId: 1,
                                                eosTokenIds: tied.config.eosTokenIds))
        XCTAssertTrue(tied.config.eosTokenIds.contains(2))
        XCTAssertEqual(Self.dense(tied.weights.lmHead), tied.weights.embedding)
        let jinja = try String(contentsOf: Self.dir("tiny-llama-tied").appendingPathComponent("chat_template.jinja"), encoding: .utf8)
        XCTAssertEqual(tied.chatTemplate, jinja)

        let untied = try ModelLoader.load(Self.dir("tiny-llama-untied"))
        let c = untied.config
        XCTAssertEqual([c.hiddenSize, c.intermediateSize, c.numLayers, c.numHeads, c.numKVHeads, c.headDim, c.vocabSize],
                       [48, 128, 2, 6, 2, 12, 384])
        XCTAssertEqual(c.ropeTheta, 50_000)
        XCTAssertFalse(c.tieWordEmbeddings)
        XCTAssertEqual(untied.weights.layers[0].q.outFeatures, 72)
        XCTAssertEqual(untied.weights.lmHead.outFeatures, 384)
        XCTAssertNotEqual(Self.dense(untied.weights.lmHead), untied.weights.embedding)
    }

    func testHalfPrecisionCheckpointsAreTheTiedWeightsRounded() throws {
        let tied = Self.tensors(try ModelLoader.load(Self.dir("tiny-llama-tied")))
        let f16 = Self.tensors(try ModelLoader.load(Self.dir("tiny-llama-f16")))
        let bf16 = Self.tensors(try ModelLoader.load(Self.dir("tiny-llama-bf16")))
        for ((name, t), ((_, h), (_, b))) in zip(tied, zip(f16, bf16)) {
            XCTAssertEqual(h, t.map { Float(Float16($0)) }, "F16 \(name)")
            XCTAssertEqual(b, t.map(Self.bf16Round), "BF16 \(name)")
        }
    }

    /// The GGUF of the tied model: F32 norms equal exactly; F16 q (block 0) and k (block 1) equal the
    /// HF rows rounded to fp16 only after the converter's permutation is undone; quantized tensors are close.
    func testGGUFOfTheTiedModelLoadsToTheHFLayout() throws {
        let tiedModel = try ModelLoader.load(Self.dir("tiny-llama-tied"))
        let g = try ModelLoader.load(Self.dir("tiny-llama-gguf").appendingPathComponent("tiny-llama.gguf"))
        var gc = g.config, tc = tiedModel.config
        gc.eosTokenIds = []; tc.eosTokenIds = []
        XCTAssertEqual(gc, tc)
        let tied = Dictionary(uniqueKeysWithValues: Self.tensors(tiedModel))
        let gguf = Dictionary(uniqueKeysWithValues: Self.tensors(g))
        for name in ["model.norm.weight", "model.layers.0.input_layernorm.weight", "model.layers.1.post_attention_layernorm.weight"] {
            XCTAssertEqual(gguf[name], tied[name], name)
        }
        for name in ["model.layers.0.q_proj.weight", "model.layers.1.k_proj.weight", "model.layers.0.up_proj.weight"] {
            XCTAssertEqual(gguf[name], tied[name]!.map { Float(Float16($0)) }, name)
        }
        for (name, t) in tied {
            let w = try XCTUnwrap(gguf[name], name)
            let scale = t.map(abs).max()!
            let err = zip(w, t).map { abs($0 - $1) }.max()!
            XCTAssertLessThan(err, 0.15 * scale, name)   // Q4_1 worst case is half a step of 1/15 of the block range
        }
        guard case let .gguf(tok) = g.tokenizer else { return XCTFail("expected GGUF tokenizer data") }
        XCTAssertEqual(tok.tokens.count, 384)
        XCTAssertEqual(tok.addBosToken, true)
        XCTAssertEqual(tok.bosTokenId, 1)
        XCTAssertNotNil(g.chatTemplate)
    }

    /// The tied model split into two shards with a `model.safetensors.index.json` loads to the same weights.
    func testShardedCheckpointLoadsLikeTheSingleFile() throws {
        let src = Self.dir("tiny-llama-tied")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sharded-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        for f in ["config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja"] {
            try FileManager.default.copyItem(at: src.appendingPathComponent(f), to: dir.appendingPathComponent(f))
        }
        let st = try SafetensorsFile(src.appendingPathComponent("model.safetensors"))
        var shards: [[SafetensorsWriter.Tensor]] = [[], []]
        var map: [String: String] = [:]
        for (i, name) in st.names.enumerated() {
            let info = try XCTUnwrap(st.info(name))
            shards[i % 2].append(.init(name: name, dtype: info.dtype, shape: info.shape, bytes: try st.data(name)))
            map[name] = "model-0000\(i % 2 + 1)-of-00002.safetensors"
        }
        for (i, tensors) in shards.enumerated() {
            try SafetensorsWriter.write(tensors, metadata: ["format": "pt"], to: dir.appendingPathComponent("model-0000\(i + 1)-of-00002.safetensors"))
        }
        try JSONSerialization.data(withJSONObject: ["metadata": ["total_size": 0], "weight_map": map])
            .write(to: dir.appendingPathComponent("model.safetensors.index.json"))
        let sharded = try ModelLoader.load(dir)
        let single = try ModelLoader.load(src)
        XCTAssertEqual(sharded.config, single.config)
        for ((name, a), (_, b)) in zip(Self.tensors(sharded), Self.tensors(single)) { XCTAssertEqual(a, b, name) }
    }
}
