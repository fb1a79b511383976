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
        let run = RowsRun(model: model, rows: rows, promptTokens: shape.decodePromptTokens,
                          sets: Self.benchAdapters(model.config, rank: adapterRank, targets: adapterTargets, count: adapters))
        defer { run.free() }
        var stepSeconds: [Double] = []
        var tokens = try measure("decode_rows_tokens_per_s", unit: "tokens/s") { () -> (work: Double, seconds: Double) in
            let secs = try run.run(newTokens: shape.newTokens)
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

    /// `count` distinct LoRA adapters of rank `rank` on `targets` (B non-zero), or `[.none]` for rank 0.
    static func benchAdapters(_ c: LlamaConfig, rank: Int, targets: [LinearModule], count: Int) -> [AdapterSet] {
        rank <= 0 ? [.none] : (0..<max(1, count)).map { i in
            let a = LoRAAdapter(config: LoRAConfig(rank: rank, alpha: 2 * Float(rank), dropout: 0, targets: targets), base: c)
            a.initialize(seed: UInt64(1 + i))
            // Kaiming A and zero B would make the term zero; a small non-zero B keeps it honest work.
            var rng = SeededGenerator(seed: UInt64(100 + i))
            for j in a.parameters.indices where a.parameters[j] == 0 { a.parameters[j] = (Float(rng.nextUnitFloat()) - 0.5) * 1e-3 }
            // As served: decode rows read the fp16 copies.
            a.prepareHalfRows()
            return AdapterSet([a])
        }
    }

    /// Batched greedy decoding as `lora serve` steps it, its buffers kept across runs: each run prefills
    /// every sequence's own prompt into a fresh KV cache (untimed), then times `newTokens` steps of one
    /// `forwardBatch` over the N one-row segments, `logitsRows` and a greedy pick per row.
    final class RowsRun {
        let model: LlamaModel
        let rows: Int
        let prompts: [[Int]]
        let sets: [AdapterSet]
        let ws = Workspace()
        var hidden: FloatBuffer
        var logits: FloatBuffer

        init(model: LlamaModel, rows: Int, promptTokens: Int, sets: [AdapterSet]) {
            let c = model.config
            self.model = model; self.rows = rows; self.sets = sets
            prompts = (0..<rows).map { ModelBenchmark.tokenIds(promptTokens, vocabulary: c.vocabSize, offset: 31 * $0) }
            hidden = FloatBuffer(count: max(rows, promptTokens) * c.hiddenSize)
            logits = FloatBuffer(count: rows * c.vocabSize)
        }

        func free() { hidden.free(); logits.free() }

        /// Seconds of the `newTokens` steps.
        func run(newTokens: Int) throws -> Double {
            let c = model.config
            let V = c.vocabSize
            let caches = prompts.map { KVCache(config: c, capacity: $0.count + newTokens) }
            for s in 0..<rows {
                try model.forwardBatch([BatchSegment(tokens: prompts[s], cache: caches[s], adapters: sets[s % sets.count])],
                                       workspace: ws, hidden: hidden.pointer)
            }
            var segments = (0..<rows).map { BatchSegment(tokens: [prompts[$0].last!], cache: caches[$0], adapters: sets[$0 % sets.count]) }
            return try ModelBenchmark.seconds {
                for _ in 0..<newTokens {
                    try model.forwardBatch(segments, workspace: ws, hidden: hidden.pointer)
                    model.logitsRows(hidden: hidden.pointer, rows: rows, into: logits.pointer)
                    for s in 0..<rows {   // greedy, first maximum
                        let row = logits.pointer + s * V
                        var best = 0
                        for v in 1..<V where row[v] > row[best] { best = v }
                        segments[s].tokens[0] = best
                    }
                }
            }
        }
    }
}
