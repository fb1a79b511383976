import Foundation
import Kernels
import Model
import Quantization
import Tokenizer
import TestSupport
import XCTest

final class GGUFLoadingTests: XCTestCase {
    static func dense(_ w: LinearWeight, file: StaticString = #filePath, line: UInt = #line) -> [Float] {
        guard let d = w as? DenseWeight else { XCTFail("expected DenseWeight", file: file, line: line); return [] }
        return d.data
    }

    /// The tiny GGUF (written like llama.cpp's converter: q/k rows permuted, Q8_0/Q4_1/Q4_0/Q5_0/F16/BF16/F32
    /// tensors) loads to exactly the HF tensors the fixture script wrote with the safetensors library:
    /// this checks dequantization in place and the q/k un-permutation (q with H heads, k with Hk).
    func testTinyGGUFLoadsToTheHFTensorsWithQAndKUnpermuted() throws {
        let g = try ModelLoader.load(TestPaths.fixture("formats/tiny_llama.gguf"))
        let h = try ModelLoader.load(TestPaths.fixture("formats/tiny_llama_hf"))
        XCTAssertEqual(g.format, .gguf)
        XCTAssertEqual(h.format, .huggingFace)
        var gc = g.config, hc = h.config
        XCTAssertEqual(gc.eosTokenIds, [2])
        XCTAssertEqual(hc.eosTokenIds, [2, 7])
        gc.eosTokenIds = []; hc.eosTokenIds = []
        XCTAssertEqual(gc, hc)

        XCTAssertEqual(g.weights.embedding, h.weights.embedding)
        XCTAssertEqual(g.weights.finalNorm, h.weights.finalNorm)
        XCTAssertEqual(Self.dense(g.weights.lmHead), h.weights.embedding)
        XCTAssertEqual(g.weights.layers.count, 2)
        for (i, (gl, hl)) in zip(g.weights.layers, h.weights.layers).enumerated() {
            XCTAssertEqual(gl.attnNorm, hl.attnNorm, "layer \(i)")
            XCTAssertEqual(gl.mlpNorm, hl.mlpNorm, "layer \(i)")
            for name in LayerWeights.linearNames {
                let a = try XCTUnwrap(gl.linear(name)), b = try XCTUnwrap(hl.linear(name))
                XCTAssertEqual(a.outFeatures, b.outFeatures, "layer \(i) \(name)")
                XCTAssertEqual(a.inFeatures, b.inFeatures, "layer \(i) \(name)")
                XCTAssertEqual(Self.dense(a), Self.dense(b), "layer \(i) \(name)")
            }
        }
        // Without un-permuting, q would differ from HF (the check above can fail for the right reason).
        let raw = try GGUFFile(TestPaths.fixture("formats/tiny_llama.gguf")).floats("blk.1.attn_q.weight")
        XCTAssertNotEqual(raw, Self.dense(h.weights.layers[1].q))
        XCTAssertEqual(raw.sorted(), Self.dense(h.weights.layers[1].q).sorted())
    }

    func testTinyGGUFTokenizerAndChatTemplateComeFromMetadata() throws {
        let g = try ModelLoader.load(TestPaths.fixture("formats/tiny_llama.gguf"))
        guard case let .gguf(t) = g.tokenizer else { return XCTFail("expected a GGUF tokenizer") }
        XCTAssertEqual(t.model, "gpt2")
        XCTAssertEqual(t.pre, "smollm")
        XCTAssertEqual(t.tokens.count, 48)
        XCTAssertEqual(Array(t.tokens.prefix(4)), ["<unk>", "<s>", "</s>", "t0"])
        XCTAssertEqual(Array(t.tokenTypes?.prefix(4) ?? []), [2, 3, 3, 1])
        XCTAssertEqual(t.merges, ["t 1", "t 2", "t1 0"])
        XCTAssertEqual(t.bosTokenId, 1)
        XCTAssertEqual(t.eosTokenId, 2)
        XCTAssertEqual(t.unknownTokenId, 0)
        XCTAssertEqual(t.paddingTokenId, 2)
        XCTAssertEqual(t.addBosToken, false)
        XCTAssertNil(t.scores)
        XCTAssertEqual(g.chatTemplate, "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}{% endfor %}")
        XCTAssertEqual(t.chatTemplate, g.chatTemplate)
        XCTAssertEqual(g.name, "tiny-llama-fixture")
    }

