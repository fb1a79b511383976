import Foundation
import Kernels
import Model
import Quantization
import Service
import TestSupport
import Training
import XCTest

/// Prompt-lookup speculation on the default model (Q4_1): verification rows are the bits of lone
/// decode steps, a speculating sequence changes no neighbour's bits, and `generate` with drafts
/// produces exactly the tokens it produces without, greedy or seeded, adapter or not.
final class SpeculativeDecodingTests: XCTestCase {
    /// A prompt whose continuation copies from it (drafts are accepted), and one that does not.
    static let copyPrompt = """
        Repeat the sentence exactly.
        Sentence: Order 4471 ships twelve blue lamps to Rotterdam on Friday, then nine chairs to Oslo.
        Repeat: Order 4471 ships
        """
    static let freePrompt = "The capital of France is"

    func bits(_ a: [Float]) -> [UInt32] { a.map(\.bitPattern) }

    /// Logits of `tokens` fed one at a time after `prompt` (prefilled as one chunk): plain decoding.
    func loneDecodeLogits(_ m: LlamaModel, prompt: [Int], tokens: [Int], adapters: AdapterSet) throws -> [[Float]] {
        let V = m.config.vocabSize, D = m.config.hiddenSize
        let cache = KVCache(config: m.config, capacity: prompt.count + tokens.count)
        let ws = Workspace()
        var hidden = [Float](repeating: 0, count: prompt.count * D)
        var out: [[Float]] = []
        try hidden.withUnsafeMutableBufferPointer { h in
            try m.forward(prompt, cache: cache, adapters: adapters, workspace: ws, hidden: h.baseAddress!)
            for t in tokens {
                try m.forward([t], cache: cache, adapters: adapters, workspace: ws, hidden: h.baseAddress!)
                var row = [Float](repeating: 0, count: V)
                row.withUnsafeMutableBufferPointer { m.logits(hidden: h.baseAddress!, tokens: 1, into: $0.baseAddress!) }
                out.append(row)
            }
        }
        return out
    }

    /// Logits[n, V] of rows through `logitsRows`.
    func rowLogits(_ m: LlamaModel, _ hidden: UnsafePointer<Float>, rows: Int) -> [[Float]] {
        let V = m.config.vocabSize
        var all = [Float](repeating: 0, count: rows * V)
        all.withUnsafeMutableBufferPointer { m.logitsRows(hidden: hidden, rows: rows, into: $0.baseAddress!) }
        return (0..<rows).map { Array(all[($0 * V)..<(($0 + 1) * V)]) }
    }

    /// The same with fp32 decode activations everywhere (`LORA_DECODE_ACTIVATIONS=f32`; the test below runs
    /// under the default, int8 in the layers and two-digit for the head where the CPU has AVX2).
    func testVerificationRowsAreBitIdenticalToLoneDecodeStepsWithFP32Activations() throws {
        try withDecodeActivations(.f32) { try testVerificationRowsAreBitIdenticalToLoneDecodeStepsAndRollBackCleanly() }
    }

    /// The same with int8 activations in the layers and fp32 ones for the head (`LORA_DECODE_ACTIVATIONS=q8-f32head`;
    /// the default gives the head two-digit inputs).
    func testVerificationRowsAreBitIdenticalToLoneDecodeStepsWithAnFP32Head() throws {
        try withDecodeActivations(.q8F32Head) { try testVerificationRowsAreBitIdenticalToLoneDecodeStepsAndRollBackCleanly() }
    }

    /// The same with int8 activations for the output head too (`LORA_DECODE_ACTIVATIONS=q8-all`).
    func testVerificationRowsAreBitIdenticalToLoneDecodeStepsWithInt8ActivationsEverywhere() throws {
        try withDecodeActivations(.q8All) { try testVerificationRowsAreBitIdenticalToLoneDecodeStepsAndRollBackCleanly() }
    }

