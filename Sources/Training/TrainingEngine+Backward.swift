import Foundation
import Kernels
import Model

extension TrainingEngine {
    /// Backward from dL/d(final hidden) (in `dtmp`) through every block to the embeddings,
    /// accumulating LoRA gradients only.
    func backward(_ batch: MicroBatch, dropoutSeed: UInt64) {
        let c = model.config
        let N = batch.count, D = c.hiddenSize, F = c.intermediateSize
        let dx = self.dx.pointer
        // Final norm: residual x (left in self.x by the forward) -> hidden.
        dx.update(repeating: 0, count: N * D)
        model.weights.finalNorm.withUnsafeBufferPointer {
            RMSNorm.backward(x.pointer, weight: $0.baseAddress!, eps: c.rmsNormEps, dy: dtmp.pointer,
                             tokens: N, dim: D, dx: dx)
        }
        gradients.withUnsafeMutableBufferPointer { gradBuf in
            let grad = gradBuf.baseAddress!
            batch.positions.withUnsafeBufferPointer { posBuf in
                let pos = posBuf.baseAddress!
                for l in stride(from: c.numLayers - 1, through: 0, by: -1) {
                    let w = model.weights.layers[l]
                    let s = saved[gradientCheckpointing ? 0 : l]
                    if gradientCheckpointing {
                        // Recompute this block's activations from its saved input (same dropout masks).
                        recompute.pointer.update(from: blockInputs[l].pointer, count: N * D)
                        layerForward(l, batch, s, x: recompute.pointer, dropoutSeed: dropoutSeed, training: true)
                    }
                    // MLP: x_out = xMid + down(silu(gate) ⊙ up).
                    Activations.swiglu(gate: s.gate.pointer, up: s.up.pointer, into: ws.act.pointer, count: N * F)
                    let dAct = dtmp.pointer
                    dAct.update(repeating: 0, count: N * F)
                    linearBackward(w.down, .down, l, input: ws.act.pointer, dy: dx, N, dx: dAct, grad: grad)
                    // dGate overwrites the saved up and dUp the saved gate (nothing reads them after
                    // this): both kernels read element i's gate before writing dU[i] and its up before
                    // writing dG[i] (C's sequential order; no restrict), so the bits are unchanged.
                    let dgate = s.up.pointer, dup = s.gate.pointer
                    Activations.swigluBackward(gate: s.gate.pointer, up: s.up.pointer, dA: dAct,
                                               dGate: dgate, dUp: dup, count: N * F)
                    let dxn = dtmp.pointer
                    dxn.update(repeating: 0, count: N * D)
                    let xn2 = normedInput(s, mlp: true, w, N)
                    linearBackward(w.gate, .gate, l, input: xn2, dy: dgate, N, dx: dxn, grad: grad)
                    linearBackward(w.up, .up, l, input: xn2, dy: dup, N, dx: dxn, grad: grad)
                    w.mlpNorm.withUnsafeBufferPointer {
                        RMSNorm.backward(s.xMid.pointer, weight: $0.baseAddress!, eps: c.rmsNormEps, dy: dxn,
                                         tokens: N, dim: D, dx: dx)
                    }
                    // Attention: xMid = xIn + o(attention(q, k, v)).
                    let dAtt = dtmp.pointer
                    dAtt.update(repeating: 0, count: N * c.qDim)
                    let att = model.attentionOutput(l, rows: rows, saved: s, workspace: ws)
                    linearBackward(w.o, .o, l, input: att, dy: dx, N, dx: dAtt, grad: grad)
                    attentionBackward(batch, s, att: att, dAtt: dAtt)
                    model.rope.applyInverse(dq.pointer, tokens: N, heads: c.numHeads, positions: pos)
                    model.rope.applyInverse(dk.pointer, tokens: N, heads: c.numKVHeads, positions: pos)
                    // Below layer 0 lie only the frozen embeddings: its input gradient (q, k, v's input
                    // products and the attention norm's backward) would go nowhere, so it is skipped.
                    let needInput = l > 0
                    let dxn1 = dtmp.pointer
                    if needInput { dxn1.update(repeating: 0, count: N * D) }
                    let xn1 = normedInput(s, mlp: false, w, N)
                    linearBackward(w.q, .q, l, input: xn1, dy: dq.pointer, N, dx: dxn1, grad: grad, inputGradient: needInput)
                    linearBackward(w.k, .k, l, input: xn1, dy: dk.pointer, N, dx: dxn1, grad: grad, inputGradient: needInput)
                    linearBackward(w.v, .v, l, input: xn1, dy: dv.pointer, N, dx: dxn1, grad: grad, inputGradient: needInput)
                    if needInput {
                        w.attnNorm.withUnsafeBufferPointer {
                            RMSNorm.backward(s.xIn.pointer, weight: $0.baseAddress!, eps: c.rmsNormEps, dy: dxn1,
                                             tokens: N, dim: D, dx: dx)
                        }
                    }
                }
            }
        }
    }

