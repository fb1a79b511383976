import Foundation
import Kernels
import Model

/// Forward and backward of a LoRA adapter over a frozen base, on whole micro-batches.
///
/// Gradients exist only for the adapter's parameters (`gradients`, same layout as
/// `LoRAAdapter.parameters`); frozen weights get none. `accumulate(_:lossScale:step:)` adds
/// one micro-batch's gradient; zeroing is explicit (`zeroGradients()`).
public final class TrainingEngine {
    public let model: LlamaModel
    public let adapter: LoRAAdapter
    public var gradients: [Float]

    /// Activations saved by the forward for the backward, per layer (one, recomputed per layer,
    /// with gradient checkpointing).
    var saved: [BlockActivations]
    /// Scratch of the shared block forward (attention scores, silu(gate) ⊙ up), reused by the backward.
    let ws = Workspace()
    /// The adapter as the block forward applies it (saving h and dropout masks for the backward).
    var delta: TrainingDelta!
    /// The planned micro-batch's rows (`plan`).
    var rows: BlockRows!
    /// Per LoRA pair: h = dropout(x) · Aᵀ [N, R], and the dropout keep-mask bits [N*K] when dropout > 0.
    var loraH: [FloatBuffer]
    var loraMask: [[UInt64]]
    var plannedN = 0

    // Scratch (not saved across layers).
    var x = FloatBuffer(count: 0)        // [N, D] residual stream
    var dx = FloatBuffer(count: 0)       // [N, D] gradient of the residual stream
    var dtmp = FloatBuffer(count: 0)     // [N, max(D, F, H*E)] gradient of a sublayer input
    var dq = FloatBuffer(count: 0)       // [N, H*E]
    var dk = FloatBuffer(count: 0)       // [N, Hk*E]
    var dv = FloatBuffer(count: 0)       // [N, Hk*E]
    var dscores = FloatBuffer(count: 0)  // [chunks, 2, min(T, attentionRowBlock), T] attention backward's P and dS blocks
    var dropScratch = FloatBuffer(count: 0)  // [N, max K]
    var dh = FloatBuffer(count: 0)       // [N, max R]
    var logitChunk = FloatBuffer(count: 0)   // [chunk, V]
    /// [chunk] each logit row's NLL, summed in row order after the rows ran in parallel.
    let rowLoss = UnsafeMutablePointer<Double>.allocate(capacity: TrainingEngine.logitRows)
    var hiddenFinal = FloatBuffer(count: 0)  // [N, D]
    var recompute = FloatBuffer(count: 0)    // [N, D] residual scratch for recomputed blocks
    var normed = FloatBuffer(count: 0)       // [N, D] a block's normed input, recomputed in the backward

    /// Gradient checkpointing: keep only each block's input and recompute the block in the
    /// backward, trading one more forward for activation memory (L blocks' activations -> one).
    public let gradientCheckpointing: Bool
    /// Per layer, the block's input [N, D] (gradient checkpointing only).
    var blockInputs: [FloatBuffer] = []

    public init(model: LlamaModel, adapter: LoRAAdapter, gradientCheckpointing: Bool = false) {
        self.model = model
        self.adapter = adapter
        self.gradientCheckpointing = gradientCheckpointing
        gradients = [Float](repeating: 0, count: adapter.parameters.count)
        // Normed inputs (two cheap norms) and the attention output (one attention forward) are rebuilt
        // in the backward rather than kept per layer.
        saved = (0..<(gradientCheckpointing ? 1 : model.config.numLayers)).map { _ in
            BlockActivations(keepingNorms: false, keepingAttention: false)
        }
        if gradientCheckpointing { blockInputs = (0..<model.config.numLayers).map { _ in FloatBuffer(count: 0) } }
        loraH = adapter.pairs.map { _ in FloatBuffer(count: 0) }
        loraMask = adapter.pairs.map { _ in [] }
        delta = TrainingDelta(engine: self)
    }

