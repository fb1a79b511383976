import Foundation
import Kernels
import Model

extension TrainingEngine {
    /// The forward pass over N = B*T positions, saving what the backward needs.
    func forward(_ batch: MicroBatch, dropoutSeed: UInt64, training: Bool) {
        let c = model.config
        let N = batch.count, D = c.hiddenSize
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
    /// activations into `s`: the model's own block forward (the one inference runs), with this
    /// engine's adapter as the rows' `LinearDelta`. Deterministic: the backward may call it again
    /// to recompute them (same dropout masks, from the same seed).
    func layerForward(_ l: Int, _ batch: MicroBatch, _ s: BlockActivations, x: UnsafeMutablePointer<Float>,
                      dropoutSeed: UInt64, training: Bool) {
        delta.dropoutSeed = dropoutSeed
        delta.training = training
        model.blockForward(l, rows: rows, x: x, workspace: ws, saving: s)
    }

    /// The adapter's part of a linear layer on the micro-batch's N rows (called by the block
    /// forward after the frozen product): Y += s · h · Bᵀ with h = dropout(X) · Aᵀ saved for the
    /// backward, and the dropout mask drawn from the micro-batch's seed.
    @inline(__always)
    func loraForward(_ m: LinearModule, _ layer: Int, _ xIn: UnsafePointer<Float>, _ N: Int,
                     _ y: UnsafeMutablePointer<Float>, _ seed: UInt64, _ training: Bool) {
        guard let pi = adapter.pairIndex(layer: layer, module: m) else { return }
        precondition(N == plannedN, "the adapter's rows are the planned micro-batch")
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

    /// Keep-mask bits for one pair's dropout (`DropoutMask`: a counter-based hash, 8 elements per vector),
    /// keyed by (seed, pair) so that a resumed run redraws the same masks.
    func makeDropoutMask(pair: Int, count: Int, seed: UInt64) {
        let words = (count + 63) / 64
        if loraMask[pair].count < words { loraMask[pair] = [UInt64](repeating: 0, count: words) }
        var keys = SeededGenerator(seed: seed &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(pair) &* 0xD1B5_4A32_D192_ED03)
        let key = keys.next()
        loraMask[pair].withUnsafeMutableBufferPointer { bits in
            DropoutMask.fill(bits.baseAddress!, count: count, key: key, dropout: adapter.config.dropout)
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
            // Rows split over the pool; each row's NLL lands in `rowLoss` and is summed below in row
            // order, so the sum's bits do not depend on the split.
            let nll = rowLoss
            batch.targets.withUnsafeBufferPointer { targets in
                Activations.forEachRowChunk(rows, width: V) { part in
                    for r in part {
                        let row = logits + r * V
                        let target = Int(targets[start + r])
                        if target < 0 {
                            row.update(repeating: 0, count: V)
                            continue
                        }
                        let lse = Activations.logSumExp(row, count: V)
                        nll[r] = lse - Double(row[target])
                        if wantGradient {
                            // d(-log softmax[target])/dlogit = softmax - onehot, scaled.
                            let l = Float(lse)
                            Activations.expScaled(row, count: V, subtract: l, scale: lossScale)
                            row[target] -= lossScale
                        }
                    }
                }
            }
            for r in 0..<rows where batch.targets[start + r] >= 0 {
                sum += nll[r]
                scored += 1
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

/// A training engine's adapter as a `LinearDelta`: what the shared block forward calls on the
/// micro-batch's rows, so training and inference apply adapters the same way (row ranges through
/// `LinearDelta.apply`). Unlike `LoRAAdapter.apply` it keeps h and the dropout masks for the backward.
final class TrainingDelta: LinearDelta, @unchecked Sendable {
    unowned let engine: TrainingEngine
    var dropoutSeed: UInt64 = 0
    var training = false

    init(engine: TrainingEngine) { self.engine = engine }

    func apply(layer: Int, module: LinearModule, x: UnsafePointer<Float>, tokens: Int, y: UnsafeMutablePointer<Float>) {
        engine.loraForward(module, layer, x, tokens, y, dropoutSeed, training)
    }
}
