import Foundation
import Kernels

/// One sequence's rows in a batched forward call: its new tokens (decoding: one; a prefill chunk:
/// several) appended after the `cache.count` positions already in its own KV cache, under its own
/// adapters.
public struct BatchSegment {
    public var tokens: [Int]
    public var cache: KVCache
    public var adapters: AdapterSet
    /// Each row computed exactly as a lone one-token decode step at its position (decode-row
    /// kernels, its own attention against the keys before it, its adapters one row at a time), so
    /// row t's bits are those of a one-row segment fed after rows 0..<t: speculative verification.
    /// False: several tokens are a prefill chunk (dequantized tiles, one attention over the chunk).
    public var rowwise: Bool

    public init(tokens: [Int], cache: KVCache, adapters: AdapterSet = .none, rowwise: Bool = false) {
        self.tokens = tokens; self.cache = cache; self.adapters = adapters; self.rowwise = rowwise
    }

    /// Multiplied with the decode-row kernels (one token, or `rowwise`).
    var decodeRows: Bool { rowwise || tokens.count == 1 }
}

extension LlamaModel {
    /// Runs every segment's new tokens through the model in one call (`blockForward` per layer, the
    /// block training runs too): the rows of all segments are
    /// stacked ([T, D], T = Σ segment lengths, segments in order), each row with its own position,
    /// attending to its own sequence's KV cache, adapted by its own segment's adapters. Appends each
    /// segment's keys and values to its cache and leaves the final-normed hidden states [T, D] in
    /// `hidden`.
    ///
    /// Batch invariance: a row's result does not depend on which other segments share the call.
    /// - A segment of several rows (a prefill chunk) is multiplied exactly as a forward of that
    ///   segment alone (each output one fixed fma chain over a packed weight panel, or its own sgemm past
    ///   256 rows); consecutive chunks share each
    ///   dequantized tile (`LinearWeight.forwardChunks`), so prompts prefill together.
    /// - Segments of one row (decoding) are multiplied together with `forwardRows`, whose every row
    ///   is bit-identical to a one-token `forward` of that row (the fused GEMV for quantized weights).
    /// - Adapters add their low-rank term to their own segment's rows only, one row at a time for
    ///   one-row segments.
    /// - Norms, rotary, biases and SwiGLU are per row; attention is per segment against its own cache.
    /// So a sequence's logits are the same bits alone or in any batch, and the same as
    /// `forward(_:cache:adapters:workspace:hidden:)` called with the same chunks.
    public func forwardBatch(_ segments: [BatchSegment], workspace ws: Workspace,
                             hidden: UnsafeMutablePointer<Float>) throws {
        let c = config
        var T = 0
        for (i, s) in segments.enumerated() {
            let n = s.tokens.count
            guard n > 0 else { throw ModelError.invalidArgument("batch segment \(i) has no tokens") }
            let p0 = s.cache.count
            guard p0 + n <= s.cache.capacity else {
                throw ModelError.invalidArgument("sequence of \(p0 + n) tokens exceeds the KV cache capacity \(s.cache.capacity)")
            }
            for id in s.tokens where id < 0 || id >= c.vocabSize {
                throw ModelError.invalidArgument("token id \(id) is outside the vocabulary (0..<\(c.vocabSize))")
            }
            for j in 0..<i where segments[j].cache === s.cache {
                throw ModelError.invalidArgument("batch segments \(j) and \(i) share one KV cache")
            }
            T += n
        }
        if T == 0 { return }
        let D = c.hiddenSize
        // Rebuilt in the workspace's arrays (capacity kept): a decode step allocates nothing.
        // (Used in place, never copied to a local: the release below must find its arrays unshared.)
        ws.servingRows.buildServing(segments)
        ws.plan(config: c, rows: ws.servingRows, saving: false)
        let x = ws.x.pointer
        var row = 0
        for s in segments {
            for t in 0..<s.tokens.count { weights.embed(s.tokens[t], dim: D, into: x + (row + t) * D) }
            row += s.tokens.count
        }
        for l in 0..<c.numLayers { blockForward(l, rows: ws.servingRows, x: x, workspace: ws) }
        // Let go of the step's caches and adapters now (a retired sequence's KV cache is freed when
        // it leaves, not at the next step); the arrays keep their capacity.
        ws.servingRows.removeAll()
        for s in segments { s.cache.count += s.tokens.count }
        weights.finalNorm.withUnsafeBufferPointer { w in
            RMSNorm.forward(x, weight: w.baseAddress!, eps: c.rmsNormEps, tokens: T, dim: D, into: hidden)
        }
    }

    /// Logits[T, V] of T single rows, each bit-identical to `logits(hidden:tokens: 1)` of that row alone.
    public func logitsRows(hidden: UnsafePointer<Float>, rows: Int, into out: UnsafeMutablePointer<Float>) {
        weights.lmHead.forwardRows(hidden, rows: rows, into: out, accumulate: false)
    }
}

extension BlockRows {
    /// Rebuilds these rows as a serving step's, in place (the arrays keep their capacity): each
    /// segment attends to its own cache; runs of one-row and rowwise segments (decoding,
    /// verification) are multiplied together with `forwardRows`, runs of prefill chunks as chunks. A
    /// rowwise segment's attention is one one-row segment per row (row t after past + t keys),
    /// exactly a lone decode row's. Segments' rows are stacked in order.
    mutating func buildServing(_ segments: [BatchSegment]) {
        removeAll()
        var first = 0   // first row of segment i
        for s in segments {
            let p0 = s.cache.count, n = s.tokens.count
            for t in 0..<n { positions.append(Int32(p0 + t)) }
            if s.rowwise {
                for t in 0..<n {
                    self.segments.append(AttentionSegment(rows: (first + t)..<(first + t + 1), past: p0 + t, cache: s.cache))
                }
            } else {
                self.segments.append(AttentionSegment(rows: first..<(first + n), past: p0, cache: s.cache))
            }
            first += n
        }
        count = first
        var i = 0
        first = 0
        while i < segments.count {
            let decoding = segments[i].decodeRows
            let groupFirst = first, setsFirst = adapterSets.count, chunksFirst = chunkRanges.count
            var j = i
            while j < segments.count && segments[j].decodeRows == decoding {
                let n = segments[j].tokens.count
                // `.rows` takes one adapter set per row, `.chunks` one per chunk.
                for _ in 0..<(decoding ? n : 1) { adapterSets.append(segments[j].adapters) }
                if !decoding { chunkRanges.append(first..<(first + n)) }
                first += n
                j += 1
            }
            groups.append(decoding ? .rows(groupFirst..<first, sets: setsFirst..<adapterSets.count)
                                   : .chunks(chunksFirst..<chunkRanges.count, sets: setsFirst..<adapterSets.count))
            i = j
        }
    }
}
