import Foundation
import Kernels
import Model
import Quantization
import Service
import TestSupport
import Training
import XCTest

/// `forwardBatch` on the default model (Q4_1 weights: sgemm tiles for prefill chunks, fused GEMV for
/// decode rows): a sequence's logits are the same bits alone and sharing every step with sequences
/// on other adapters, the base, and prompts of other lengths still prefilling.
final class BatchInvarianceTests: XCTestCase {
    /// One sequence driven step by step: prompt in chunks, then greedy decoding.
    final class Driver {
        let model: LlamaModel
        let prompt: [Int]
        let adapters: AdapterSet
        let chunk: Int
        let cache: KVCache
        var fed = 0
        var next: Int?
        /// Logits of every step that produced some (the last prompt chunk, then each decode step).
        var logits: [[Float]] = []
        var tokens: [Int] = []
        /// Final-normed hidden states of every row this sequence fed, step by step (prefill chunks too).
        var hidden: [[Float]] = []

        init(model: LlamaModel, prompt: [Int], adapters: AdapterSet, chunk: Int, steps: Int) {
            self.model = model; self.prompt = prompt; self.adapters = adapters; self.chunk = chunk
            cache = KVCache(config: model.config, capacity: prompt.count + steps + 1)
        }

        /// This step's rows, and whether its last row gives logits.
        func segment() -> (BatchSegment, Bool) {
            if fed < prompt.count {
                let n = min(chunk, prompt.count - fed)
                let s = BatchSegment(tokens: Array(prompt[fed..<(fed + n)]), cache: cache, adapters: adapters)
                fed += n
                return (s, fed == prompt.count)
            }
            return (BatchSegment(tokens: [next!], cache: cache, adapters: adapters), true)
        }

        func take(_ row: UnsafePointer<Float>) {
            let V = model.config.vocabSize
            logits.append(Array(UnsafeBufferPointer(start: row, count: V)))
            next = Sampler.argmax(row, count: V)
            tokens.append(next!)
        }
    }

    /// Runs the drivers together: driver i joins at step `joins[i]` and leaves after `steps` logits.
    static func run(_ drivers: [Driver], joins: [Int], steps: Int) throws {
        let m = drivers[0].model
        let ws = Workspace()
        let D = m.config.hiddenSize, V = m.config.vocabSize
        var step = 0
        while drivers.contains(where: { $0.logits.count < steps }) {
            var segs: [BatchSegment] = []
            var sampled: [(Driver, Int)] = []
            var fed: [(Driver, Range<Int>)] = []
            var rows = 0
            for (i, d) in drivers.enumerated() where joins[i] <= step && d.logits.count < steps {
                let (s, wants) = d.segment()
                segs.append(s)
                fed.append((d, rows..<(rows + s.tokens.count)))
                rows += s.tokens.count
                if wants { sampled.append((d, rows - 1)) }
            }
            step += 1
            if segs.isEmpty { continue }
            var hidden = [Float](repeating: 0, count: rows * D)
            var last = [Float](repeating: 0, count: max(1, sampled.count) * D)
            var logits = [Float](repeating: 0, count: max(1, sampled.count) * V)
            try hidden.withUnsafeMutableBufferPointer { h in
                try m.forwardBatch(segs, workspace: ws, hidden: h.baseAddress!)
                for (i, (_, r)) in sampled.enumerated() {
                    for j in 0..<D { last[i * D + j] = h[r * D + j] }
                }
                for (d, r) in fed { d.hidden.append(Array(h[(r.lowerBound * D)..<(r.upperBound * D)])) }
            }
            last.withUnsafeBufferPointer { l in
                logits.withUnsafeMutableBufferPointer { o in
                    m.logitsRows(hidden: l.baseAddress!, rows: sampled.count, into: o.baseAddress!)
                    for (i, (d, _)) in sampled.enumerated() { d.take(o.baseAddress! + i * V) }
                }
            }
        }
    }

    /// The same with fp32 decode activations everywhere (`LORA_DECODE_ACTIVATIONS=f32`; the test below runs
    /// under the default, int8 in the layers and two-digit for the head where the CPU has AVX2).
    func testDecodeLogitsAreBitIdenticalAloneAndInAMixedBatchWithFP32Activations() throws {
        try withDecodeActivations(.f32) { try testDecodeLogitsAreBitIdenticalAloneAndInAMixedBatch() }
    }

