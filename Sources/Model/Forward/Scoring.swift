import Foundation
import Kernels

/// Negative log-likelihood of a sequence's scored tokens.
public struct SequenceNLL: Sendable, Equatable {
    /// Sum over scored tokens of -log p(token | tokens before it), in nats.
    public var sum: Double
    public var count: Int
    public var mean: Double { count == 0 ? .nan : sum / Double(count) }
}

extension LlamaModel {
    /// Scores `record.tokens[i]` for every i with `record.scored[i]`, from one batched forward
    /// pass. Logits are computed in chunks of rows so a long sequence never holds [T, V] at once.
    public func negativeLogLikelihood(_ record: TokenizedRecord, adapters: AdapterSet = .none) throws -> SequenceNLL {
        let T = record.tokens.count
        precondition(record.scored.count == T)
        if T == 0 { return SequenceNLL(sum: 0, count: 0) }
        let V = config.vocabSize, D = config.hiddenSize
        let cache = KVCache(config: config, capacity: T)
        let ws = Workspace()
        var hidden = FloatBuffer(count: T * D)
        let chunk = 64
        var logits = FloatBuffer(count: chunk * V)
        defer { hidden.free(); logits.free() }
        try forward(record.tokens, cache: cache, adapters: adapters, workspace: ws, hidden: hidden.pointer)
        var sum = 0.0
        var count = 0
        // Position t's logits predict token t+1.
        var start = 0
        while start < T - 1 {
            let rows = min(chunk, T - 1 - start)
            self.logits(hidden: hidden.pointer + start * D, tokens: rows, into: logits.pointer)
            for r in 0..<rows where record.scored[start + r + 1] {
                let row = logits.pointer + r * V
                let target = record.tokens[start + r + 1]
                sum += Activations.logSumExp(row, count: V) - Double(row[target])
                count += 1
            }
            start += rows
        }
        return SequenceNLL(sum: sum, count: count)
    }
}
