import Foundation
import Model
import Quantization
import TestSupport
import Training
import XCTest

/// GGUF LoRA adapters in llama.cpp's layout: what the writer puts in the file (keys, names,
/// ggml dimension order, q/k rows permuted as llama.cpp's converter permutes the base's, scaling
/// folded into lora_b) and the reader undoing all of it.
final class GGUFAdapterTests: XCTestCase {
    static let base = try! ModelLoader.loadConfig(TestPaths.fixture("models/tiny-llama-gguf/tiny-llama.gguf"))

    /// An adapter with every pattern feature (rsLoRA, rank and alpha patterns) and random A and B.
    func randomAdapter(rslora: Bool, seed: UInt64) -> LoRAAdapter {
        let c = LoRAConfig(rank: 4, alpha: 8, dropout: 0, targets: LinearModule.allCases, useRSLoRA: rslora,
                           rankPattern: ["model.layers.0.self_attn.q_proj": 2, "k_proj": 3], alphaPattern: ["v_proj": 5])
        let a = LoRAAdapter(config: c, base: Self.base)
        var rng = TestRNG(seed: seed)
        for i in a.parameters.indices { a.parameters[i] = rng.uniform(scale: 0.5) }
        return a
    }

    func scratch() -> URL {
        let u = FileManager.default.temporaryDirectory.appendingPathComponent("gguf-adapter-\(UUID().uuidString)")
        try! FileManager.default.createDirectory(at: u, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: u) }
        return u
    }

    func testTheFileHasLlamaCppsKeysNamesAndDimensionOrder() throws {
        let a = randomAdapter(rslora: false, seed: 1)
        let url = scratch().appendingPathComponent("adapter.gguf")
        try GGUFAdapter.write(a, base: Self.base, architecture: "llama", to: url)
        let f = try GGUFFile(url)
        XCTAssertEqual(f.metadata["general.type"], .string("adapter"))
        XCTAssertEqual(f.metadata["adapter.type"], .string("lora"))
        XCTAssertEqual(f.metadata["adapter.lora.alpha"], .float32(8))
        XCTAssertEqual(f.metadata["general.architecture"], .string("llama"))
        XCTAssertEqual(f.tensors.count, a.pairs.count * 2)
        let q0 = a.pair(layer: 0, module: .q)!
        let ta = try XCTUnwrap(f.tensor(named: "blk.0.attn_q.weight.lora_a"))
        let tb = try XCTUnwrap(f.tensor(named: "blk.0.attn_q.weight.lora_b"))
        // ggml ne: the model tensor is ne [K, N]; llama.cpp checks a.ne[0] == K, b.ne[1] == N, a.ne[1] == b.ne[0] == R.
        XCTAssertEqual(ta.ne, [q0.inFeatures, 2])
        XCTAssertEqual(tb.ne, [2, q0.outFeatures])
        XCTAssertNotNil(f.tensor(named: "blk.1.ffn_down.weight.lora_b"))
        XCTAssertNotNil(f.tensor(named: "blk.1.attn_output.weight.lora_a"))
        // A is stored as is; B's rows of attn_q are in llama.cpp's order: GGUF row ggufRow(h) holds HF row h.
        XCTAssertEqual(try f.floats("blk.0.attn_q.weight.lora_a"), Array(a.parameters[q0.aOffset..<(q0.aOffset + q0.aCount)]))
        let stored = try f.floats("blk.0.attn_q.weight.lora_b")
        let fold = q0.scaling / (8 / Float(q0.rank))
        XCTAssertEqual(fold, 1, "plain LoRA with alpha 8: llama.cpp's alpha / R is our scaling")
        let E = Self.base.headDim
        for h in 0..<q0.outFeatures {
            let g = LlamaQKPermutation.ggufRow(forHFRow: h, headDim: E)
            for j in 0..<q0.rank {
                XCTAssertEqual(stored[g * q0.rank + j], a.parameters[q0.bOffset + h * q0.rank + j])
            }
        }
        XCTAssertNotEqual(stored, Array(a.parameters[q0.bOffset..<(q0.bOffset + q0.bCount)]), "rows are permuted")
        // v is not permuted.
        let v0 = a.pair(layer: 0, module: .v)!
        let vb = try f.floats("blk.0.attn_v.weight.lora_b")
        let vFold = v0.scaling / (8 / Float(v0.rank))
        for i in 0..<v0.bCount { XCTAssertEqual(vb[i], a.parameters[v0.bOffset + i] * vFold) }
    }

    /// llama.cpp's scale alpha / R times the stored B equals our scaling times our B, for
    /// every pair, with rsLoRA and patterns folded in; reading undoes the permutation.
    func testRoundTripKeepsEveryPairsEffectiveUpdate() throws {
        for rslora in [false, true] {
            let a = randomAdapter(rslora: rslora, seed: 2)
            let url = scratch().appendingPathComponent("adapter.gguf")
            try GGUFAdapter.write(a, base: Self.base, architecture: "llama", to: url)
            let back = try GGUFAdapter.read(url, base: Self.base, architecture: "llama")
            XCTAssertEqual(back.pairs.map(\.rank), a.pairs.map(\.rank))
            XCTAssertEqual(back.config.alpha, 8)
            XCTAssertFalse(back.config.useRSLoRA)
            for (p, q) in zip(a.pairs, back.pairs) {
                XCTAssertEqual(Array(back.parameters[q.aOffset..<(q.aOffset + q.aCount)]), Array(a.parameters[p.aOffset..<(p.aOffset + p.aCount)]))
                // fold = s / (alpha / R) and the stored B·fold are one rounding each; scaling back
                // is alpha / R (one more): 3 roundings, relative.
                let bound = Float(FP32.roundings(3))
                for i in 0..<p.bCount {
                    let ours = p.scaling * a.parameters[p.bOffset + i], theirs = q.scaling * back.parameters[q.bOffset + i]
                    XCTAssertLessThanOrEqual(abs(ours - theirs), bound * abs(ours) + Float.leastNormalMagnitude, "\(p.layer) \(p.module) \(i)")
                }
            }
        }
    }

    func testF16StoresRoundedValuesAndQwenIsNotPermuted() throws {
        let a = randomAdapter(rslora: false, seed: 3)
        let url = scratch().appendingPathComponent("adapter.gguf")
        try GGUFAdapter.write(a, base: Self.base, architecture: "qwen2", type: .f16, to: url)
        let f = try GGUFFile(url)
        XCTAssertEqual(f.tensor(named: "blk.0.attn_q.weight.lora_b")?.type, .f16)
        let q0 = a.pair(layer: 0, module: .q)!
        let expected = a.parameters[q0.bOffset..<(q0.bOffset + q0.bCount)].map { Half.toFloat(Half.fromFloat($0)) }
        XCTAssertEqual(try f.floats("blk.0.attn_q.weight.lora_b"), expected)
    }

    func testForeignOrMismatchedFilesAreRefusedNamingTheKeyOrTensor() throws {
        let dir = scratch()
        // The base model itself is a GGUF but not an adapter.
        XCTAssertThrowsError(try GGUFAdapter.read(TestPaths.fixture("models/tiny-llama-gguf/tiny-llama.gguf"), base: Self.base, architecture: "llama")) {
            guard case ModelError.unsupportedConfig(_, "general.type", _) = $0 else { return XCTFail("\($0)") }
        }
        let a = randomAdapter(rslora: false, seed: 4)
        let url = dir.appendingPathComponent("adapter.gguf")
        try GGUFAdapter.write(a, base: Self.base, architecture: "llama", to: url)
        XCTAssertThrowsError(try GGUFAdapter.read(url, base: Self.base, architecture: "qwen2")) {
            guard case ModelError.unsupportedConfig(_, "general.architecture", let why) = $0 else { return XCTFail("\($0)") }
            XCTAssertTrue(why.contains("wrong base model"), why)
        }
        var other = Self.base
        other.intermediateSize *= 2
        XCTAssertThrowsError(try GGUFAdapter.read(url, base: other, architecture: "llama")) {
            guard case ModelError.unsupportedConfig(_, let field, _) = $0 else { return XCTFail("\($0)") }
            XCTAssertTrue(field.hasPrefix("blk.0.ffn_"), field)
        }
        // A tensor the adapter format does not have.
        var w = try GGUFAdapter.writer(a, base: Self.base, architecture: "llama")
        try w.add("token_embd.weight.lora_a", shape: [2, Self.base.vocabSize], values: [Float](repeating: 0, count: 2 * Self.base.vocabSize))
        try w.write(to: url)
        XCTAssertThrowsError(try GGUFAdapter.read(url, base: Self.base, architecture: "llama")) {
            guard case ModelError.unsupportedConfig(_, "token_embd.weight.lora_a", _) = $0 else { return XCTFail("\($0)") }
        }
    }
}
