import Foundation
import Kernels

extension LlamaModel {
    /// Rows of a segment per attention task: a block of queries attends to the keys its last row sees.
    public static let attentionBlockRows = 64

    /// Query rows per block of the attention forward (and of the backward's blocks, which follow it).
    public static var attentionRowBlock: Int { attentionBlockRows }

    /// At most this many chunks (each with its own scratch) in the attention backward's split, whatever
    /// the thread count, so the scratch the trainer plans fits any budget.
    public static let ownKeyChunkLimit = 8

    /// How `tasks` are cut for the pool (`Parallel.forEachChunk(tasks, minChunk:, chunksPerThread: 3)`):
    /// the minChunk that keeps the chunks within `ownKeyChunkLimit`, the number of chunks and each one's
    /// tasks, so chunk c (the one starting at c · per) may use scratch c. (The attention backward's split.)
    public static func ownKeySplit(_ tasks: Int) -> (minChunk: Int, chunks: Int, per: Int) {
        let minChunk = max(1, (tasks + ownKeyChunkLimit - 1) / ownKeyChunkLimit)
        let chunks = Parallel.chunkCount(tasks, minChunk: minChunk, chunksPerThread: 3)
        return (minChunk, chunks, (tasks + chunks - 1) / max(1, chunks))
    }

    /// Blocked attention with fewer multiply-adds (over all its segments) runs on the calling thread (a
    /// region costs more than a few small blocks).
    public static let attentionParallelMACs = 1 << 20

    /// Decode rows' attention with fewer multiply-adds (over all the step's rows) runs on the calling
    /// thread: at 2^15 a one-row step's 3 KV-head tasks (~3 us each) barely pay for a region.
    public static let rowAttentionParallelMACs = 1 << 15

    /// Block `l`'s attention output [T, H*E] (the o_proj input) for the backward: the saved one, or,
    /// when `s` did not keep it, rebuilt into `ws`'s scratch by the forward's own `attention` from the
    /// saved q, k, v (post-RoPE), so the same bits the forward multiplied. Training rows only (segments
    /// without a cache).
    public func attentionOutput(_ l: Int, rows: BlockRows, saved s: BlockActivations,
                                workspace ws: Workspace) -> UnsafePointer<Float> {
        if s.keepsAttention { return UnsafePointer(s.att.pointer) }
        precondition(rows.segments.allSatisfy { $0.cache == nil }, "rebuilding attention needs the rows' own keys")
        attention(l, rows, q: s.q.pointer, k: s.k.pointer, v: s.v.pointer, out: ws.att.pointer, lse: nil)
        return UnsafePointer(ws.att.pointer)
    }

