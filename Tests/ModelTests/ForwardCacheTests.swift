import Kernels
import Model
import TestSupport
import XCTest

final class ForwardCacheTests: XCTestCase {
    /// Cached decoding (T = 1 products) and full recomputation (sgemm over all T) differ only in
    /// summation order: the fixture-model forward bound, relative to the logits' scale.
    static let cacheTolerance = FP32.tinyModelForward

    func testIncrementalDecodingFromTheCacheEqualsFullRecomputation() throws {
        for (heads, kv, e) in [(4, 2, 8), (6, 2, 12), (4, 4, 8)] {
            let model = RandomModel.make(heads: heads, kvHeads: kv, headDim: e, tied: heads != 6)
            let tokens = [3, 17, 42, 8, 8, 29, 11, 0, 49]
            let full = try model.logits(for: tokens)
            let V = model.config.vocabSize, D = model.config.hiddenSize
            let cache = KVCache(config: model.config, capacity: tokens.count)
            let ws = Workspace()
            var hidden = [Float](repeating: 0, count: 4 * D)
            var logits = [Float](repeating: 0, count: V)
            // A 4-token prefill, then one token at a time.
            var pos = 0
            for step in [4, 1, 1, 1, 1, 1] {
                let chunk = Array(tokens[pos..<(pos + step)])
                try hidden.withUnsafeMutableBufferPointer { h in
                    try model.forward(chunk, cache: cache, adapters: .none, workspace: ws, hidden: h.baseAddress!)
                    logits.withUnsafeMutableBufferPointer { model.logits(hidden: h.baseAddress! + (step - 1) * D, tokens: 1, into: $0.baseAddress!) }
                }
                pos += step
                let ref = full[((pos - 1) * V)..<(pos * V)]
                XCTAssertLessThanOrEqual(scaledMaxError(logits, Array(ref)), Self.cacheTolerance, "heads \(heads)/\(kv) position \(pos - 1)")
            }
            XCTAssertEqual(cache.count, tokens.count)
        }
    }

    /// A chunk longer than attention's row block (several blocks, each against only the keys its last
    /// row sees) and large enough to spread its (head, block) tasks over the pool, after earlier keys in
    /// the cache: every row's logits equal row-by-row decoding (the one-row path) within the forward
    /// bound, with attention's inner dimension the 210 keys. With 1 and 3 threads.
    func testALongChunkAttendsInBlocksAsRowByRowDecodingDoes() throws {
        let model = RandomModel.make(seed: 5, maxPositions: 256)
        let c = model.config
        let V = c.vocabSize, D = c.hiddenSize
        let tokens = (0..<210).map { ($0 * 7 + 3) % V }
        let past = 20   // keys already cached before the long chunk
        let n = tokens.count - past
        XCTAssertGreaterThan(n, 2 * LlamaModel.attentionBlockRows)
        XCTAssertGreaterThanOrEqual(c.numHeads * n * tokens.count * c.headDim, LlamaModel.attentionParallelMACs)
        let tolerance = FP32.chain(products: 16, innerDimension: tokens.count)
        // Row by row: one-token forwards from the cache.
        var stepwise = [Float](repeating: 0, count: tokens.count * V)
        do {
            let cache = KVCache(config: c, capacity: tokens.count)
            let ws = Workspace()
            var h = [Float](repeating: 0, count: D)
            for (i, t) in tokens.enumerated() {
                try h.withUnsafeMutableBufferPointer { hb in
                    try model.forward([t], cache: cache, adapters: .none, workspace: ws, hidden: hb.baseAddress!)
                    stepwise.withUnsafeMutableBufferPointer { model.logits(hidden: hb.baseAddress!, tokens: 1, into: $0.baseAddress! + i * V) }
                }
            }
        }
        for threads in [1, 3] {
            try ComputeContext.run(ComputeContext(threads: threads)) {
                let cache = KVCache(config: c, capacity: tokens.count)
                let ws = Workspace()
                var h = [Float](repeating: 0, count: tokens.count * D)
                var logits = [Float](repeating: 0, count: n * V)
                try h.withUnsafeMutableBufferPointer { hb in
                    try model.forward(Array(tokens[..<past]), cache: cache, adapters: .none, workspace: ws, hidden: hb.baseAddress!)
                    try model.forward(Array(tokens[past...]), cache: cache, adapters: .none, workspace: ws, hidden: hb.baseAddress!)
                    logits.withUnsafeMutableBufferPointer { model.logits(hidden: hb.baseAddress!, tokens: n, into: $0.baseAddress!) }
                }
                for r in stride(from: 0, to: n, by: 7) + [n - 1] {
                    let got = Array(logits[(r * V)..<((r + 1) * V)])
                    let ref = Array(stepwise[((past + r) * V)..<((past + r + 1) * V)])
                    XCTAssertLessThanOrEqual(scaledMaxError(got, ref), tolerance, "threads \(threads) row \(past + r)")
                }
            }
        }
    }

