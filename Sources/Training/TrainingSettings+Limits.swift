import Model

/// Settings checked against the base model they will train on, so an absurd job (`--rank 100000000`)
/// is refused when it is submitted, naming the flag, instead of exhausting a worker's memory.
extension TrainingSettings {
    /// Sane maxima independent of the model: far above any real fine-tune (QLoRA uses batch 1-64,
    /// accumulation up to a few hundred, a handful of epochs) and far below what overflows a counter.
    public static let maxBatchSize = 4096
    public static let maxGradientAccumulation = 65_536
    public static let maxEpochs = 100_000
    public static let maxOptimizerSteps = 100_000_000

    /// Checks the settings against the base model's shape: every module's rank within the module's
    /// dimensions (a LoRA pair of rank above min(in, out) cannot add expressiveness), the sequence
    /// length within the model's context, and the model-independent maxima. Errors name the flag and value.
    public func validate(for c: LlamaConfig) throws {
        try validate()
        func refuse(_ field: String, _ reason: String) -> TrainingError { .invalidConfig(field: field, reason: reason) }
        if !learningRate.isFinite { throw refuse("lr", "must be finite, got \(learningRate)") }
        if batchSize > Self.maxBatchSize { throw refuse("batch-size", "\(batchSize) is over the maximum of \(Self.maxBatchSize)") }
        if gradientAccumulation > Self.maxGradientAccumulation {
            throw refuse("grad-accum", "\(gradientAccumulation) is over the maximum of \(Self.maxGradientAccumulation)")
        }
        if epochs > Self.maxEpochs { throw refuse("epochs", "\(epochs) is over the maximum of \(Self.maxEpochs)") }
        if let s = maxSteps, s > Self.maxOptimizerSteps { throw refuse("max-steps", "\(s) is over the maximum of \(Self.maxOptimizerSteps)") }
        // The default (1024) stays accepted on small-context models: it is only a truncation length, and
        // a record longer than the context is still refused when the data is tokenized.
        let contextLimit = max(c.maxPositionEmbeddings, TrainingSettings().maxSequenceLength)
        if c.maxPositionEmbeddings > 0, maxSequenceLength > contextLimit {
            throw refuse("max-seq-len", "\(maxSequenceLength) is longer than the base model's context of \(c.maxPositionEmbeddings) tokens")
        }
        for module in lora.targets {
            let (n, k) = LoRAAdapter.shape(of: module, c)
            let limit = min(n, k)
            for layer in 0..<c.numLayers {
                let r = lora.rank(layer: layer, module: module)
                guard r > limit else { continue }
                let field = r == lora.rank ? "rank" : "rank_pattern"
                throw refuse(field, "\(r) is larger than \(module.rawValue)'s dimensions [\(n), \(k)] allow (at most \(limit)) "
                    + "in the base model")
            }
        }
    }
}