    /// One verification forward of K + 1 rows computes, row for row, the logits of K + 1 lone decode
    /// steps; after rolling back the rejected rows, the next step is the bits plain decoding computes.
    func testVerificationRowsAreBitIdenticalToLoneDecodeStepsAndRollBackCleanly() throws {
        let lm = try ServingFixtures.model()
        let m = lm.model, c = m.config
        let D = c.hiddenSize
        let prompt = lm.tokenizer.encode(Self.copyPrompt, addSpecialTokens: true)
        let fed = lm.tokenizer.encode(" twelve blue lamps to", addSpecialTokens: false)
        XCTAssertGreaterThanOrEqual(fed.count, 4)
        for adapters in [AdapterSet.none, AdapterSet([ServingFixtures.adapter(seed: 21, config: c)])] {
            let plain = try loneDecodeLogits(m, prompt: prompt, tokens: fed, adapters: adapters)
            let cache = KVCache(config: c, capacity: prompt.count + fed.count + 2)
            let ws = Workspace()
            var hidden = [Float](repeating: 0, count: max(prompt.count, fed.count) * D)
            try hidden.withUnsafeMutableBufferPointer { h in
                try m.forward(prompt, cache: cache, adapters: adapters, workspace: ws, hidden: h.baseAddress!)
                try m.forwardBatch([BatchSegment(tokens: fed, cache: cache, adapters: adapters, rowwise: true)],
                                   workspace: ws, hidden: h.baseAddress!)
                XCTAssertEqual(cache.count, prompt.count + fed.count)
                let spec = rowLogits(m, h.baseAddress!, rows: fed.count)
                for i in 0..<fed.count {
                    XCTAssertEqual(bits(spec[i]), bits(plain[i]), "row \(i) (adapters: \(!adapters.isEmpty))")
                }
                // Keep the first two rows (one draft accepted), then decode a different token.
                cache.truncate(to: prompt.count + 2)
                let other = lm.tokenizer.encode(" red", addSpecialTokens: false)[0]
                try m.forward([other], cache: cache, adapters: adapters, workspace: ws, hidden: h.baseAddress!)
                let after = rowLogits(m, h.baseAddress!, rows: 1)[0]
                let expected = try loneDecodeLogits(m, prompt: prompt, tokens: Array(fed.prefix(2)) + [other], adapters: adapters)
                XCTAssertEqual(bits(after), bits(expected[2]), "the step after a rollback (adapters: \(!adapters.isEmpty))")
            }
        }
    }

    /// A speculating sequence's K + 1 rows share a step with decode rows (base and adapters) and a
    /// prefill chunk: every other row is the same bits as alone, and the speculating rows are too.
    func testASpeculatingNeighbourChangesNoOtherRow() throws {
        let lm = try ServingFixtures.model()
        let m = lm.model, c = m.config
        let D = c.hiddenSize
        let tok = lm.tokenizer
        let a1 = AdapterSet([ServingFixtures.adapter(seed: 31, config: c)])
        let a2 = AdapterSet([ServingFixtures.adapter(seed: 32, config: c, targets: [.q, .v])])
        struct Seq { var prompt: [Int]; var adapters: AdapterSet; var step: [Int]; var rowwise: Bool }
        let seqs = [
            Seq(prompt: tok.encode(Self.freePrompt, addSpecialTokens: true), adapters: a1,
                step: tok.encode(" Paris", addSpecialTokens: false), rowwise: false),
            Seq(prompt: tok.encode(Self.copyPrompt, addSpecialTokens: true), adapters: a2,
                step: tok.encode(" twelve blue lamps to Rotterdam", addSpecialTokens: false), rowwise: true),
            Seq(prompt: tok.encode("def fib(n):", addSpecialTokens: true), adapters: .none,
                step: tok.encode("\n", addSpecialTokens: false), rowwise: false),
            // A prompt still prefilling: its second chunk rides in the same step.
            Seq(prompt: tok.encode("Ship 40 crates of apples to Nantes by Friday.", addSpecialTokens: true), adapters: .none,
                step: tok.encode(" Then ship 12 crates of pears to Lyon on Monday.", addSpecialTokens: false), rowwise: false),
        ]
        XCTAssertEqual(seqs[0].step.count, 1)
        XCTAssertGreaterThan(seqs[1].step.count, 3)
        XCTAssertGreaterThan(seqs[3].step.count, 3)
        let maxRows = seqs.map { max($0.prompt.count, $0.step.count) }.reduce(0, +)
        func primed(_ s: Seq) throws -> KVCache {
            let cache = KVCache(config: c, capacity: s.prompt.count + s.step.count)
            var h = [Float](repeating: 0, count: s.prompt.count * D)
            try h.withUnsafeMutableBufferPointer {
                try m.forward(s.prompt, cache: cache, adapters: s.adapters, workspace: Workspace(), hidden: $0.baseAddress!)
            }
            return cache
        }
        // Each sequence's step alone.
        var solo: [[Float]] = []
        for s in seqs {
            var h = [Float](repeating: 0, count: s.step.count * D)
            try h.withUnsafeMutableBufferPointer {
                try m.forwardBatch([BatchSegment(tokens: s.step, cache: try primed(s), adapters: s.adapters, rowwise: s.rowwise)],
                                   workspace: Workspace(), hidden: $0.baseAddress!)
            }
            solo.append(h)
        }
        // All four in one step.
        var h = [Float](repeating: 0, count: maxRows * D)
        let segments = try seqs.map { BatchSegment(tokens: $0.step, cache: try primed($0), adapters: $0.adapters, rowwise: $0.rowwise) }
        try h.withUnsafeMutableBufferPointer { try m.forwardBatch(segments, workspace: Workspace(), hidden: $0.baseAddress!) }
        var row = 0
        for (i, s) in seqs.enumerated() {
            let together = Array(h[(row * D)..<((row + s.step.count) * D)])
            XCTAssertEqual(bits(together), bits(solo[i]), "sequence \(i): hidden states differ beside a speculating neighbour")
            row += s.step.count
        }
        // And the speculating rows are lone decode steps' logits.
        let plain = try loneDecodeLogits(m, prompt: seqs[1].prompt, tokens: seqs[1].step, adapters: a2)
        let spec = solo[1].withUnsafeBufferPointer { rowLogits(m, $0.baseAddress!, rows: seqs[1].step.count) }
        for i in 0..<plain.count { XCTAssertEqual(bits(spec[i]), bits(plain[i]), "verification row \(i)") }
    }

