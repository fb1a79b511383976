import Foundation
import Kernels

/// One sequence's rows in a batched forward call: its new tokens (decoding: one; a prefill chunk:
/// several) appended after the `cache.count` positions already in its own KV cache, under its own
/// adapters.
public struct BatchSegment {
    public var tokens: [Int]
    public var cache: KVCache
    public var adapters: AdapterSet

    public init(tokens: [Int], cache: KVCache, adapters: AdapterSet = .none) {
        self.tokens = tokens; self.cache = cache; self.adapters = adapters
    }
}

extension LlamaModel {
    /// Runs every segment's new tokens through the model in one call: the rows of all segments are
    /// stacked ([T, D], T = Σ segment lengths, segments in order), each row with its own position,
    /// attending to its own sequence's KV cache, adapted by its own segment's adapters. Appends each
    /// segment's keys and values to its cache and leaves the final-normed hidden states [T, D] in
    /// `hidden`.
    ///
    /// Batch invariance: a row's result does not depend on which other segments share the call.
    /// - A segment of several rows (a prefill chunk) is multiplied on its own, exactly as a forward
    ///   of that segment alone (`LinearWeight.forward` with its T; sgemm tiles for quantized weights).
    /// - Segments of one row (decoding) are multiplied together with `forwardRows`, whose every row
    ///   is bit-identical to a one-token `forward` of that row (the fused GEMV for quantized weights).
    /// - Adapters add their low-rank term to their own segment's rows only, one row at a time for
    ///   one-row segments.
    /// - Norms, rotary, biases and SwiGLU are per row; attention is per segment against its own cache.
    /// So a sequence's logits are the same bits alone or in any batch, and the same as
    /// `forward(_:cache:adapters:workspace:hidden:)` called with the same chunks.
    public func forwardBatch(_ segments: [BatchSegment], workspace ws: Workspace,
                             hidden: UnsafeMutablePointer<Float>) throws {
        let c = config
        var offsets = [Int]()            // first row of each segment
        offsets.reserveCapacity(segments.count + 1)
        var T = 0
        var maxScores = 0
        for (i, s) in segments.enumerated() {
            offsets.append(T)
            let n = s.tokens.count
            guard n > 0 else { throw ModelError.invalidArgument("batch segment \(i) has no tokens") }
            let p0 = s.cache.count
            guard p0 + n <= s.cache.capacity else {
                throw ModelError.invalidArgument("sequence of \(p0 + n) tokens exceeds the KV cache capacity \(s.cache.capacity)")
            }
            for id in s.tokens where id < 0 || id >= c.vocabSize {
                throw ModelError.invalidArgument("token id \(id) is outside the vocabulary (0..<\(c.vocabSize))")
            }
            for j in 0..<i where segments[j].cache === s.cache {
                throw ModelError.invalidArgument("batch segments \(j) and \(i) share one KV cache")
            }
            maxScores = max(maxScores, n * (p0 + n))
            T += n
        }
        offsets.append(T)
        if T == 0 { return }
        ws.plan(config: c, tokens: T, keys: 1)
        ws.scores.reserve(maxScores)
        let D = c.hiddenSize, E = c.headDim, H = c.numHeads, Hk = c.numKVHeads
        let qDim = c.qDim, kvDim = c.kvDim, F = c.intermediateSize
        let x = ws.x.pointer, xn = ws.xn.pointer
        for (i, s) in segments.enumerated() {
            let p0 = s.cache.count
            for t in 0..<s.tokens.count {
                ws.positions[offsets[i] + t] = Int32(p0 + t)
                weights.embed(s.tokens[t], dim: D, into: x + (offsets[i] + t) * D)
            }
        }
        let plan = BatchPlan(segments: segments, offsets: offsets)
        let scale = 1 / Float(E).squareRoot()
        let group = H / Hk
        ws.positions.withUnsafeBufferPointer { posBuf in
            let pos = posBuf.baseAddress!
            for (l, layer) in weights.layers.enumerated() {
                // Attention sublayer.
                layer.attnNorm.withUnsafeBufferPointer { w in
                    RMSNorm.forward(x, weight: w.baseAddress!, eps: c.rmsNormEps, tokens: T, dim: D, into: xn)
                }
                let q = ws.q.pointer, k = ws.k.pointer, v = ws.v.pointer
                plan.linear(layer.q, .q, l, xn, q)
                plan.linear(layer.k, .k, l, xn, k)
                plan.linear(layer.v, .v, l, xn, v)
                LayerWeights.addBias(layer.qBias, to: q, tokens: T)
                LayerWeights.addBias(layer.kBias, to: k, tokens: T)
                LayerWeights.addBias(layer.vBias, to: v, tokens: T)
                rope.apply(q, tokens: T, heads: H, positions: pos)
                rope.apply(k, tokens: T, heads: Hk, positions: pos)
                let att = ws.att.pointer, scores = ws.scores.pointer
                for (i, s) in segments.enumerated() {
                    let r0 = offsets[i], n = s.tokens.count
                    let p0 = s.cache.count, S = p0 + n
                    let K = s.cache.keys[l], V = s.cache.values[l]
                    (K + p0 * kvDim).update(from: k + r0 * kvDim, count: n * kvDim)
                    (V + p0 * kvDim).update(from: v + r0 * kvDim, count: n * kvDim)
                    let qs = q + r0 * qDim, atts = att + r0 * qDim
                    for h in 0..<H {
                        let kvh = h / group
                        // scores[n, S] = Q_h[n, E] · K_hᵀ * scale
                        BLAS.sgemm(transB: true, m: n, n: S, k: E, alpha: scale,
                                   a: qs + h * E, lda: qDim, b: K + kvh * E, ldb: kvDim,
                                   c: scores, ldc: S)
                        // Causal: row t (position p0+t) sees positions lo...p0+t (lo = 0 without a window).
                        for t in 0..<n {
                            let row = scores + t * S
                            let visible = p0 + t + 1
                            let lo = c.firstVisiblePosition(p0 + t)
                            Activations.softmax(row + lo, count: visible - lo)
                            if lo > 0 { row.update(repeating: 0, count: lo) }
                            if visible < S { (row + visible).update(repeating: 0, count: S - visible) }
                        }
                        // att_h[n, E] = scores[n, S] · V_h[S, E]
                        BLAS.sgemm(m: n, n: E, k: S, a: scores, lda: S, b: V + kvh * E, ldb: kvDim,
                                   c: atts + h * E, ldc: qDim)
                    }
                }
                // x += o_proj(att)
                plan.linear(layer.o, .o, l, att, x, accumulate: true)

                // MLP sublayer: x += down(silu(gate(xn)) * up(xn)).
                layer.mlpNorm.withUnsafeBufferPointer { w in
                    RMSNorm.forward(x, weight: w.baseAddress!, eps: c.rmsNormEps, tokens: T, dim: D, into: xn)
                }
                let g = ws.gate.pointer, u = ws.up.pointer
                plan.linear(layer.gate, .gate, l, xn, g)
                plan.linear(layer.up, .up, l, xn, u)
                Activations.swiglu(gate: g, up: u, count: T * F)
                plan.linear(layer.down, .down, l, g, x, accumulate: true)
            }
        }
        for s in segments { s.cache.count += s.tokens.count }
        weights.finalNorm.withUnsafeBufferPointer { w in
            RMSNorm.forward(x, weight: w.baseAddress!, eps: c.rmsNormEps, tokens: T, dim: D, into: hidden)
        }
    }

