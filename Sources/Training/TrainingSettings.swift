/// Every hyperparameter of a run. Defaults follow QLoRA practice (issue 5): rank 16, alpha 32,
/// dropout 0.05, all linear layers, lr 2e-4, cosine with 3% warmup, max grad norm 1.0, weight
/// decay 0, batch size 4, accumulation 1, max sequence length 1024, 1 epoch.
public struct TrainingSettings: Codable, Sendable, Equatable {
    public var lora = LoRAConfig()
    public var learningRate: Float = 2e-4
    public var epochs: Int = 1
    /// When set, training stops after this many optimizer steps (epochs repeat as needed).
    public var maxSteps: Int?
    public var batchSize: Int = 4
    public var gradientAccumulation: Int = 1
    public var maxSequenceLength: Int = 1024
    public var scheduler: LRScheduler = .cosine
    public var warmupSteps: Int?
    public var warmupRatio: Float? = 0.03
    public var weightDecay: Float = 0
    public var maxGradNorm: Float? = 1.0
    public var seed: UInt64 = 42
    public var shuffle = true
    /// Evaluate every N optimizer steps (and at the end) when eval data is given.
    public var evalEvery: Int?
    /// Concatenate records into rows of up to maxSequenceLength tokens, attention kept within each record.
    public var packing = false
    /// Recompute each block in the backward instead of keeping its activations.
    public var gradientCheckpointing = false
    /// Optimizer steps whose loss or gradient norm is NaN or infinite that are skipped (no update,
    /// gradients dropped) before training stops with an error; nil means 0. Optional so settings
    /// stored before it existed (jobs, checkpoints) still decode.
    public var maxBadSteps: Int?

    public init() {}

    public func validate() throws {
        try lora.validate()
        if !(learningRate > 0) { throw TrainingError.invalidConfig(field: "lr", reason: "must be > 0, got \(learningRate)") }
        if epochs < 1 { throw TrainingError.invalidConfig(field: "epochs", reason: "must be >= 1, got \(epochs)") }
        if let s = maxSteps, s < 1 { throw TrainingError.invalidConfig(field: "max-steps", reason: "must be >= 1, got \(s)") }
        if batchSize < 1 { throw TrainingError.invalidConfig(field: "batch-size", reason: "must be >= 1, got \(batchSize)") }
        if gradientAccumulation < 1 { throw TrainingError.invalidConfig(field: "grad-accum", reason: "must be >= 1, got \(gradientAccumulation)") }
        if maxSequenceLength < 2 { throw TrainingError.invalidConfig(field: "max-seq-len", reason: "must be >= 2, got \(maxSequenceLength)") }
        if let w = warmupSteps, w < 0 { throw TrainingError.invalidConfig(field: "warmup-steps", reason: "must be >= 0, got \(w)") }
        if let r = warmupRatio, !(r >= 0 && r < 1) { throw TrainingError.invalidConfig(field: "warmup-ratio", reason: "must be in [0, 1), got \(r)") }
        if weightDecay < 0 { throw TrainingError.invalidConfig(field: "weight-decay", reason: "must be >= 0, got \(weightDecay)") }
        if let g = maxGradNorm, g < 0 { throw TrainingError.invalidConfig(field: "max-grad-norm", reason: "must be >= 0, got \(g)") }
        if let b = maxBadSteps, b < 0 { throw TrainingError.invalidConfig(field: "max-bad-steps", reason: "must be >= 0, got \(b)") }
        if let e = evalEvery, e < 1 { throw TrainingError.invalidConfig(field: "eval-every", reason: "must be >= 1, got \(e)") }
    }
}