    /// Causal attention per segment and head: each row's scores against its segment's visible keys
    /// (a cache's `past` keys then the segment's own, or, without a cache, the segment's own rows' keys),
    /// a softmax, the weighted sum of values. Stores cached segments' new keys and values in their
    /// caches first (a rowwise segment's row sees the rows before it in the same cache). lse (when
    /// given) gets each row's log-sum-exp at [(r0 * H) + h * n + t] for segment rows r0..<r0+n.
    ///
    /// Two kinds of work, each a task list of its own, each task's arithmetic depending on its own rows
    /// and keys only (never on the split, nor on which other segments share the call):
    /// - Decode rows (one-row segments against a cache): one task per (row, KV head), its query heads
    ///   through `AttentionRow` (SIMD dot products and weighted sums in a fixed order); all the step's
    ///   rows in one region of the pool.
    /// - Blocks (every other segment: prefill chunks against a cache, training and scoring records
    ///   against their own keys): one task per (segment, head, block of `attentionBlockRows` rows), a
    ///   block's scores covering only the keys its last row sees (past + the block's end), so a long
    ///   segment skips most of the causal mask's zeros; two sgemm per task, single-threaded, scores in
    ///   the thread's `ThreadScratch.attention`. All segments' tasks in one region when large enough.
    func attention(_ l: Int, _ rows: BlockRows, q: UnsafePointer<Float>, k: UnsafeMutablePointer<Float>,
                   v: UnsafeMutablePointer<Float>, out: UnsafeMutablePointer<Float>, lse: UnsafeMutablePointer<Float>?) {
        let c = config
        let E = c.headDim, H = c.numHeads, Hk = c.numKVHeads, kvDim = c.kvDim
        let block = Self.attentionBlockRows
        var decodeRows = 0, rowMACs = 0, blockTasks = 0, blockMACs = 0
        for seg in rows.segments {
            let r0 = seg.rows.lowerBound, n = seg.rows.count, p0 = seg.past, S = p0 + n
            if let cache = seg.cache {
                (cache.keys[l] + p0 * kvDim).update(from: k + r0 * kvDim, count: n * kvDim)
                (cache.values[l] + p0 * kvDim).update(from: v + r0 * kvDim, count: n * kvDim)
            } else {
                precondition(p0 == 0, "a segment without a cache has no earlier keys")
            }
            if Self.isDecodeRow(seg) {
                decodeRows += 1; rowMACs += H * S * E
            } else {
                blockTasks += H * ((n + block - 1) / block); blockMACs += H * n * S * E
            }
        }
        if decodeRows > 0 {
            var task = RowAttentionTask(segments: rows.segments, firstKey: rows.firstKey, layer: l, config: c,
                                        q: q, out: out, lse: lse)
            let tasks = rows.segments.count * Hk
            let spread = Self.spreadDecodeRows && tasks > 1 && rowMACs >= Self.rowAttentionParallelMACs && !Parallel.insideRegion
                && Parallel.chunkCount(tasks) > 1
            if !spread || !withUnsafeMutablePointer(to: &task, { Parallel.runTasks(tasks, RowAttentionTask.poolTask, $0) }) {
                for i in 0..<tasks { task.run(i) }
            }
        }
        if blockTasks > 0 {
            blockAttention(l, rows, tasks: blockTasks, macs: blockMACs, q: q, k: k, v: v, out: out, lse: lse)
        }
    }

    /// Whether decode rows' attention and low-rank terms are spread over the pool (else they run on the
    /// calling thread, as before; `LORA_DECODE_SPREAD=0` or `off`, for A/B figures). Read once at start-up
    /// (`EnvironmentSwitch.decodeSpread`; the CLI refuses a value it does not know).
    static let spreadDecodeRows = EnvironmentSwitch.decodeSpread.value

    /// Whether a segment's attention goes through `AttentionRow` (one row against a cache).
    @inline(__always)
    static func isDecodeRow(_ seg: AttentionSegment) -> Bool { seg.rows.count == 1 && seg.cache != nil }

