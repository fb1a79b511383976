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

extension TrainingSettings {
    /// Bytes a training run with these settings may need at most on a base of shape `c` whose
    /// weights take `bytesPerWeight` bytes each in memory (4 for fp32, about 1 for the 4- and
    /// 8-bit formats with their scales, embeddings and head counted at 4). What it counts, from
    /// what TrainingEngine plans for a micro-batch of N = batch * max-seq-len positions (every
    /// record at the truncation length: the largest a batch can be): the activations each layer
    /// saves for the backward (residuals, q/k/v, attention output, gate and up: 4D + 2(H*E) +
    /// 2(Hk*E) + H + 2F floats a position; one layer's worth plus each block's input with
    /// gradient checkpointing), the backward's scratch, the LoRA factors with their gradients and
    /// AdamW's two moments (four floats a parameter, twice for the checkpoint being written), the
    /// attention scores [T, T] twice, a 64-row logit chunk, and a fixed 512 MiB for the runtime,
    /// BLAS buffers, tokenizer and data.
    public func estimatedMemory(for c: LlamaConfig, bytesPerWeight: Double) -> Int {
        let D = Double(c.hiddenSize), F = Double(c.intermediateSize), L = Double(c.numLayers), V = Double(c.vocabSize)
        let q = Double(c.qDim), kv = Double(c.kvDim), H = Double(c.numHeads)
        let T = Double(maxSequenceLength), N = Double(batchSize) * T
        let blockWeights = L * (D * (q + 2 * kv) + q * D + 3 * D * F)
        let embeddings = V * D * (c.tieWordEmbeddings ? 1 : 2)
        let base = blockWeights * bytesPerWeight + embeddings * 4
        let savedPerPosition = 4 * D + 2 * q + 2 * kv + H + 2 * F
        let saved = gradientCheckpointing ? N * (savedPerPosition + L * D) : N * savedPerPosition * L
        var loraParameters = 0.0, maxK = 1.0, maxR = 1.0, ranks = 0.0
        for module in lora.targets {
            let (n, k) = LoRAAdapter.shape(of: module, c)
            for layer in 0..<c.numLayers {
                let r = Double(lora.rank(layer: layer, module: module))
                loraParameters += r * Double(n + k)
                ranks += r
                maxK = max(maxK, Double(k)); maxR = max(maxR, r)
            }
        }
        let lora = loraParameters * 4 * 2 + N * ranks + N * maxK / 32 * Double(self.lora.targets.count * c.numLayers)  // dropout keep-mask bits
        let scratch = N * (4 * D + max(D, F, q) + q + 2 * kv + 3 * F + maxK + maxR) + 2 * T * T + 64 * V
        let floats = saved + lora + scratch
        let total = base + floats * 4 + Double(512 << 20)
        return total >= Double(Int.max) ? Int.max : Int(total.rounded(.up))
    }
}