    func testHFDirectoryGivesTokenizerFilesAndChatTemplate() throws {
        let dir = TestPaths.fixture("formats/tiny_llama_hf")
        let h = try ModelLoader.load(dir)
        XCTAssertEqual(h.tokenizer, .huggingFace(tokenizerJSON: dir.appendingPathComponent("tokenizer.json"),
                                                 tokenizerConfig: dir.appendingPathComponent("tokenizer_config.json")))
        XCTAssertEqual(h.chatTemplate, "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}{% endfor %}")
    }

    // MARK: Missing and misshapen tensors

    func copyOfHFFixture(dropping drop: String? = nil, reshaping: (String, [Int])? = nil, config: ((inout [String: Any]) -> Void)? = nil) throws -> URL {
        let src = TestPaths.fixture("formats/tiny_llama_hf")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("hf-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        for f in ["config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json"] {
            try FileManager.default.copyItem(at: src.appendingPathComponent(f), to: dir.appendingPathComponent(f))
        }
        if let config {
            let url = dir.appendingPathComponent("config.json")
            var json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
            config(&json)
            try JSONSerialization.data(withJSONObject: json).write(to: url)
        }
        let st = try SafetensorsFile(src.appendingPathComponent("model.safetensors"))
        var tensors: [SafetensorsWriter.Tensor] = []
        for name in st.names where name != drop {
            let info = try XCTUnwrap(st.info(name))
            var shape = info.shape
            var bytes = try st.data(name)
            if let (n, s) = reshaping, n == name {
                shape = s
                bytes = Data(count: s.reduce(1, *) * 4)
            }
            tensors.append(.init(name: name, dtype: info.dtype, shape: shape, bytes: bytes))
        }
        try SafetensorsWriter.write(tensors, to: dir.appendingPathComponent("model.safetensors"))
        return dir
    }

    func testMissingTensorNamesTheTensorAndItsExpectedShape() throws {
        let dir = try copyOfHFFixture(dropping: "model.layers.1.self_attn.k_proj.weight")
        XCTAssertThrowsError(try ModelLoader.load(dir)) { error in
            guard case let ModelError.missingTensor(path, name, shape) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(name, "model.layers.1.self_attn.k_proj.weight")
            XCTAssertEqual(shape, [16, 32])
            XCTAssertEqual(path, dir.appendingPathComponent("model.safetensors").path)
        }
    }

    func testWrongShapeNamesTheTensorAndBothShapes() throws {
        let dir = try copyOfHFFixture(reshaping: ("model.layers.0.mlp.down_proj.weight", [64, 32]))
        XCTAssertThrowsError(try ModelLoader.load(dir)) { error in
            XCTAssertEqual(error as? ModelError, .wrongShape(path: dir.appendingPathComponent("model.safetensors").path,
                                                             name: "model.layers.0.mlp.down_proj.weight",
                                                             expected: [32, 64], actual: [64, 32]))
        }
    }

    func testUntiedCheckpointWithoutLMHeadIsAMissingTensor() throws {
        let dir = try copyOfHFFixture(config: { $0["tie_word_embeddings"] = false })
        XCTAssertThrowsError(try ModelLoader.load(dir)) { error in
            guard case let ModelError.missingTensor(_, name, shape) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(name, "lm_head.weight")
            XCTAssertEqual(shape, [48, 32])
        }
    }

