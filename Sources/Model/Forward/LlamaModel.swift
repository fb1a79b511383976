import Foundation
import Kernels

/// A loaded Llama-family decoder (Llama, Mistral, Qwen2): frozen weights plus what the forward
/// pass derives from the config (rotary frequencies, scaled when the config says so). Immutable and shared; per-sequence state lives in `KVCache`
/// and per-call scratch in `Workspace`.
public final class LlamaModel: @unchecked Sendable {
    public let config: LlamaConfig
    public let weights: ModelWeights
    public let rope: RoPE

    public init(config: LlamaConfig, weights: ModelWeights) {
        self.config = config
        self.weights = weights
        self.rope = RoPE(headDim: config.headDim, invFreq: config.ropeInverseFrequencies)
    }

    /// Runs T new tokens through the model after the `cache.count` positions already cached,
    /// appends their keys and values to the cache, and leaves the final-normed hidden states
    /// [T, D] in `hidden`. Every matrix product covers all T tokens at once (sgemm).
    ///
    /// - Parameters:
    ///   - tokens: the T new token ids.
    ///   - adapters: the adapter set of this sequence (`.none` for the base model).
    public func forward(_ tokens: [Int], cache: KVCache, adapters: AdapterSet, workspace ws: Workspace,
                        hidden: UnsafeMutablePointer<Float>) throws {
        let c = config
        let T = tokens.count
        if T == 0 { return }
        let p0 = cache.count
        guard p0 + T <= cache.capacity else {
            throw ModelError.invalidArgument("sequence of \(p0 + T) tokens exceeds the KV cache capacity \(cache.capacity)")
        }
        for id in tokens where id < 0 || id >= c.vocabSize {
            throw ModelError.invalidArgument("token id \(id) is outside the vocabulary (0..<\(c.vocabSize))")
        }
        let S = p0 + T
        ws.plan(config: c, tokens: T, keys: S)
        let D = c.hiddenSize, E = c.headDim, H = c.numHeads, Hk = c.numKVHeads
        let qDim = c.qDim, kvDim = c.kvDim, F = c.intermediateSize
        let x = ws.x.pointer, xn = ws.xn.pointer
        for t in 0..<T { ws.positions[t] = Int32(p0 + t) }

        // Embedding rows.
        for t in 0..<T { weights.embed(tokens[t], dim: D, into: x + t * D) }

        let scale = 1 / Float(E).squareRoot()
        let group = H / Hk
        try ws.positions.withUnsafeBufferPointer { posBuf in
            let pos = posBuf.baseAddress!
            for (l, layer) in weights.layers.enumerated() {
                // Attention sublayer.
                layer.attnNorm.withUnsafeBufferPointer { w in
                    RMSNorm.forward(x, weight: w.baseAddress!, eps: c.rmsNormEps, tokens: T, dim: D, into: xn)
                }
                let q = ws.q.pointer, k = ws.k.pointer, v = ws.v.pointer
                linear(layer.q, .q, l, xn, T, q, adapters)
                linear(layer.k, .k, l, xn, T, k, adapters)
                linear(layer.v, .v, l, xn, T, v, adapters)
                LayerWeights.addBias(layer.qBias, to: q, tokens: T)
                LayerWeights.addBias(layer.kBias, to: k, tokens: T)
                LayerWeights.addBias(layer.vBias, to: v, tokens: T)
                rope.apply(q, tokens: T, heads: H, positions: pos)
                rope.apply(k, tokens: T, heads: Hk, positions: pos)
                let K = cache.keys[l], V = cache.values[l]
                (K + p0 * kvDim).update(from: k, count: T * kvDim)
                (V + p0 * kvDim).update(from: v, count: T * kvDim)

                let att = ws.att.pointer, scores = ws.scores.pointer
                for h in 0..<H {
                    let kvh = h / group
                    // scores[T, S] = Q_h[T, E] · K_hᵀ * scale
                    BLAS.sgemm(transB: true, m: T, n: S, k: E, alpha: scale,
                               a: q + h * E, lda: qDim, b: K + kvh * E, ldb: kvDim,
                               c: scores, ldc: S)
                    // Causal: token t (position p0+t) sees positions lo...p0+t (lo = 0 without a window).
                    for t in 0..<T {
                        let row = scores + t * S
                        let visible = p0 + t + 1
                        let lo = c.firstVisiblePosition(p0 + t)
                        Activations.softmax(row + lo, count: visible - lo)
                        if lo > 0 { row.update(repeating: 0, count: lo) }
                        if visible < S { (row + visible).update(repeating: 0, count: S - visible) }
                    }
                    // att_h[T, E] = scores[T, S] · V_h[S, E]
                    BLAS.sgemm(m: T, n: E, k: S, a: scores, lda: S, b: V + kvh * E, ldb: kvDim,
                               c: att + h * E, ldc: qDim)
                }
                // x += o_proj(att)
                linear(layer.o, .o, l, att, T, x, adapters, accumulate: true)

                // MLP sublayer: x += down(silu(gate(xn)) * up(xn)).
                layer.mlpNorm.withUnsafeBufferPointer { w in
                    RMSNorm.forward(x, weight: w.baseAddress!, eps: c.rmsNormEps, tokens: T, dim: D, into: xn)
                }
                let g = ws.gate.pointer, u = ws.up.pointer
                linear(layer.gate, .gate, l, xn, T, g, adapters)
                linear(layer.up, .up, l, xn, T, u, adapters)
                Activations.swiglu(gate: g, up: u, count: T * F)
                linear(layer.down, .down, l, g, T, x, adapters, accumulate: true)
            }
        }
        cache.count = S
        weights.finalNorm.withUnsafeBufferPointer { w in
            RMSNorm.forward(x, weight: w.baseAddress!, eps: c.rmsNormEps, tokens: T, dim: D, into: hidden)
        }
    }