    /// `attention`'s blocks: task i of the list, segment-major, then head-major, then row block.
    private func blockAttention(_ l: Int, _ rows: BlockRows, tasks: Int, macs: Int, q: UnsafePointer<Float>,
                                k: UnsafePointer<Float>, v: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>,
                                lse: UnsafeMutablePointer<Float>?) {
        let c = config
        let E = c.headDim, H = c.numHeads, Hk = c.numKVHeads
        let qDim = c.qDim, kvDim = c.kvDim
        let scale = 1 / Float(E).squareRoot()
        let group = H / Hk
        let block = Self.attentionBlockRows
        func run(_ task: Int) {
            // Find the task's segment (a step or micro-batch has few segments).
            var i = task, s = 0, blocks = 0
            while true {
                let seg = rows.segments[s]
                if !Self.isDecodeRow(seg) {
                    blocks = (seg.rows.count + block - 1) / block
                    if i < H * blocks { break }
                    i -= H * blocks
                }
                s += 1
            }
            let seg = rows.segments[s]
            let r0 = seg.rows.lowerBound, n = seg.rows.count, p0 = seg.past
            let K: UnsafePointer<Float>, V: UnsafePointer<Float>
            if let cache = seg.cache {
                K = UnsafePointer(cache.keys[l]); V = UnsafePointer(cache.values[l])
            } else {
                K = k + r0 * kvDim; V = v + r0 * kvDim
            }
            let h = i / blocks, b = i % blocks
            let kvh = h / group
            let t0 = b * block, t1 = min(n, t0 + block), rb = t1 - t0
            let Sb = p0 + t1   // keys the block's last row sees
            let sc = ThreadScratch.attention.floats(rb * Sb)
            let qs = q + r0 * qDim, os = out + r0 * qDim
            // scores[rb, Sb] = Q_h[t0..<t1, E] · K_h[0..<Sb]ᵀ * scale
            BLAS.sgemm(transB: true, m: rb, n: Sb, k: E, alpha: scale,
                       a: qs + t0 * qDim + h * E, lda: qDim, b: K + kvh * E, ldb: kvDim, c: sc, ldc: Sb)
            // Causal: row t (key index p0+t) sees keys lo...p0+t; lo from the record start (packing)
            // and the sliding window, when the model has one.
            for t in t0..<t1 {
                let row = sc + (t - t0) * Sb
                let visible = p0 + t + 1
                let first = rows.firstKey.map { Int($0[r0 + t]) } ?? 0
                let lo = max(first, c.firstVisiblePosition(p0 + t))
                let logSum = Activations.softmax(row + lo, count: visible - lo)
                if let lse { lse[r0 * H + h * n + t] = logSum }
                if lo > 0 { row.update(repeating: 0, count: lo) }
                if visible < Sb { (row + visible).update(repeating: 0, count: Sb - visible) }
            }
            // out_h[t0..<t1, E] = scores[rb, Sb] · V_h[0..<Sb, E]
            BLAS.sgemm(m: rb, n: E, k: Sb, a: sc, lda: Sb, b: V + kvh * E, ldb: kvDim,
                       c: os + t0 * qDim + h * E, ldc: qDim)
        }
        // Each task's products stay whole on its thread (marked as inside a region, so an sgemm is never
        // split over the pool: its bits depend on its shape alone). Tasks vary in size (later blocks see
        // more keys), so each is a chunk of its own: a thread that starts late takes fewer.
        if Parallel.threads > 1 && !Parallel.insideRegion && tasks > 1 && macs >= Self.attentionParallelMACs {
            Parallel.forEachChunk(tasks, chunksPerThread: tasks) { part in for task in part { run(task) } }
        } else {
            Parallel.runChunk(.current) { for task in 0..<tasks { run(task) } }
        }
    }

    /// The decode rows of one `attention` call as pool tasks: task i is segment i / Hk's KV head i % Hk
    /// (nothing for a segment that is not a decode row), its query heads one after another with the
    /// thread's score scratch. Lives on the caller's stack for the region (`Parallel.runTasks`), so a
    /// decode step's attention allocates nothing.
    struct RowAttentionTask {
        let segments: [AttentionSegment]
        let firstKey: [Int32]?
        let layer: Int
        let config: LlamaConfig
        let q: UnsafePointer<Float>
        let out: UnsafeMutablePointer<Float>
        let lse: UnsafeMutablePointer<Float>?

        func run(_ i: Int) {
            let c = config
            let H = c.numHeads, Hk = c.numKVHeads, E = c.headDim, qDim = c.qDim, kvDim = c.kvDim
            let seg = segments[i / Hk]
            guard LlamaModel.isDecodeRow(seg), let cache = seg.cache else { return }
            let kvh = i % Hk, group = H / Hk
            let r = seg.rows.lowerBound, S = seg.past + 1
            let first = firstKey.map { Int($0[r]) } ?? 0
            let lo = max(first, c.firstVisiblePosition(seg.past))
            let K = cache.keys[layer] + kvh * E, V = cache.values[layer] + kvh * E
            // Rounded up: a decode step's S is one more than the last step's, and growing the thread's
            // buffer every step would allocate per token.
            let scores = ThreadScratch.attention.floats((S + 1023) & ~1023)
            let scale = 1 / Float(E).squareRoot()
            for h in (kvh * group)..<((kvh + 1) * group) {
                let logSum = AttentionRow.forward(q: q + r * qDim + h * E, keys: K, values: V, ld: kvDim, headSize: E,
                                                  first: lo, count: S, scale: scale, scores: scores,
                                                  into: out + r * qDim + h * E)
                if let lse { lse[r * H + h] = logSum }
            }
        }

        static let poolTask: @convention(c) (UnsafeMutableRawPointer?, Int) -> Void = { raw, i in
            raw!.assumingMemoryBound(to: RowAttentionTask.self).pointee.run(i)
        }
    }
}