    /// The same with int8 activations in the layers and fp32 ones for the head (`LORA_DECODE_ACTIVATIONS=q8-f32head`;
    /// the default gives the head two-digit inputs).
    func testDecodeLogitsAreBitIdenticalAloneAndInAMixedBatchWithAnFP32Head() throws {
        try withDecodeActivations(.q8F32Head) { try testDecodeLogitsAreBitIdenticalAloneAndInAMixedBatch() }
    }

    /// The same with int8 activations for the output head too (`LORA_DECODE_ACTIVATIONS=q8-all`).
    func testDecodeLogitsAreBitIdenticalAloneAndInAMixedBatchWithInt8ActivationsEverywhere() throws {
        try withDecodeActivations(.q8All) { try testDecodeLogitsAreBitIdenticalAloneAndInAMixedBatch() }
    }

    func testDecodeLogitsAreBitIdenticalAloneAndInAMixedBatch() throws {
        let lm = try ServingFixtures.model()
        let m = lm.model, c = m.config
        let a1 = AdapterSet([ServingFixtures.adapter(seed: 1, config: c)])
        let a2 = AdapterSet([ServingFixtures.adapter(seed: 2, config: c)])
        let a3 = AdapterSet([ServingFixtures.adapter(seed: 3, config: c, targets: [.q, .v])])
        let tok = lm.tokenizer
        let pA = tok.encode("The capital of France is", addSpecialTokens: true)
        let long = String(repeating: "Order 17 of blue widgets shipped to Lyon on 3 March. ", count: 8)
        let pB = tok.encode(long, addSpecialTokens: true)
        XCTAssertGreaterThan(pB.count, 70, "the long prompt must span more than one prefill chunk")
        let pC = tok.encode("def fib(n):", addSpecialTokens: true)
        let chunk = 16, steps = 5

        // Sequence A on adapter 1, alone.
        let soloA = Driver(model: m, prompt: pA, adapters: a1, chunk: chunk, steps: steps)
        try Self.run([soloA], joins: [0], steps: steps)
        // Sequence C on the base, alone.
        let soloC = Driver(model: m, prompt: pC, adapters: .none, chunk: chunk, steps: steps)
        try Self.run([soloC], joins: [0], steps: steps)

        // A again, with B (a long prompt on adapter 2, prefilling in several chunks while A decodes),
        // C (the base) and D (adapter 3 on q/v only, A's prompt) joining at other steps.
        let batchA = Driver(model: m, prompt: pA, adapters: a1, chunk: chunk, steps: steps)
        let batchB = Driver(model: m, prompt: pB, adapters: a2, chunk: chunk, steps: steps)
        let batchC = Driver(model: m, prompt: pC, adapters: .none, chunk: chunk, steps: steps)
        let batchD = Driver(model: m, prompt: pA, adapters: a3, chunk: chunk, steps: steps)
        try Self.run([batchB, batchA, batchC, batchD], joins: [0, 1, 2, 0], steps: steps)

        XCTAssertEqual(batchA.tokens, soloA.tokens)
        XCTAssertEqual(batchC.tokens, soloC.tokens)
        for s in 0..<steps {
            // Exact: the arithmetic of a row does not depend on its neighbours, which is the point.
            XCTAssertTrue(batchA.logits[s].elementsEqual(soloA.logits[s]) { $0.bitPattern == $1.bitPattern },
                          "sequence A, step \(s): logits differ in a batch")
            XCTAssertTrue(batchC.logits[s].elementsEqual(soloC.logits[s]) { $0.bitPattern == $1.bitPattern },
                          "sequence C, step \(s): logits differ in a batch")
        }
        // The adapters do change the output (otherwise the comparison above would prove little).
        XCTAssertFalse(batchD.logits[0].elementsEqual(batchA.logits[0]) { $0.bitPattern == $1.bitPattern })
    }