    /// A workspace keeps the rotary table of its last call: a call at other positions (or on a model
    /// with other frequencies) must compute its own, so a reused workspace gives a fresh one's bits.
    func testAReusedWorkspaceComputesTheSameBitsAsAFreshOne() throws {
        let model = RandomModel.make(seed: 3)
        var scaled = model.config
        scaled.ropeTheta = 500
        let other = LlamaModel(config: scaled, weights: model.weights)
        XCTAssertNotEqual(model.rope.invFreq, other.rope.invFreq)
        let D = model.config.hiddenSize
        func run(_ m: LlamaModel, _ chunks: [[Int]], workspace: (Int) -> Workspace) throws -> [[Float]] {
            let cache = KVCache(config: m.config, capacity: 16)
            return try chunks.enumerated().map { i, chunk in
                var h = [Float](repeating: 0, count: chunk.count * D)
                try h.withUnsafeMutableBufferPointer {
                    try m.forward(chunk, cache: cache, adapters: .none, workspace: workspace(i), hidden: $0.baseAddress!)
                }
                return h
            }
        }
        let chunks = [[3, 17, 42, 8], [8, 29, 11], [5], [5]]
        let shared = Workspace()
        for m in [model, other, model] {
            let reused = try run(m, chunks) { _ in shared }
            let fresh = try run(m, chunks) { _ in Workspace() }
            XCTAssertEqual(reused.map { $0.map(\.bitPattern) }, fresh.map { $0.map(\.bitPattern) })
        }
    }

    func testForwardRefusesTokensOutsideTheVocabularyAndCacheOverflow() throws {
        let model = RandomModel.make()
        XCTAssertThrowsError(try model.logits(for: [1, 50])) { XCTAssertTrue("\($0)".contains("token id 50")) }
        let cache = KVCache(config: model.config, capacity: 2)
        var h = [Float](repeating: 0, count: 3 * model.config.hiddenSize)
        XCTAssertThrowsError(try h.withUnsafeMutableBufferPointer {
            try model.forward([1, 2, 3], cache: cache, adapters: .none, workspace: Workspace(), hidden: $0.baseAddress!)
        })
    }

    func testGreedyGenerationEqualsArgmaxOfFullRecomputationAtEveryStep() throws {
        let model = RandomModel.make(seed: 11)
        let prompt = [5, 9, 2]
        let result = try model.generate(GenerationRequest(prompt: prompt, maxTokens: 8, eosTokenIds: []),
                                        decode: { $0.map(String.init).joined(separator: " ") })
        XCTAssertEqual(result.tokens.count, 8)
        XCTAssertEqual(result.finishReason, .length)
        var seq = prompt
        let V = model.config.vocabSize
        for tok in result.tokens {
            let logits = try model.logits(for: seq)
            let last = Array(logits[((seq.count - 1) * V)...])
            let best = last.indices.max { last[$0] < last[$1] || (last[$0] == last[$1] && $0 > $1) }!
            XCTAssertEqual(tok, best)
            seq.append(tok)
        }
    }