    func testMissingModelPathIsFileNotFound() {
        XCTAssertThrowsError(try ModelLoader.load(URL(fileURLWithPath: "/nonexistent/model.gguf"))) { error in
            XCTAssertEqual(error as? ModelError, .fileNotFound(path: "/nonexistent/model.gguf"))
        }
    }

    // MARK: The default model

    func testDefaultModelLoadsWithTheReferenceConfigAndTokenizer() throws {
        let url = try TestPaths.requireDefaultModel()
        let m = try ModelLoader.load(url)
        let c = m.config
        XCTAssertEqual(c.numLayers, 30)
        XCTAssertEqual(c.hiddenSize, 576)
        XCTAssertEqual(c.intermediateSize, 1536)
        XCTAssertEqual(c.numHeads, 9)
        XCTAssertEqual(c.numKVHeads, 3)
        XCTAssertEqual(c.headDim, 64)
        XCTAssertEqual(c.ropeTheta, 100_000)
        XCTAssertEqual(c.rmsNormEps, 1e-5)
        XCTAssertTrue(c.tieWordEmbeddings)
        XCTAssertEqual(c.vocabSize, 49152)
        XCTAssertEqual(c.maxPositionEmbeddings, 8192)
        XCTAssertEqual(c.bosTokenId, 1)
        XCTAssertEqual(c.eosTokenIds, [2])

        let w = m.weights
        var params = w.embedding.count + w.finalNorm.count
        for l in w.layers {
            params += l.attnNorm.count + l.mlpNorm.count
            for name in LayerWeights.linearNames { params += l.linear(name)!.outFeatures * l.linear(name)!.inFeatures }
        }
        XCTAssertEqual(params, 134_515_008)
        XCTAssertTrue(w.lmHead.outFeatures == 49152 && w.lmHead.inFeatures == 576)
        // Kept as stored, the tied Q8_0 head is marked as the output head (fp32 decode activations under the
        // default q8), the layers' Q4_1 weights are not.
        let kept = try ModelLoader.load(url, quantization: .keep).weights
        XCTAssertEqual((kept.lmHead as? Q8_0Weight)?.isOutputHead, true)
        XCTAssertEqual((kept.layers[0].q as? Q4_1Weight)?.isOutputHead, false)
        XCTAssertEqual((kept.layers[29].down as? Q4_1Weight)?.isOutputHead, false)
        XCTAssertTrue(w.embedding.allSatisfy { $0.isFinite })

        guard case let .gguf(t) = m.tokenizer else { return XCTFail("expected a GGUF tokenizer") }
        XCTAssertEqual(t.tokens.count, 49152)
        XCTAssertEqual(t.merges.count, 48900)
        XCTAssertEqual(t.model, "gpt2")
        XCTAssertEqual(t.pre, "smollm")
        XCTAssertEqual(t.eosTokenId, 2)
        XCTAssertEqual(t.addBosToken, false)
        XCTAssertEqual(t.tokens[1], "<|im_start|>")
        XCTAssertTrue(m.chatTemplate?.contains("<|im_start|>") ?? false)
        print("default model: \(m.description)")
    }

    struct Slice: Decodable {
        var shape: [Int]
        var row_sums: [Double]
        var abs_sum: Double
        var head: [String: [Double]]
    }

