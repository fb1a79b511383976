import Foundation
import Kernels
import Model
import Training

extension ModelBenchmark {
    /// Batched decode (`lora bench decode --rows N [--adapter-rank R]`): N sequences, each after its own
    /// `decodePromptTokens` prompt (untimed), decoded together for `newTokens` steps the way `lora serve`
    /// runs a step: one `forwardBatch` of N one-row segments, `logitsRows`, a greedy pick per row. With
    /// an adapter rank R > 0 every row carries a LoRA adapter of rank R on `adapterTargets` (B non-zero,
    /// so its low-rank term is real work); `adapters` distinct ones are dealt to the rows in turn.
    /// Figures: tokens/s over all rows, and milliseconds per step.
    public func decodeRows(rows: Int, adapterRank: Int, adapterTargets: [LinearModule], adapters: Int = 1) throws -> [Figure] {
        let c = model.config
        let sets: [AdapterSet] = adapterRank <= 0 ? [.none] : (0..<max(1, adapters)).map { i in
            let a = LoRAAdapter(config: LoRAConfig(rank: adapterRank, alpha: 2 * Float(adapterRank), dropout: 0,
                                                   targets: adapterTargets), base: c)
            a.initialize(seed: UInt64(1 + i))
            // Kaiming A and zero B would make the term zero; a small non-zero B keeps it honest work.
            var rng = SeededGenerator(seed: UInt64(100 + i))
            for j in a.parameters.indices where a.parameters[j] == 0 { a.parameters[j] = (Float(rng.nextUnitFloat()) - 0.5) * 1e-3 }
            return AdapterSet([a])
        }
        let ws = Workspace()
        let D = c.hiddenSize, V = c.vocabSize
        var hidden = [Float](repeating: 0, count: max(rows, shape.decodePromptTokens) * D)
        var logits = [Float](repeating: 0, count: rows * V)
        var stepSeconds: [Double] = []
        var tokens = try measure("decode_rows_tokens_per_s", unit: "tokens/s") { () -> (work: Double, seconds: Double) in
            let caches = (0..<rows).map { _ in KVCache(config: c, capacity: shape.decodePromptTokens + shape.newTokens) }
            var next = [Int](repeating: 0, count: rows)
            for s in 0..<rows {
                let prompt = Self.tokenIds(shape.decodePromptTokens, vocabulary: V, offset: 31 * s)
                try hidden.withUnsafeMutableBufferPointer { h in
                    try model.forwardBatch([BatchSegment(tokens: prompt, cache: caches[s], adapters: sets[s % sets.count])],
                                           workspace: ws, hidden: h.baseAddress!)
                }
                next[s] = prompt.last!
            }
            var segments = (0..<rows).map { BatchSegment(tokens: [next[$0]], cache: caches[$0], adapters: sets[$0 % sets.count]) }
            let secs = try Self.seconds {
                try hidden.withUnsafeMutableBufferPointer { h in
                    try logits.withUnsafeMutableBufferPointer { o in
                        for _ in 0..<shape.newTokens {
                            try model.forwardBatch(segments, workspace: ws, hidden: h.baseAddress!)
                            model.logitsRows(hidden: h.baseAddress!, rows: rows, into: o.baseAddress!)
                            for s in 0..<rows {   // greedy, first maximum
                                let row = o.baseAddress! + s * V
                                var best = 0
                                for v in 1..<V where row[v] > row[best] { best = v }
                                segments[s].tokens[0] = best
                            }
                        }
                    }
                }
            }
            stepSeconds.append(secs / Double(shape.newTokens))
            return (Double(rows * shape.newTokens), secs)
        }
        tokens.boundBytesPerToken = weightBytesPerToken / Double(rows)
        let timed = Array(stepSeconds.suffix(max(1, repetitions))).map { $0 * 1e3 }
        let sorted = timed.sorted()
        let mid = sorted.count / 2
        let median = sorted.count % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
        return [tokens, Figure(name: "decode_rows_step_ms", unit: "ms", median: median, samples: timed)]
    }
}
