import Foundation
import Kernels
import Model

extension TrainingEngine {
    /// The forward pass over N = B*T positions, saving what the backward needs.
    func forward(_ batch: MicroBatch, dropoutSeed: UInt64, training: Bool) {
        let c = model.config
        let N = batch.count, D = c.hiddenSize, F = c.intermediateSize
        let x = self.x.pointer
        for i in 0..<N { model.weights.embed(batch.tokens[i], dim: D, into: x + i * D) }
        for l in 0..<c.numLayers {
            if gradientCheckpointing { blockInputs[l].pointer.update(from: x, count: N * D) }
            layerForward(l, batch, saved[gradientCheckpointing ? 0 : l], x: x, dropoutSeed: dropoutSeed, training: training)
        }
        model.weights.finalNorm.withUnsafeBufferPointer {
            RMSNorm.forward(x, weight: $0.baseAddress!, eps: c.rmsNormEps, tokens: N, dim: D, into: hiddenFinal.pointer)
        }
    }

    /// One decoder block on the residual stream `x` [N, D] (updated in place), saving its
    /// activations into `s`. Deterministic: the backward may call it again to recompute them.
    func layerForward(_ l: Int, _ batch: MicroBatch, _ s: LayerSaved, x: UnsafeMutablePointer<Float>,
                      dropoutSeed: UInt64, training: Bool) {
        let c = model.config
        let N = batch.count, D = c.hiddenSize, F = c.intermediateSize
        let w = model.weights.layers[l]
        batch.positions.withUnsafeBufferPointer { posBuf in
            let pos = posBuf.baseAddress!
            s.xIn.pointer.update(from: x, count: N * D)
            w.attnNorm.withUnsafeBufferPointer {
                RMSNorm.forward(x, weight: $0.baseAddress!, eps: c.rmsNormEps, tokens: N, dim: D, into: s.xn1.pointer)
            }
            linear(w.q, .q, l, s.xn1.pointer, N, s.q.pointer, dropoutSeed, training)
            linear(w.k, .k, l, s.xn1.pointer, N, s.k.pointer, dropoutSeed, training)
            linear(w.v, .v, l, s.xn1.pointer, N, s.v.pointer, dropoutSeed, training)
            // Frozen biases (Qwen2): constants, so the backward is unchanged.
            LayerWeights.addBias(w.qBias, to: s.q.pointer, tokens: N)
            LayerWeights.addBias(w.kBias, to: s.k.pointer, tokens: N)
            LayerWeights.addBias(w.vBias, to: s.v.pointer, tokens: N)
            model.rope.apply(s.q.pointer, tokens: N, heads: c.numHeads, positions: pos)
            model.rope.apply(s.k.pointer, tokens: N, heads: c.numKVHeads, positions: pos)
            attentionForward(batch, s)
            linear(w.o, .o, l, s.att.pointer, N, x, dropoutSeed, training, accumulate: true)
            s.xMid.pointer.update(from: x, count: N * D)
            w.mlpNorm.withUnsafeBufferPointer {
                RMSNorm.forward(x, weight: $0.baseAddress!, eps: c.rmsNormEps, tokens: N, dim: D, into: s.xn2.pointer)
            }
            linear(w.gate, .gate, l, s.xn2.pointer, N, s.gate.pointer, dropoutSeed, training)
            linear(w.up, .up, l, s.xn2.pointer, N, s.up.pointer, dropoutSeed, training)
            Activations.swiglu(gate: s.gate.pointer, up: s.up.pointer, into: act.pointer, count: N * F)
            linear(w.down, .down, l, act.pointer, N, x, dropoutSeed, training, accumulate: true)
        }
    }

    /// Y = X·Wᵀ (+ Y) + the adapter's update for this module, saving h = dropout(X)·Aᵀ.
    @inline(__always)
    func linear(_ w: LinearWeight, _ m: LinearModule, _ layer: Int, _ xIn: UnsafePointer<Float>, _ N: Int,
                _ y: UnsafeMutablePointer<Float>, _ seed: UInt64, _ training: Bool, accumulate: Bool = false) {
        w.forward(xIn, tokens: N, into: y, accumulate: accumulate)
        guard let pi = adapter.pairIndex(layer: layer, module: m) else { return }
        let p = adapter.pairs[pi]
        let h = loraH[pi].pointer
        adapter.parameters.withUnsafeBufferPointer { params in
            let a = params.baseAddress! + p.aOffset, b = params.baseAddress! + p.bOffset
            var z = xIn
            if training && adapter.config.dropout > 0 {
                makeDropoutMask(pair: pi, count: N * p.inFeatures, seed: seed)
                applyDropout(pair: pi, xIn, into: dropScratch.pointer, count: N * p.inFeatures)
                z = UnsafePointer(dropScratch.pointer)
            }
            // h[N, R] = Z · Aᵀ ; Y += s · h · Bᵀ
            BLAS.sgemm(transB: true, m: N, n: p.rank, k: p.inFeatures, a: z, b: a, c: h)
            BLAS.sgemm(transB: true, m: N, n: p.outFeatures, k: p.rank, alpha: p.scaling, a: h, b: b, beta: 1, c: y)
        }
    }

