import Kernels
import Model

/// A random tiny Llama-family model built in memory (no file): for checks that need no reference
/// implementation (cache vs recomputation, gradients vs finite differences, padding, packing).
/// Draw order is fixed (per layer: attention norm, q, k, v, o, MLP norm, gate, up, down, then the
/// q/k/v biases; then embedding, untied head, final norm), so a seed names one model everywhere.
public enum RandomModel {
    public static func make(seed: UInt64 = 7, vocab: Int = 50, d: Int = 32, f: Int = 48, layers: Int = 2,
                            heads: Int = 4, kvHeads: Int = 2, headDim: Int? = nil, tied: Bool = true,
                            weightScale: Float = 0.3, normScale: Float = 0.5, rmsNormEps: Float = 1e-6,
                            maxPositions: Int = 128, bosTokenId: Int? = 0, eosTokenIds: [Int] = [1],
                            biases: Bool = false, slidingWindow: Int? = nil, ropeScaling: RoPEScaling? = nil) -> LlamaModel {
        var rng = TestRNG(seed: seed)
        let e = headDim ?? d / heads
        let config = LlamaConfig(vocabSize: vocab, hiddenSize: d, intermediateSize: f, numLayers: layers,
                                 numHeads: heads, numKVHeads: kvHeads, headDim: e, rmsNormEps: rmsNormEps,
                                 ropeTheta: 10000, maxPositionEmbeddings: maxPositions, tieWordEmbeddings: tied,
                                 bosTokenId: bosTokenId, eosTokenIds: eosTokenIds,
                                 slidingWindow: slidingWindow, ropeScaling: ropeScaling)
        func lin(_ n: Int, _ k: Int) -> DenseWeight { DenseWeight(outFeatures: n, inFeatures: k, data: rng.uniform(n * k, scale: weightScale)) }
        func norm() -> [Float] { rng.uniform(d, scale: normScale).map { $0 + 1 } }
        let qd = heads * e, kd = kvHeads * e
        let layerWeights = (0..<layers).map { _ in
            LayerWeights(attnNorm: norm(), q: lin(qd, d), k: lin(kd, d), v: lin(kd, d), o: lin(d, qd),
                         mlpNorm: norm(), gate: lin(f, d), up: lin(f, d), down: lin(d, f),
                         qBias: biases ? rng.uniform(qd, scale: 0.5) : nil,
                         kBias: biases ? rng.uniform(kd, scale: 0.5) : nil,
                         vBias: biases ? rng.uniform(kd, scale: 0.5) : nil)
        }
        let emb = rng.uniform(vocab * d)
        let head: LinearWeight = tied ? DenseWeight(outFeatures: vocab, inFeatures: d, data: emb) : lin(vocab, d)
        return LlamaModel(config: config, weights: ModelWeights(embedding: emb, layers: layerWeights,
                                                                finalNorm: norm(), lmHead: head))
    }

    /// The training tests' model: width 16, FFN 24, vocabulary 29, 2 layers, context 64, EOS 1, no BOS.
    public static func training(seed: UInt64, tied: Bool = true, heads: Int = 4, kvHeads: Int = 2, headDim: Int = 8,
                                biases: Bool = false, slidingWindow: Int? = nil, ropeScaling: RoPEScaling? = nil) -> LlamaModel {
        make(seed: seed, vocab: 29, d: 16, f: 24, layers: 2, heads: heads, kvHeads: kvHeads, headDim: headDim, tied: tied,
             weightScale: 0.4, normScale: 0.3, rmsNormEps: 1e-5, maxPositions: 64, bosTokenId: nil, eosTokenIds: [1],
             biases: biases, slidingWindow: slidingWindow, ropeScaling: ropeScaling)
    }
}
