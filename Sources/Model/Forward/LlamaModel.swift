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
    /// [T, D] in `hidden`. T > 1: every matrix product covers all T tokens at once (sgemm);
    /// T == 1: the one-row kernels (fused GEMV for quantized weights). This is `forwardBatch` with
    /// one segment, so a sequence computes the same bits here and in a serving batch.
    ///
    /// - Parameters:
    ///   - tokens: the T new token ids.
    ///   - adapters: the adapter set of this sequence (`.none` for the base model).
    public func forward(_ tokens: [Int], cache: KVCache, adapters: AdapterSet, workspace ws: Workspace,
                        hidden: UnsafeMutablePointer<Float>) throws {
        if tokens.isEmpty { return }
        try forwardBatch([BatchSegment(tokens: tokens, cache: cache, adapters: adapters)], workspace: ws, hidden: hidden)
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