    /// Keep-mask bits for one pair's dropout, drawn from a stream keyed by (seed, pair) so that
    /// a resumed run redraws the same masks.
    func makeDropoutMask(pair: Int, count: Int, seed: UInt64) {
        let words = (count + 63) / 64
        if loraMask[pair].count < words { loraMask[pair] = [UInt64](repeating: 0, count: words) }
        var rng = SeededGenerator(seed: seed &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(pair) &* 0xD1B5_4A32_D192_ED03)
        let p = Double(adapter.config.dropout)
        loraMask[pair].withUnsafeMutableBufferPointer { bits in
            for w in 0..<words {
                var word: UInt64 = 0
                let n = min(64, count - w * 64)
                for j in 0..<n where rng.nextUnitFloat() >= p { word |= 1 << UInt64(j) }
                bits[w] = word
            }
        }
    }

    /// out = x ⊙ mask / (1 - p): inverted dropout, as torch.nn.Dropout scales kept values.
    func applyDropout(pair: Int, _ x: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, count: Int) {
        let keepScale = 1 / (1 - adapter.config.dropout)
        loraMask[pair].withUnsafeBufferPointer { bits in
            for i in 0..<count {
                out[i] = (bits[i >> 6] >> UInt64(i & 63)) & 1 == 1 ? x[i] * keepScale : 0
            }
        }
    }

    /// Causal attention inside each segment (and the sliding window, when the model has one), per
    /// row b and head h; saves each row's log-sum-exp.
    func attentionForward(_ batch: MicroBatch, _ s: LayerSaved) {
        let c = model.config
        let T = batch.length, E = c.headDim, H = c.numHeads, Hk = c.numKVHeads
        let qDim = c.qDim, kvDim = c.kvDim
        let scale = 1 / Float(E).squareRoot()
        let group = H / Hk
        let P = scores.pointer
        batch.visibleStart.withUnsafeBufferPointer { vs in
            for b in 0..<batch.rows {
                let q = s.q.pointer + b * T * qDim, k = s.k.pointer + b * T * kvDim, v = s.v.pointer + b * T * kvDim
                let o = s.att.pointer + b * T * qDim
                for h in 0..<H {
                    let kvh = h / group
                    // P[T, T] = scale · Q_h · K_hᵀ, then a softmax over each row's visible keys.
                    BLAS.sgemm(transB: true, m: T, n: T, k: E, alpha: scale, a: q + h * E, lda: qDim,
                               b: k + kvh * E, ldb: kvDim, c: P, ldc: T)
                    let lse = s.lse.pointer + (b * H + h) * T
                    for i in 0..<T {
                        let row = P + i * T
                        let lo = max(Int(vs[b * T + i]), c.firstVisiblePosition(i))
                        var m = -Float.infinity
                        for j in lo...i where row[j] > m { m = row[j] }
                        var sum: Float = 0
                        for j in lo...i { let e = expf(row[j] - m); row[j] = e; sum += e }
                        let inv = 1 / sum
                        if lo > 0 { row.update(repeating: 0, count: lo) }
                        for j in lo...i { row[j] *= inv }
                        if i + 1 < T { (row + i + 1).update(repeating: 0, count: T - i - 1) }
                        lse[i] = m + logf(sum)
                    }
                    // O_h[T, E] = P · V_h
                    BLAS.sgemm(m: T, n: E, k: T, a: P, lda: T, b: v + kvh * E, ldb: kvDim, c: o + h * E, ldc: qDim)
                }
            }
        }
    }

    /// Cross-entropy over the LM head, in chunks of rows so [N, V] logits never exist at once.
    /// Leaves dL/d(final hidden) · lossScale in `dtmp` (when wanted) and returns the loss sum.
    func lossAndHiddenGradient(_ batch: MicroBatch, lossScale: Float, wantGradient: Bool = true) -> MicroBatchLoss {
        let c = model.config
        let N = batch.count, D = c.hiddenSize, V = c.vocabSize
        let chunk = Self.logitRows
        let logits = logitChunk.pointer
        let dh = dtmp.pointer
        if wantGradient { dh.update(repeating: 0, count: N * D) }
        var sum = 0.0
        var scored = 0
        var start = 0
        while start < N {
            let rows = min(chunk, N - start)
            var any = false
            for r in 0..<rows where batch.targets[start + r] >= 0 { any = true; break }
            if !any { start += rows; continue }
            model.logits(hidden: hiddenFinal.pointer + start * D, tokens: rows, into: logits)
            for r in 0..<rows {
                let row = logits + r * V
                let target = Int(batch.targets[start + r])
                if target < 0 {
                    row.update(repeating: 0, count: V)
                    continue
                }
                let lse = Activations.logSumExp(row, count: V)
                sum += lse - Double(row[target])
                scored += 1
                if wantGradient {
                    // d(-log softmax[target])/dlogit = softmax - onehot, scaled.
                    let l = Float(lse)
                    for j in 0..<V { row[j] = expf(row[j] - l) * lossScale }
                    row[target] -= lossScale
                }
            }
            if wantGradient { model.weights.lmHead.backwardInput(logits, tokens: rows, into: dh + start * D) }
            start += rows
        }
        return MicroBatchLoss(sum: sum, scored: scored)
    }
}

extension LoRAAdapter {
    @inline(__always)
    func pairIndex(layer: Int, module: LinearModule) -> Int? {
        let i = pairIndex[layer * Self.moduleOrder.count + Self.moduleIndex(module)]
        return i < 0 ? nil : i
    }

    @inline(__always)
    static func moduleIndex(_ m: LinearModule) -> Int {
        switch m {
        case .q: return 0
        case .k: return 1
        case .v: return 2
        case .o: return 3
        case .gate: return 4
        case .up: return 5
        case .down: return 6
        }
    }
}