    deinit {
        for b in loraH { b.free() }
        rowLoss.deallocate()
        for b in blockInputs { b.free() }
        for b in [x, dx, dtmp, dq, dk, dv, dscores, dropScratch, dh, logitChunk, hiddenFinal, recompute, normed] { b.free() }
    }

    public func zeroGradients() {
        for i in gradients.indices { gradients[i] = 0 }
    }

    /// Rows of logits [rows, V] at a time: 128 rows (25 MB at V = 49,152) amortize packing and dequantizing
    /// the LM head's tiles over twice the rows of 64, whose sgemm ran ~5% slower a flop.
    static let logitRows = 128

    func plan(_ batch: MicroBatch) {
        let c = model.config
        let n = batch.count, T = batch.length
        for s in saved { s.plan(c, rows: n) }
        rows = BlockRows.records(batch.rows, length: T, positions: batch.positions, firstKey: batch.visibleStart,
                                 adapters: AdapterSet([delta]))
        ws.plan(config: c, rows: rows, saving: true)
        for i in blockInputs.indices { blockInputs[i].reserve(n * c.hiddenSize) }
        for (i, p) in adapter.pairs.enumerated() { loraH[i].reserve(n * p.rank) }
        let wide = max(c.hiddenSize, c.intermediateSize, c.qDim)
        x.reserve(n * c.hiddenSize); dx.reserve(n * c.hiddenSize); dtmp.reserve(n * wide)
        dq.reserve(n * c.qDim); dk.reserve(n * c.kvDim); dv.reserve(n * c.kvDim)
        dscores.reserve(Self.attentionChunks(batch.rows * c.numKVHeads) * 2 * min(T, Self.attentionRowBlock) * T)
        let maxK = adapter.pairs.map(\.inFeatures).max() ?? 1
        let maxR = adapter.pairs.map(\.rank).max() ?? 1
        dropScratch.reserve(n * maxK); dh.reserve(n * maxR)
        logitChunk.reserve(Self.logitRows * c.vocabSize)
        hiddenFinal.reserve(n * c.hiddenSize)
        normed.reserve(n * c.hiddenSize)
        if gradientCheckpointing { recompute.reserve(n * c.hiddenSize) }
        plannedN = n
    }

    /// Result of one micro-batch.
    public struct MicroBatchLoss: Sendable {
        /// Σ over scored tokens of -log p(target), in nats (unscaled).
        public var sum: Double
        public var scored: Int
    }

    /// Forward and backward of one micro-batch: gradients += lossScale * ∂(Σ NLL)/∂θ.
    /// With lossScale = 1 / (scored tokens of the whole accumulated batch), accumulating every
    /// micro-batch gives the gradient of the mean loss, as transformers' Trainer normalizes it.
    /// `dropoutSeed` fixes this micro-batch's dropout masks (0 dropout ignores it).
    @discardableResult
    public func accumulate(_ batch: MicroBatch, lossScale: Float, dropoutSeed: UInt64) throws -> MicroBatchLoss {
        try validate(batch)
        plan(batch)
        forward(batch, dropoutSeed: dropoutSeed, training: true)
        let loss = lossAndHiddenGradient(batch, lossScale: lossScale)
        backward(batch, dropoutSeed: dropoutSeed)
        return loss
    }

    /// The loss alone (no gradient, no dropout): evaluation.
    public func evaluate(_ batch: MicroBatch) throws -> MicroBatchLoss {
        try validate(batch)
        plan(batch)
        forward(batch, dropoutSeed: 0, training: false)
        return lossAndHiddenGradient(batch, lossScale: 0, wantGradient: false)
    }

    func validate(_ batch: MicroBatch) throws {
        let V = model.config.vocabSize
        for t in batch.tokens where t < 0 || t >= V {
            throw TrainingError.data("token id \(t) is outside the vocabulary (0..<\(V))")
        }
        if let maxPos = batch.positions.max(), model.config.maxPositionEmbeddings > 0,
           Int(maxPos) >= model.config.maxPositionEmbeddings {
            throw TrainingError.data("a sequence of \(maxPos + 1) tokens is longer than the model's context of \(model.config.maxPositionEmbeddings)")
        }
    }
}
