import Foundation
import Kernels
import Model

extension ModelBenchmark {
    /// Allocations per decoded token (`lora bench decode --count-allocations`), counted by the preloaded
    /// `AllocationCounter`: a whole run of N new tokens (fresh KV cache, prompt, N steps) and one of 2N,
    /// after an uncounted warm-up run; the difference over N is what each token costs, the fixed costs
    /// of a run (the cache, the prompt) cancelling. Each figure's `samples` are the two runs' counts
    /// and its `median` the per-token (per-step) difference, which is zero when decoding allocates nothing.
    /// - Batch 1: the `decode` loop (`forward`, `logits`, greedy `Sampler`), and `LlamaModel.generate`
    ///   (no stop strings, no end-of-sequence token) greedy and sampling (temperature 0.8, top-k 50,
    ///   top-p 0.9, seeded).
    /// - `rows` N: `decodeRows`' steps (one `forwardBatch` over N one-row segments, `logitsRows`), with
    ///   `adapters` distinct adapters of rank `adapterRank` dealt to the rows.
    public func allocationsPerToken(_ counter: AllocationCounter, rows: Int?, adapterRank: Int = 0,
                                    adapterTargets: [LinearModule] = LinearModule.allCases, adapters: Int = 1) throws -> [Figure] {
        let n = shape.newTokens
        func figure(_ name: String, unit: String, per: Int = 1, _ body: (Int) throws -> Void) throws -> Figure {
            try body(n)   // warm-up: first-use set-up (the pool, kernels' tables, workspace growth)
            let once = try counter.allocations { try body(n) }
            let twice = try counter.allocations { try body(2 * n) }
            let diff = Double(Int(twice) - Int(once)) / Double(n * per)
            return Figure(name: name, unit: unit, median: diff, samples: [Double(once), Double(twice)])
        }
        if let rows {
            let run = RowsRun(model: model, rows: rows, promptTokens: shape.decodePromptTokens,
                              sets: Self.benchAdapters(model.config, rank: adapterRank, targets: adapterTargets, count: adapters))
            defer { run.free() }
            return [try figure("decode_rows_allocations_per_step", unit: "allocations/step") { _ = try run.run(newTokens: $0) }]
        }
        let run = DecodeRun(model: model, promptTokens: shape.decodePromptTokens)
        defer { run.free() }
        let decode = try figure("decode_allocations_per_token", unit: "allocations/token") { _ = try run.run(newTokens: $0) }
        let prompt = Self.tokenIds(shape.decodePromptTokens, vocabulary: model.config.vocabSize)
        func generate(_ name: String, _ sampling: SamplingParameters) throws -> Figure {
            try figure(name, unit: "allocations/token") { tokens in
                let r = try model.generate(GenerationRequest(prompt: prompt, maxTokens: tokens, sampling: sampling, eosTokenIds: []),
                                           decode: { _ in "" })
                guard r.tokens.count == tokens else {
                    throw ModelError.invalidArgument("generate stopped after \(r.tokens.count) of \(tokens) tokens")
                }
            }
        }
        return [decode, try generate("generate_allocations_per_token", .greedy),
                try generate("generate_sampled_allocations_per_token", SamplingParameters(temperature: 0.8, topK: 50, topP: 0.9, seed: 7))]
    }
}