    /// The default model's tensors equal what transformers gets loading the same GGUF (its own
    /// dequantization and q/k un-permutation; fixture of row sums and leading values).
    func testDefaultModelTensorsEqualTransformersLoadingTheSameGGUF() throws {
        let url = try TestPaths.requireDefaultModel()
        let data = try Data(contentsOf: TestPaths.fixture("formats/smollm2_transformers_slices.json"))
        let slices = try JSONDecoder().decode([String: Slice].self, from: data)
        let m = try ModelLoader.load(url)
        func tensor(_ name: String) throws -> [Float] {
            if name == "model.embed_tokens.weight" { return m.weights.embedding }
            if name == "model.norm.weight" { return m.weights.finalNorm }
            let parts = name.split(separator: ".")
            let layer = m.weights.layers[Int(parts[2])!]
            let module = String(parts[parts.count - 2])
            switch module {
            case "input_layernorm": return layer.attnNorm
            case "post_attention_layernorm": return layer.mlpNorm
            default: return Self.dense(try XCTUnwrap(layer.linear(module), name))
            }
        }
        XCTAssertEqual(slices.count, 15)
        for (name, s) in slices {
            let w = try tensor(name)
            let cols = s.shape.count == 2 ? s.shape[1] : 1
            XCTAssertEqual(w.count, s.shape.reduce(1, *), name)
            for (r, expected) in s.row_sums.enumerated() {
                var sum = 0.0
                for c in 0..<cols { sum += Double(w[r * cols + c]) }
                // Float64 sums of the same fp32 values on both sides (numpy, here): orders differ, each within
                // γ_K in Float64 (K ≤ 1536: 2e-13 of Σ|w|); 1e-9 of max(1, |sum|) leaves room for Σ|w| > |sum|.
                XCTAssertEqual(sum, expected, accuracy: 1e-9 * max(1, abs(expected)) + 1e-9, "\(name) row \(r) sum")
            }
            for (row, values) in s.head {
                let r = Int(row)!
                XCTAssertEqual(Array(w[(r * cols)..<(r * cols + values.count)]), values.map { Float($0) }, "\(name) row \(r)")
            }
            do {
                let absSum = w.reduce(0.0) { $0 + Double(abs($1)) }
                XCTAssertEqual(absSum, s.abs_sum, accuracy: 1e-9 * s.abs_sum, name)
            }
        }
    }

    /// Rows of Q4_1 blocks un-permuted as bytes, then dequantized, equal the loaded fp32 k (a 4-bit
    /// "keep" path can reorder block rows instead of dequantizing).
    func testUnpermutingRowsOfQuantizedBlocksEqualsTheLoadedWeights() throws {
        let url = try TestPaths.requireDefaultModel()
        let file = try GGUFFile(url)
        let m = try ModelLoader.load(url)
        for (name, heads, loaded) in [("blk.3.attn_k.weight", 3, m.weights.layers[3].k), ("blk.7.attn_q.weight", 9, m.weights.layers[7].q)] {
            let info = try XCTUnwrap(file.tensor(named: name))
            XCTAssertEqual(info.type, .q4_1)
            XCTAssertEqual(info.rowBytes, 576 / 32 * 20)
            var blocks = [UInt8](try file.rawBytes(name))
            blocks.withUnsafeMutableBytes { LlamaQKPermutation.unpermuteRows($0, heads: heads, headDim: 64, rowBytes: info.rowBytes) }
            var out = [Float](repeating: 0, count: info.elementCount)
            blocks.withUnsafeBytes { src in
                out.withUnsafeMutableBufferPointer { _ = GGUFDequantize.row(.q4_1, src.baseAddress!, count: info.elementCount, into: $0.baseAddress!) }
            }
            XCTAssertEqual(out, Self.dense(loaded), name)
        }
        XCTAssertEqual((0..<8).map { LlamaQKPermutation.ggufRow(forHFRow: $0, headDim: 4) }, [0, 2, 1, 3, 4, 6, 5, 7])
    }

    /// The tokenizer data the loader fills from GGUF metadata drives the Tokenizer target to HF's ids
    /// (Tests/Fixtures/default-model/reference.json: AutoTokenizer on the same GGUF).
    func testDefaultModelTokenizerDataEncodesLikeHF() throws {
        let m = try ModelLoader.load(try TestPaths.requireDefaultModel())
        guard case let .gguf(data) = m.tokenizer else { return XCTFail("expected GGUF tokenizer data") }
        let tokenizer = try Tokenizer(gguf: data)
        XCTAssertEqual(tokenizer.encode("The capital of France is"), [504, 3575, 282, 4649, 314])
    }
}