    /// Prompts arriving together prefill together: two prompts' chunks share steps (their weight
    /// tiles dequantized once, `forwardChunks`) with two sequences decoding beside them. Every row of
    /// every sequence, prefill rows included, is the same bits as when that sequence runs alone.
    func testTwoPrefillsAndDecodesInOneStepEqualTheirSoloRuns() throws {
        let lm = try ServingFixtures.model()
        let m = lm.model, c = m.config
        let a1 = AdapterSet([ServingFixtures.adapter(seed: 11, config: c)])
        let a2 = AdapterSet([ServingFixtures.adapter(seed: 12, config: c, targets: [.q, .v])])
        let tok = lm.tokenizer
        let p1 = tok.encode(String(repeating: "Ship 40 crates of apples to Nantes by Friday. ", count: 4), addSpecialTokens: true)
        let p2 = tok.encode(String(repeating: "The quick brown fox jumps over the lazy dog. ", count: 5), addSpecialTokens: true)
        let p3 = tok.encode("The capital of France is", addSpecialTokens: true)
        let p4 = tok.encode("def fib(n):", addSpecialTokens: true)
        let chunk = 16, steps = 4
        XCTAssertGreaterThan(p1.count, 2 * chunk, "prompt 1 must span several chunks")
        XCTAssertGreaterThan(p2.count, 2 * chunk, "prompt 2 must span several chunks")
        XCTAssertNotEqual(p1.count % chunk, p2.count % chunk, "the prompts' last chunks differ in length (\(p1.count), \(p2.count) tokens)")
        let specs: [([Int], AdapterSet)] = [(p1, a1), (p2, .none), (p3, a2), (p4, a1)]
        var solo: [Driver] = []
        for (p, a) in specs {
            let d = Driver(model: m, prompt: p, adapters: a, chunk: chunk, steps: steps)
            try Self.run([d], joins: [0], steps: steps)
            solo.append(d)
        }
        // Sequences 3 and 4 start first (short prompts: decoding by step 1); 1 and 2 join at step 1
        // and prefill side by side in the same steps while 3 and 4 decode.
        let together = specs.map { Driver(model: m, prompt: $0.0, adapters: $0.1, chunk: chunk, steps: steps) }
        try Self.run([together[2], together[3], together[0], together[1]], joins: [0, 0, 1, 1], steps: steps)

        XCTAssertGreaterThanOrEqual(together[0].hidden.count, 3, "prompt 1 prefilled over several steps")
        for i in 0..<specs.count {
            XCTAssertEqual(together[i].tokens, solo[i].tokens, "sequence \(i + 1)")
            XCTAssertEqual(together[i].hidden.count, solo[i].hidden.count)
            for (s, (a, b)) in zip(together[i].hidden, solo[i].hidden).enumerated() {
                XCTAssertTrue(a.elementsEqual(b) { $0.bitPattern == $1.bitPattern },
                              "sequence \(i + 1), step \(s) (\(a.count / c.hiddenSize) rows): hidden states differ in a batch")
            }
            for s in 0..<steps {
                XCTAssertTrue(together[i].logits[s].elementsEqual(solo[i].logits[s]) { $0.bitPattern == $1.bitPattern },
                              "sequence \(i + 1), logits \(s) differ in a batch")
            }
        }
    }

    /// A lone sequence through `forwardBatch` computes what `forward` computes for the same chunks,
    /// so `lora generate` (which calls `forward`) and the engine agree by construction.
    func testOneSegmentEqualsForward() throws {
        let lm = try ServingFixtures.model()
        let m = lm.model
        let ids = lm.tokenizer.encode("Hello there, how are you?", addSpecialTokens: true)
        let D = m.config.hiddenSize
        let adapters = AdapterSet([ServingFixtures.adapter(seed: 5, config: m.config)])
        let c1 = KVCache(config: m.config, capacity: ids.count), c2 = KVCache(config: m.config, capacity: ids.count)
        var h1 = [Float](repeating: 0, count: ids.count * D), h2 = h1
        try h1.withUnsafeMutableBufferPointer {
            try m.forward(ids, cache: c1, adapters: adapters, workspace: Workspace(), hidden: $0.baseAddress!)
        }
        try h2.withUnsafeMutableBufferPointer {
            try m.forwardBatch([BatchSegment(tokens: ids, cache: c2, adapters: adapters)], workspace: Workspace(), hidden: $0.baseAddress!)
        }
        XCTAssertEqual(h1.map(\.bitPattern), h2.map(\.bitPattern))
    }

    func testBatchRefusesASharedCacheAndOverflow() throws {
        let m = try ServingFixtures.model().model
        let cache = KVCache(config: m.config, capacity: 4)
        var h = [Float](repeating: 0, count: 8 * m.config.hiddenSize)
        try h.withUnsafeMutableBufferPointer { p in
            XCTAssertThrowsError(try m.forwardBatch([BatchSegment(tokens: [1], cache: cache), BatchSegment(tokens: [2], cache: cache)],
                                                    workspace: Workspace(), hidden: p.baseAddress!))
            XCTAssertThrowsError(try m.forwardBatch([BatchSegment(tokens: [1, 2, 3, 4, 5], cache: cache)],
                                                    workspace: Workspace(), hidden: p.baseAddress!))
        }
        XCTAssertEqual(cache.count, 0, "a refused call changes no cache")
    }
}
