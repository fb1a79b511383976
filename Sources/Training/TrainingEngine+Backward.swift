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
                    Activations.swigluBackward(gate: s.gate.pointer, up: s.up.pointer, dA: dAct,
                                               dGate: dgate.pointer, dUp: dup.pointer, count: N * F)
                    let dxn = dtmp.pointer
                    dxn.update(repeating: 0, count: N * D)
                    let xn2 = normedInput(s, mlp: true, w, N)
                    linearBackward(w.gate, .gate, l, input: xn2, dy: dgate.pointer, N, dx: dxn, grad: grad)
                    linearBackward(w.up, .up, l, input: xn2, dy: dup.pointer, N, dx: dxn, grad: grad)
                    w.mlpNorm.withUnsafeBufferPointer {
                        RMSNorm.backward(s.xMid.pointer, weight: $0.baseAddress!, eps: c.rmsNormEps, dy: dxn,
                                         tokens: N, dim: D, dx: dx)
                    }
                    // Attention: xMid = xIn + o(attention(q, k, v)).
                    let dAtt = dtmp.pointer
                    dAtt.update(repeating: 0, count: N * c.qDim)
                    linearBackward(w.o, .o, l, input: s.att.pointer, dy: dx, N, dx: dAtt, grad: grad)
                    attentionBackward(batch, s, dAtt: dAtt)
                    model.rope.applyInverse(dq.pointer, tokens: N, heads: c.numHeads, positions: pos)
                    model.rope.applyInverse(dk.pointer, tokens: N, heads: c.numKVHeads, positions: pos)
                    let dxn1 = dtmp.pointer
                    dxn1.update(repeating: 0, count: N * D)
                    let xn1 = normedInput(s, mlp: false, w, N)
                    linearBackward(w.q, .q, l, input: xn1, dy: dq.pointer, N, dx: dxn1, grad: grad)
                    linearBackward(w.k, .k, l, input: xn1, dy: dk.pointer, N, dx: dxn1, grad: grad)
                    linearBackward(w.v, .v, l, input: xn1, dy: dv.pointer, N, dx: dxn1, grad: grad)
                    w.attnNorm.withUnsafeBufferPointer {
                        RMSNorm.backward(s.xIn.pointer, weight: $0.baseAddress!, eps: c.rmsNormEps, dy: dxn1,
                                         tokens: N, dim: D, dx: dx)
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
    @inline(__always)
    func linearBackward(_ w: LinearWeight, _ m: LinearModule, _ layer: Int, input xIn: UnsafePointer<Float>,
                        dy: UnsafePointer<Float>, _ N: Int, dx: UnsafeMutablePointer<Float>,
                        grad: UnsafeMutablePointer<Float>) {
        w.backwardInput(dy, tokens: N, into: dx)
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

    /// Backward of `attentionForward` for every row and head; writes dQ, dK, dV (pre-RoPE-inverse).
    /// P is recomputed from Q, K and the saved log-sum-exp instead of being stored [B, H, T, T].
    /// dP = dO·Vᵀ ; dS = P ⊙ (dP - rowsum(dO ⊙ O)) ; dQ = scale·dS·K ; dK += scale·dSᵀ·Q ; dV += Pᵀ·dO.
    func attentionBackward(_ batch: MicroBatch, _ s: BlockActivations, dAtt: UnsafePointer<Float>) {
        let c = model.config
        let T = batch.length, E = c.headDim, H = c.numHeads, Hk = c.numKVHeads
        let qDim = c.qDim, kvDim = c.kvDim
        let scale = 1 / Float(E).squareRoot()
        let group = H / Hk
        let P = ws.scores.pointer, dS = dscores.pointer
        dk.pointer.update(repeating: 0, count: batch.count * kvDim)
        dv.pointer.update(repeating: 0, count: batch.count * kvDim)
        batch.visibleStart.withUnsafeBufferPointer { vs in
            for b in 0..<batch.rows {
                let q = s.q.pointer + b * T * qDim, k = s.k.pointer + b * T * kvDim, v = s.v.pointer + b * T * kvDim
                let o = s.att.pointer + b * T * qDim, dO = dAtt + b * T * qDim
                let dQ = dq.pointer + b * T * qDim, dK = dk.pointer + b * T * kvDim, dV = dv.pointer + b * T * kvDim
                for h in 0..<H {
                    let kvh = h / group
                    let lse = s.lse.pointer + (b * H + h) * T
                    BLAS.sgemm(transB: true, m: T, n: T, k: E, alpha: scale, a: q + h * E, lda: qDim,
                               b: k + kvh * E, ldb: kvDim, c: P, ldc: T)
                    BLAS.sgemm(transB: true, m: T, n: T, k: E, a: dO + h * E, lda: qDim,
                               b: v + kvh * E, ldb: kvDim, c: dS, ldc: T)
                    // Rows are independent: many are split over the pool (the same bits whatever the split).
                    Activations.forEachRowChunk(T, width: T) { part in
                        for i in part {
                            let pr = P + i * T, dr = dS + i * T
                            let lo = max(Int(vs[b * T + i]), c.firstVisiblePosition(i))
                            var dsum: Float = 0
                            for e in 0..<E { dsum += dO[i * qDim + h * E + e] * o[i * qDim + h * E + e] }
                            let l = lse[i]
                            if lo > 0 { pr.update(repeating: 0, count: lo); dr.update(repeating: 0, count: lo) }
                            Activations.attentionBackwardRow(p: pr + lo, d: dr + lo, count: i + 1 - lo, lse: l, dsum: dsum)
                            if i + 1 < T {
                                (pr + i + 1).update(repeating: 0, count: T - i - 1)
                                (dr + i + 1).update(repeating: 0, count: T - i - 1)
                            }
                        }
                    }
                    BLAS.sgemm(m: T, n: E, k: T, alpha: scale, a: dS, lda: T, b: k + kvh * E, ldb: kvDim,
                               c: dQ + h * E, ldc: qDim)
                    BLAS.sgemm(transA: true, m: T, n: E, k: T, alpha: scale, a: dS, lda: T, b: q + h * E, ldb: qDim,
                               beta: 1, c: dK + kvh * E, ldc: kvDim)
                    BLAS.sgemm(transA: true, m: T, n: E, k: T, a: P, lda: T, b: dO + h * E, ldb: qDim,
                               beta: 1, c: dV + kvh * E, ldc: kvDim)
                }
            }
        }
    }
}