    /// A block's normed sublayer input (xn1 for attention, xn2 for the MLP): the saved one, or, when the
    /// block did not keep it, recomputed from the saved residual into `normed` by the forward's own
    /// `RMSNorm.forward` (the same bits the forward multiplied).
    func normedInput(_ s: BlockActivations, mlp: Bool, _ w: LayerWeights, _ N: Int) -> UnsafePointer<Float> {
        if s.keepsNorms { return UnsafePointer(mlp ? s.xn2.pointer : s.xn1.pointer) }
        let c = model.config
        let weight = mlp ? w.mlpNorm : w.attnNorm
        weight.withUnsafeBufferPointer {
            RMSNorm.forward(mlp ? s.xMid.pointer : s.xIn.pointer, weight: $0.baseAddress!, eps: c.rmsNormEps,
                            tokens: N, dim: c.hiddenSize, into: normed.pointer)
        }
        return UnsafePointer(normed.pointer)
    }

    /// dX[N, K] += dY · W (+ the adapter's path), and the adapter's dA, dB for this module.
    /// With z = dropout(x), h = z·Aᵀ saved by the forward, and s the scaling:
    /// dB += s · dYᵀ·h ; dh = s · dY·B ; dA += dhᵀ·z ; dX += (dh·A) ⊙ mask / (1 - p).
    /// Without `inputGradient`, dX is left alone (nothing below needs it): dA and dB only.
    @inline(__always)
    func linearBackward(_ w: LinearWeight, _ m: LinearModule, _ layer: Int, input xIn: UnsafePointer<Float>,
                        dy: UnsafePointer<Float>, _ N: Int, dx: UnsafeMutablePointer<Float>,
                        grad: UnsafeMutablePointer<Float>, inputGradient: Bool = true) {
        if inputGradient { w.backwardInput(dy, tokens: N, into: dx) }
        guard let pi = adapter.pairIndex(layer: layer, module: m) else { return }
        let p = adapter.pairs[pi]
        let h = loraH[pi].pointer, dh = self.dh.pointer
        adapter.parameters.withUnsafeBufferPointer { params in
            let a = params.baseAddress! + p.aOffset, b = params.baseAddress! + p.bOffset
            let dA = grad + p.aOffset, dB = grad + p.bOffset
            BLAS.sgemm(transA: true, m: p.outFeatures, n: p.rank, k: N, alpha: p.scaling,
                       a: dy, lda: p.outFeatures, b: h, ldb: p.rank, beta: 1, c: dB)
            BLAS.sgemm(m: N, n: p.rank, k: p.outFeatures, alpha: p.scaling, a: dy, b: b, c: dh)
            let dropout = adapter.config.dropout > 0 && !loraMask[pi].isEmpty
            var z = xIn
            if dropout {
                applyDropout(pair: pi, xIn, into: dropScratch.pointer, count: N * p.inFeatures)
                z = UnsafePointer(dropScratch.pointer)
            }
            BLAS.sgemm(transA: true, m: p.rank, n: p.inFeatures, k: N, a: dh, lda: p.rank, b: z, ldb: p.inFeatures,
                       beta: 1, c: dA)
            if !inputGradient { return }
            if dropout {
                // dz = dh·A, then through the same mask and scale.
                let dz = dropScratch.pointer
                BLAS.sgemm(m: N, n: p.inFeatures, k: p.rank, a: dh, b: a, c: dz)
                let keepScale = 1 / (1 - adapter.config.dropout)
                loraMask[pi].withUnsafeBufferPointer { bits in
                    for i in 0..<(N * p.inFeatures) where (bits[i >> 6] >> UInt64(i & 63)) & 1 == 1 {
                        dx[i] += dz[i] * keepScale
                    }
                }
            } else {
                BLAS.sgemm(m: N, n: p.inFeatures, k: p.rank, a: dh, b: a, beta: 1, c: dx)
            }
        }
    }

    /// Query rows per block of the attention backward: a block's rows see keys 0..<(its last row + 1)
    /// only, so its products skip the masked keys above the diagonal (at T = 256, blocks of 64 do 62.5%
    /// of the full T x T products' work).
    static let attentionRowBlock = 64

    /// Chunks of P and dS scratch the attention backward's `tasks` (record, kv head) pairs need: they are
    /// cut as the forward's (`LlamaModel.ownKeySplit`: 3 a thread, so a thread that starts late takes
    /// fewer, and at most `ownKeyChunkLimit` whatever the budget), each chunk with its own scratch.
    static func attentionChunks(_ tasks: Int) -> Int { min(tasks, LlamaModel.ownKeyChunkLimit) }