    struct Case {
        var prompt: String
        var maxTokens: Int
        var stop: [String] = []
        var adapter: UInt64?
        var k: Int
        var ngram = PromptLookup.defaultNgram
        var sampling = SamplingParameters.greedy
    }

    func run(_ lm: LanguageModel, _ c: Case, speculate: Bool) throws -> GenerationResult {
        var o = InferenceService.GenerateOptions()
        o.maxTokens = c.maxTokens
        o.stop = c.stop
        o.sampling = c.sampling
        if speculate { o.speculation = try PromptLookup.make(draftTokens: c.k, ngram: c.ngram) }
        let adapters = c.adapter.map { AdapterSet([ServingFixtures.adapter(seed: $0, config: lm.model.config, scale: 0.05)]) } ?? .none
        return try InferenceService(model: lm).generate(prompt: c.prompt, options: o, adapters: adapters)
    }

    /// Greedy: speculation's output is plain decoding's, token for token, whatever K and N, with and
    /// without an adapter, cut by a stop string or by max_tokens (including budgets smaller than K).
    func testGreedyGenerationIsTokenIdenticalWithSpeculation() throws {
        let lm = try ServingFixtures.model()
        let cases = [
            Case(prompt: Self.copyPrompt, maxTokens: 24, k: 4),
            Case(prompt: Self.copyPrompt, maxTokens: 20, adapter: 41, k: 6, ngram: 2),
            Case(prompt: Self.copyPrompt, maxTokens: 24, stop: ["Oslo", "chairs"], k: 8),
            Case(prompt: Self.copyPrompt, maxTokens: 3, k: 8),
            Case(prompt: Self.copyPrompt, maxTokens: 7, adapter: 42, k: 16, ngram: 1),
            Case(prompt: Self.freePrompt, maxTokens: 16, k: 3),
            Case(prompt: Self.freePrompt, maxTokens: 12, adapter: 43, k: 5, ngram: 1),
        ]
        var drafted = 0, accepted = 0, stopped = 0, cut = 0
        for (i, c) in cases.enumerated() {
            let plain = try run(lm, c, speculate: false)
            let spec = try run(lm, c, speculate: true)
            XCTAssertEqual(spec.tokens, plain.tokens, "case \(i)")
            XCTAssertEqual(spec.text, plain.text, "case \(i)")
            XCTAssertEqual(spec.finishReason, plain.finishReason, "case \(i)")
            XCTAssertEqual(plain.draftedTokens, 0)
            XCTAssertLessThanOrEqual(spec.acceptedTokens, spec.draftedTokens)
            // Every accepted draft saves a forward: steps = tokens - 1 - accepted (no EOS/stop row
            // beyond the last token) or fewer tokens than rows when the output ends inside a step.
            XCTAssertLessThanOrEqual(spec.decodeSteps, plain.decodeSteps, "case \(i)")
            drafted += spec.draftedTokens; accepted += spec.acceptedTokens
            if plain.finishReason == .stop && !c.stop.isEmpty { stopped += 1 }
            if plain.tokens.count == c.maxTokens { cut += 1 }
        }
        // The cases exercised what they are for: drafts accepted and drafts rejected, a stop string
        // and the token limit ending the output.
        XCTAssertGreaterThan(accepted, 0, "no draft was ever accepted")
        XCTAssertGreaterThan(drafted, accepted, "no draft was ever rejected")
        XCTAssertGreaterThan(stopped, 0, "no stop string ended an output")
        XCTAssertGreaterThan(cut, 0, "max_tokens never ended an output")
    }

    /// Seeded sampling: the sampler draws once per emitted token from that position's logits, which
    /// are plain decoding's bits, and a draft stands only when it equals the draw, so the output is
    /// plain decoding's, draw for draw (and distributed exactly as without drafts).
    func testSeededSamplingIsTokenIdenticalWithSpeculation() throws {
        let lm = try ServingFixtures.model()
        for (i, c) in [
            Case(prompt: Self.copyPrompt, maxTokens: 20, k: 4, sampling: SamplingParameters(temperature: 0.7, seed: 7)),
            Case(prompt: Self.copyPrompt, maxTokens: 16, adapter: 44, k: 3,
                 sampling: SamplingParameters(temperature: 1.0, topK: 20, topP: 0.9, seed: 99)),
        ].enumerated() {
            let plain = try run(lm, c, speculate: false)
            let spec = try run(lm, c, speculate: true)
            XCTAssertEqual(spec.tokens, plain.tokens, "case \(i)")
            XCTAssertEqual(spec.text, plain.text, "case \(i)")
            XCTAssertGreaterThan(spec.draftedTokens, 0, "case \(i) drafted nothing")
        }
    }
}