    func testGenerationStopsOnEOSAndOnStopStrings() throws {
        let model = RandomModel.make(seed: 11)
        let free = try model.generate(GenerationRequest(prompt: [5, 9, 2], maxTokens: 6, eosTokenIds: []), decode: { $0.map(String.init).joined(separator: ",") })
        // Make the third generated token an EOS: generation stops before it.
        let eos = free.tokens[2]
        let stopped = try model.generate(GenerationRequest(prompt: [5, 9, 2], maxTokens: 6, eosTokenIds: [eos]), decode: { $0.map(String.init).joined(separator: ",") })
        XCTAssertEqual(stopped.finishReason, .stop)
        XCTAssertEqual(stopped.tokens, Array(free.tokens.prefix(while: { $0 != eos })))
        // A stop string cuts the text before it.
        let text = free.text
        let stopAt = String(free.tokens[1])
        let cut = try model.generate(GenerationRequest(prompt: [5, 9, 2], maxTokens: 6, stopStrings: ["," + stopAt], eosTokenIds: []),
                                     decode: { $0.map(String.init).joined(separator: ",") })
        XCTAssertEqual(cut.finishReason, .stop)
        XCTAssertEqual(cut.text, String(text[..<text.range(of: "," + stopAt)!.lowerBound]))
    }

    func testSamplingIsReproducibleForASeedAndTopKOneIsGreedy() throws {
        let model = RandomModel.make(seed: 12)
        let decode: ([Int]) -> String = { $0.map(String.init).joined(separator: " ") }
        let sampled = SamplingParameters(temperature: 1.3, topK: 20, topP: 0.9, seed: 42)
        let a = try model.generate(GenerationRequest(prompt: [1, 2], maxTokens: 10, sampling: sampled, eosTokenIds: []), decode: decode)
        let b = try model.generate(GenerationRequest(prompt: [1, 2], maxTokens: 10, sampling: sampled, eosTokenIds: []), decode: decode)
        XCTAssertEqual(a.tokens, b.tokens)
        let greedy = try model.generate(GenerationRequest(prompt: [1, 2], maxTokens: 10, eosTokenIds: []), decode: decode)
        let topK1 = try model.generate(GenerationRequest(prompt: [1, 2], maxTokens: 10,
                                                         sampling: SamplingParameters(temperature: 0.7, topK: 1, seed: 3), eosTokenIds: []), decode: decode)
        XCTAssertEqual(topK1.tokens, greedy.tokens)
        let seeds = try (0..<6).map { s in
            try model.generate(GenerationRequest(prompt: [1, 2], maxTokens: 10, sampling: SamplingParameters(temperature: 2, seed: UInt64(s)), eosTokenIds: []), decode: decode).tokens
        }
        XCTAssertGreaterThan(Set(seeds.map { $0.description }).count, 1, "different seeds should give different samples at temperature 2")
    }

    func testTopPKeepsTheSmallestPrefixReachingP() {
        // probabilities ~ [0.5, 0.3, 0.2] for logits log(5), log(3), log(2)
        let logits: [Float] = [log(3), log(5), log(2)]
        var counts = [0, 0, 0]
        var sampler = Sampler(SamplingParameters(temperature: 1, topP: 0.75, seed: 9))
        for _ in 0..<2000 { counts[logits.withUnsafeBufferPointer { sampler.sample($0.baseAddress!, count: 3) }] += 1 }
        // top_p 0.75: keep {id1: .5, id0: .3} (cumulative .8 >= .75), drop id2.
        XCTAssertEqual(counts[2], 0)
        XCTAssertEqual(Double(counts[1]) / 2000, 0.625, accuracy: 0.04)
    }
}