    /// Backward of the block forward's attention for every row and head; writes dQ, dK, dV (pre-RoPE-inverse).
    /// P is recomputed from Q, K and the saved log-sum-exp instead of being stored [B, H, T, T].
    /// dP = dO·Vᵀ ; dS = P ⊙ (dP - rowsum(dO ⊙ O)) ; dQ = scale·dS·K ; dK += scale·dSᵀ·Q ; dV += Pᵀ·dO.
    ///
    /// Work is split over the pool by (record, kv head): each task owns its dK, dV slice and its query
    /// heads' dQ, with its own P and dS scratch, and runs its products whole on its thread. Query rows
    /// go in blocks of `attentionRowBlock` against the keys they can see; dK and dV add up the blocks in
    /// row order (a different association of the same sums than one T x T product, within the same
    /// rounding bound), and the split never changes a bit.
    func attentionBackward(_ batch: MicroBatch, _ s: BlockActivations, att: UnsafePointer<Float>, dAtt: UnsafePointer<Float>) {
        let c = model.config
        let T = batch.length, E = c.headDim, H = c.numHeads, Hk = c.numKVHeads
        let qDim = c.qDim, kvDim = c.kvDim
        let scale = 1 / Float(E).squareRoot()
        let group = H / Hk
        let RB = min(T, Self.attentionRowBlock)
        dk.pointer.update(repeating: 0, count: batch.count * kvDim)
        dv.pointer.update(repeating: 0, count: batch.count * kvDim)
        let tasks = batch.rows * Hk
        let scratch = dscores.pointer  // [chunks, 2, RB, T]: each chunk's P and dS blocks
        let split = LlamaModel.ownKeySplit(tasks), per = split.per
        let qs = s.q.pointer, ks = s.k.pointer, vsv = s.v.pointer, lses = s.lse.pointer
        let dqs = dq.pointer, dks = dk.pointer, dvs = dv.pointer
        batch.visibleStart.withUnsafeBufferPointer { vs in
            Parallel.forEachChunk(tasks, minChunk: split.minChunk, chunksPerThread: 3) { part in
                let P = scratch + (part.lowerBound / per) * 2 * RB * T, dS = P + RB * T
                for task in part {
                    let b = task / Hk, kvh = task % Hk
                    let q = qs + b * T * qDim, k = ks + b * T * kvDim + kvh * E, v = vsv + b * T * kvDim + kvh * E
                    let o = att + b * T * qDim, dO = dAtt + b * T * qDim
                    let dQ = dqs + b * T * qDim, dK = dks + b * T * kvDim + kvh * E, dV = dvs + b * T * kvDim + kvh * E
                    for h in (kvh * group)..<((kvh + 1) * group) {
                        let lse = lses + (b * H + h) * T
                        var i0 = 0
                        while i0 < T {
                            let i1 = min(T, i0 + RB), nb = i1 - i0, S = i1  // rows i0..<i1, keys 0..<S
                            BLAS.sgemm(transB: true, m: nb, n: S, k: E, alpha: scale, a: q + i0 * qDim + h * E, lda: qDim,
                                       b: k, ldb: kvDim, c: P, ldc: S)
                            BLAS.sgemm(transB: true, m: nb, n: S, k: E, a: dO + i0 * qDim + h * E, lda: qDim,
                                       b: v, ldb: kvDim, c: dS, ldc: S)
                            for i in i0..<i1 {
                                let pr = P + (i - i0) * S, dr = dS + (i - i0) * S
                                let lo = max(Int(vs[b * T + i]), c.firstVisiblePosition(i))
                                var dsum: Float = 0
                                for e in 0..<E { dsum += dO[i * qDim + h * E + e] * o[i * qDim + h * E + e] }
                                if lo > 0 { pr.update(repeating: 0, count: lo); dr.update(repeating: 0, count: lo) }
                                Activations.attentionBackwardRow(p: pr + lo, d: dr + lo, count: i + 1 - lo, lse: lse[i], dsum: dsum)
                                if i + 1 < S {
                                    (pr + i + 1).update(repeating: 0, count: S - i - 1)
                                    (dr + i + 1).update(repeating: 0, count: S - i - 1)
                                }
                            }
                            BLAS.sgemm(m: nb, n: E, k: S, alpha: scale, a: dS, lda: S, b: k, ldb: kvDim,
                                       c: dQ + i0 * qDim + h * E, ldc: qDim)
                            BLAS.sgemm(transA: true, m: S, n: E, k: nb, alpha: scale, a: dS, lda: S, b: q + i0 * qDim + h * E,
                                       ldb: qDim, beta: 1, c: dK, ldc: kvDim)
                            BLAS.sgemm(transA: true, m: S, n: E, k: nb, a: P, lda: S, b: dO + i0 * qDim + h * E, ldb: qDim,
                                       beta: 1, c: dV, ldc: kvDim)
                            i0 = i1
                        }
                    }
                }
            }
        }
    }
}
