import Foundation
import Kernels
import Model
import TestSupport
import XCTest

/// Decode rows' attention (one-row segments against their caches, `AttentionRow` tasks per row and KV
/// head): a row's bits do not depend on the other rows of the step, on whether the step's rows are
/// spread over the pool, or on the thread budget; rowwise verification rows are each a lone decode
/// row; and the rows are the attention the blocked (prefill) path computes, sliding window included.
final class DecodeAttentionTests: XCTestCase {
    /// Sequences with caches of very different lengths (a 1-token prompt, which is itself a decode row,
    /// up to 300) decode three steps together under budgets of 1, 2 and 3 threads (large enough to
    /// spread the step's rows over the pool) and each alone (too small to spread): the same bits. A
    /// rowwise segment of 3 tokens in the same steps equals its tokens fed one by one.
    func testDecodeRowsAreTheSameBitsAloneInABatchAndUnderAnyBudget() throws {
        let model = RandomModel.make(seed: 11, d: 64, f: 48, heads: 8, kvHeads: 2, headDim: 8, maxPositions: 512)
        let c = model.config
        let D = c.hiddenSize
        let lengths = [300, 17, 1, 250, 64, 129]
        let prompts = lengths.enumerated().map { i, n in (0..<n).map { ($0 * 7 + 3 * i + 1) % c.vocabSize } }
        let steps = [[5, 9, 2, 44, 13, 7], [8, 1, 30, 6, 19, 23], [4, 4, 12, 38, 2, 15]]
        let verify = [21, 3, 40]   // a rowwise segment after prompt 0's cache
        let rowMACs = (lengths + [lengths[0]]).reduce(0) { $0 + c.numHeads * ($1 + 1) * c.headDim }
        XCTAssertGreaterThanOrEqual(rowMACs, LlamaModel.rowAttentionParallelMACs, "the batch must be large enough to spread")
        XCTAssertLessThan(c.numHeads * (lengths.max()! + 4) * c.headDim, LlamaModel.rowAttentionParallelMACs,
                          "a lone row must run on the calling thread")

        /// Prefills every prompt (plus a copy of prompt 0 for the rowwise segment) into fresh caches.
        func prefilled(_ ws: Workspace) throws -> [KVCache] {
            try (prompts + [prompts[0]]).map { p in
                let cache = KVCache(config: c, capacity: p.count + 8)
                var h = [Float](repeating: 0, count: p.count * D)
                try h.withUnsafeMutableBufferPointer {
                    try model.forward(p, cache: cache, adapters: .none, workspace: ws, hidden: $0.baseAddress!)
                }
                return cache
            }
        }

        // Alone: each sequence's steps one row at a time, one thread.
        var alone: [[UInt32]] = []
        try ComputeContext.run(ComputeContext(threads: 1)) {
            let ws = Workspace()
            let caches = try prefilled(ws)
            var h = [Float](repeating: 0, count: D)
            for step in 0..<steps.count {
                for (i, tokens) in steps[step].enumerated() {
                    try h.withUnsafeMutableBufferPointer {
                        try model.forward([tokens], cache: caches[i], adapters: .none, workspace: ws, hidden: $0.baseAddress!)
                    }
                    alone.append(h.map(\.bitPattern))
                }
                try h.withUnsafeMutableBufferPointer {
                    try model.forward([verify[step]], cache: caches[lengths.count], adapters: .none, workspace: ws,
                                      hidden: $0.baseAddress!)
                }
                alone.append(h.map(\.bitPattern))
            }
        }

        // Together: each step one forwardBatch of the six decode rows and the rowwise segment.
        for threads in [1, 2, 3] {
            var together: [[UInt32]] = []
            try ComputeContext.run(ComputeContext(threads: threads)) {
                let ws = Workspace()
                let caches = try prefilled(ws)
                var h = [Float](repeating: 0, count: (lengths.count + verify.count) * D)
                // Row by row, the verification rows one step at a time: step s feeds verify[s] among
                // the decode rows; the last step feeds all three verification tokens rowwise instead.
                for step in 0..<steps.count {
                    var segments = steps[step].enumerated().map { BatchSegment(tokens: [$1], cache: caches[$0]) }
                    if step < steps.count - 1 {
                        segments.append(BatchSegment(tokens: [verify[step]], cache: caches[lengths.count]))
                    }
                    let rows = segments.count
                    try h.withUnsafeMutableBufferPointer { try model.forwardBatch(segments, workspace: ws, hidden: $0.baseAddress!) }
                    for r in 0..<rows { together.append(h[(r * D)..<((r + 1) * D)].map(\.bitPattern)) }
                }
            }
            XCTAssertEqual(together.count, alone.count - 1)
            // The same order as `alone` (the last step's verification row is the one left out).
            for (i, got) in together.enumerated() {
                XCTAssertEqual(got, alone[i], "threads \(threads): row \(i) differs from its lone decode")
            }
        }

        // Rowwise: prompt 0's copy fed verify[0...2] as one rowwise segment beside the decode rows.
        try ComputeContext.run(ComputeContext(threads: 2)) {
            let ws = Workspace()
            let caches = try prefilled(ws)
            var segments = steps[0].enumerated().map { BatchSegment(tokens: [$1], cache: caches[$0]) }
            segments.append(BatchSegment(tokens: verify, cache: caches[lengths.count], rowwise: true))
            var h = [Float](repeating: 0, count: (lengths.count + verify.count) * D)
            try h.withUnsafeMutableBufferPointer { try model.forwardBatch(segments, workspace: ws, hidden: $0.baseAddress!) }
            let perStep = lengths.count + 1
            for t in 0..<verify.count {
                let r = lengths.count + t
                XCTAssertEqual(h[(r * D)..<((r + 1) * D)].map(\.bitPattern), alone[t * perStep + lengths.count],
                               "rowwise row \(t) differs from its lone decode")
            }
            for i in 0..<lengths.count {
                XCTAssertEqual(h[(i * D)..<((i + 1) * D)].map(\.bitPattern), alone[i], "decode row \(i) beside a rowwise segment")
            }
        }
    }

    /// With a sliding window (keys before position - window + 1 hidden) and grouped KV heads, decoding
    /// one row at a time from the cache gives full recomputation's logits (the blocked path, the window
    /// applied there by zeroed scores, here by skipping the keys) within the fixture-model forward bound.
    func testDecodeRowsWithASlidingWindowEqualFullRecomputation() throws {
        for window in [1, 3, 6] {
            let model = RandomModel.make(seed: 13, heads: 6, kvHeads: 2, headDim: 8, slidingWindow: window)
            let c = model.config
            let V = c.vocabSize, D = c.hiddenSize
            let tokens = [3, 17, 42, 8, 8, 29, 11, 0, 49, 5, 22, 31]
            let full = try model.logits(for: tokens)
            let cache = KVCache(config: c, capacity: tokens.count)
            let ws = Workspace()
            var h = [Float](repeating: 0, count: 2 * D)
            var logits = [Float](repeating: 0, count: V)
            for (i, t) in tokens.enumerated() {
                try h.withUnsafeMutableBufferPointer { hb in
                    try model.forward([t], cache: cache, adapters: .none, workspace: ws, hidden: hb.baseAddress!)
                    logits.withUnsafeMutableBufferPointer { model.logits(hidden: hb.baseAddress!, tokens: 1, into: $0.baseAddress!) }
                }
                let ref = Array(full[(i * V)..<((i + 1) * V)])
                XCTAssertLessThanOrEqual(scaledMaxError(logits, ref), FP32.tinyModelForward, "window \(window) position \(i)")
            }
        }
    }
}
