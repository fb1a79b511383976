import Foundation
import Kernels
import Model
import Quantization
import TestSupport
import Training
import XCTest

/// Training over a frozen 4-bit base: the backward runs through the same dequantized tiles as the
/// forward, so loss and LoRA gradients equal those over the dequantized fp32 weights.
final class QuantizedBaseTrainingTests: XCTestCase {
    /// The dequantized copy holds exactly the weights the tiles dequantize (multiplying by the identity
    /// adds one nonzero term per entry), so only summation orders differ (tile products vs whole-matrix
    /// sgemm): forward and backward through 2 layers, at most 32 dependent products over at most 160
    /// terms (width 64, FFN 160), norm-relative.
    static let tolerance = FP32.chain(products: 32, innerDimension: 160)

    /// An fp32 copy of a model whose linear weights are dequantized from whatever they are held in.
    static func dequantizedCopy(_ m: LlamaModel) -> LlamaModel {
        func dense(_ w: LinearWeight) -> DenseWeight {
            // Dequantize by multiplying the identity: forward(I) = I · Wᵀ = Wᵀ, so rows of the result are columns of W.
            let n = w.outFeatures, k = w.inFeatures
            var eye = [Float](repeating: 0, count: k * k)
            for i in 0..<k { eye[i * k + i] = 1 }
            var wt = [Float](repeating: 0, count: k * n)
            eye.withUnsafeBufferPointer { e in wt.withUnsafeMutableBufferPointer { w.forward(e.baseAddress!, tokens: k, into: $0.baseAddress!, accumulate: false) } }
            var data = [Float](repeating: 0, count: n * k)
            for i in 0..<k { for j in 0..<n { data[j * k + i] = wt[i * n + j] } }
            return DenseWeight(outFeatures: n, inFeatures: k, data: data)
        }
        let w = m.weights
        let layers = w.layers.map { l in
            LayerWeights(attnNorm: l.attnNorm, q: dense(l.q), k: dense(l.k), v: dense(l.v), o: dense(l.o),
                         mlpNorm: l.mlpNorm, gate: dense(l.gate), up: dense(l.up), down: dense(l.down))
        }
        var emb = [Float](repeating: 0, count: m.config.vocabSize * m.config.hiddenSize)
        emb.withUnsafeMutableBufferPointer { e in
            for v in 0..<m.config.vocabSize { w.embed(v, dim: m.config.hiddenSize, into: e.baseAddress! + v * m.config.hiddenSize) }
        }
        return LlamaModel(config: m.config, weights: ModelWeights(embedding: emb, layers: layers, finalNorm: w.finalNorm, lmHead: dense(w.lmHead)))
    }

    func check(_ quantized: LlamaModel) throws {
        let reference = Self.dequantizedCopy(quantized)
        let recs = [TokenizedRecord(tokens: [1, 40, 77, 300, 12, 9, 250], scored: [false, true, true, true, true, true, true]),
                    TokenizedRecord(tokens: [1, 5, 6], scored: [false, false, true])]
        let batch = MicroBatch.padded(recs)
        var grads: [[Float]] = []
        var losses: [Double] = []
        for model in [quantized, reference] {
            let a = LoRAAdapter(config: LoRAConfig(rank: 4, alpha: 8, dropout: 0), base: model.config)
            a.initialize(seed: 1)
            for p in a.pairs { for i in 0..<p.bCount { a.parameters[p.bOffset + i] = Float((i * 7) % 11) * 0.01 - 0.05 } }
            let e = TrainingEngine(model: model, adapter: a)
            losses.append(try e.accumulate(batch, lossScale: 1, dropoutSeed: 0).sum)
            grads.append(e.gradients)
        }
        assertRelative(losses[0], losses[1], within: Self.tolerance, "loss")
        assertNormRelative(grads[0], grads[1], within: Self.tolerance, "LoRA gradients")
    }

    func testGradientsOverKeptGGUFBlocksEqualThoseOverTheDequantizedWeights() throws {
        let loaded = try ModelLoader.load(TestPaths.fixture("models/tiny-llama-gguf/tiny-llama.gguf"), quantization: .keep)
        let formats = Set(loaded.weights.layers.flatMap { l in LayerWeights.linearNames.map { String(describing: type(of: l.linear($0)!)) } })
        XCTAssertTrue(formats.contains("Q4_1Weight") && formats.contains("Q8_0Weight"), "\(formats)")
        try check(LlamaModel(config: loaded.config, weights: loaded.weights))
    }

    func testGradientsOverAnNF4BaseEqualThoseOverTheDequantizedWeights() throws {
        let loaded = try ModelLoader.load(TestPaths.fixture("models/tiny-llama-tied"), quantization: .nf4)
        XCTAssertTrue(loaded.weights.layers[0].q is NF4Weight)
        try check(LlamaModel(config: loaded.config, weights: loaded.weights))
    }
}