    /// Y = X·Wᵀ (+ Y) plus the adapters' low-rank updates for this module.
    @inline(__always)
    private func linear(_ w: LinearWeight, _ module: LinearModule, _ layer: Int,
                        _ x: UnsafePointer<Float>, _ T: Int, _ y: UnsafeMutablePointer<Float>,
                        _ adapters: AdapterSet, accumulate: Bool = false) {
        w.forward(x, tokens: T, into: y, accumulate: accumulate)
        if !adapters.isEmpty { adapters.apply(layer: layer, module: module, x: x, tokens: T, y: y) }
    }

    /// Logits[T, V] = hidden[T, D] · lm_headᵀ.
    public func logits(hidden: UnsafePointer<Float>, tokens: Int, into out: UnsafeMutablePointer<Float>) {
        weights.lmHead.forward(hidden, tokens: tokens, into: out, accumulate: false)
    }

    /// Convenience: full logits [T, V] of a fresh sequence (no cache reuse), as an array.
    public func logits(for tokens: [Int], adapters: AdapterSet = .none) throws -> [Float] {
        let cache = KVCache(config: config, capacity: max(1, tokens.count))
        let ws = Workspace()
        var hidden = [Float](repeating: 0, count: tokens.count * config.hiddenSize)
        var out = [Float](repeating: 0, count: tokens.count * config.vocabSize)
        try hidden.withUnsafeMutableBufferPointer { h in
            try forward(tokens, cache: cache, adapters: adapters, workspace: ws, hidden: h.baseAddress!)
            out.withUnsafeMutableBufferPointer { o in
                logits(hidden: h.baseAddress!, tokens: tokens.count, into: o.baseAddress!)
            }
        }
        return out
    }

    /// Parameters of the frozen model (embedding counted once when tied).
    public var parameterCount: Int {
        let c = config
        var n = c.vocabSize * c.hiddenSize + c.hiddenSize
        for layer in weights.layers {
            n += 2 * c.hiddenSize
            for name in LayerWeights.linearNames {
                let w = layer.linear(name)!
                n += w.outFeatures * w.inFeatures
            }
            n += (layer.qBias?.count ?? 0) + (layer.kBias?.count ?? 0) + (layer.vBias?.count ?? 0)
        }
        if !c.tieWordEmbeddings { n += c.vocabSize * c.hiddenSize }
        return n
    }
}