    /// Logits[T, V] of T single rows, each bit-identical to `logits(hidden:tokens: 1)` of that row alone.
    public func logitsRows(hidden: UnsafePointer<Float>, rows: Int, into out: UnsafeMutablePointer<Float>) {
        weights.lmHead.forwardRows(hidden, rows: rows, into: out, accumulate: false)
    }
}

/// How a batched call's rows are grouped for the linear layers: runs of one-row segments (decoding)
/// go through `forwardRows` together; each multi-row segment (a prefill chunk) through `forward` alone.
struct BatchPlan {
    enum Group {
        /// Rows r0..<r1, one segment per row; `adapters[i]` is row r0 + i's.
        case rows(Range<Int>, [AdapterSet])
        /// One segment's rows, multiplied together.
        case chunk(Range<Int>, AdapterSet)
    }

    let groups: [Group]

    init(segments: [BatchSegment], offsets: [Int]) {
        var groups: [Group] = []
        var i = 0
        while i < segments.count {
            if segments[i].tokens.count == 1 {
                var j = i
                var sets: [AdapterSet] = []
                while j < segments.count && segments[j].tokens.count == 1 { sets.append(segments[j].adapters); j += 1 }
                groups.append(.rows(offsets[i]..<offsets[j], sets))
                i = j
            } else {
                groups.append(.chunk(offsets[i]..<offsets[i + 1], segments[i].adapters))
                i += 1
            }
        }
        self.groups = groups
    }

    /// Y[T, N] = X[T, K] · Wᵀ (+ Y) plus each row's adapters' low-rank update for this module.
    @inline(__always)
    func linear(_ w: LinearWeight, _ module: LinearModule, _ layer: Int, _ x: UnsafePointer<Float>,
                _ y: UnsafeMutablePointer<Float>, accumulate: Bool = false) {
        let K = w.inFeatures, N = w.outFeatures
        for g in groups {
            switch g {
            case let .rows(r, sets):
                w.forwardRows(x + r.lowerBound * K, rows: r.count, into: y + r.lowerBound * N, accumulate: accumulate)
                // Each row's low-rank term is its own one-row product (the same bits on any thread),
                // so rows are spread over the pool: with many adapters this is the step's memory traffic.
                Parallel.forEachChunk(sets.count) { chunk in
                    for i in chunk where !sets[i].isEmpty {
                        let row = r.lowerBound + i
                        sets[i].apply(layer: layer, module: module, x: x + row * K, tokens: 1, y: y + row * N)
                    }
                }
            case let .chunk(r, set):
                w.forward(x + r.lowerBound * K, tokens: r.count, into: y + r.lowerBound * N, accumulate: accumulate)
                if !set.isEmpty {
                    set.apply(layer: layer, module: module, x: x + r.lowerBound * K, tokens: r.count, y: y + r.lowerBound * N)
                }
            }
        }
    }
}
