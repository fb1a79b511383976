import Foundation
import Kernels

/// A run of consecutive rows of one sequence in a block forward: its queries attend to keys
/// 0..<past already stored, then to its own rows' keys, causally.
public struct AttentionSegment {
    /// The segment's rows in the batch (row r0 + t is the sequence's key index past + t).
    public var rows: Range<Int>
    /// Keys stored before these rows (a KV cache's count; 0 without a cache).
    public var past: Int
    /// Where keys and values live: a sequence's cache (the rows' keys are appended at `past`), or
    /// nil: the rows' own keys and values in the block's k/v buffers (training, `past` 0).
    public var cache: KVCache?

    public init(rows: Range<Int>, past: Int = 0, cache: KVCache? = nil) {
        self.rows = rows; self.past = past; self.cache = cache
    }
}

/// The rows of one forward through the decoder blocks, and how they are grouped.
/// - Each row has its own token's residual, its rotary position and a first visible key.
/// - Attention runs per `AttentionSegment` (a sequence's rows, against that sequence's keys).
/// - Linear layers run per `LinearGroup`: the base product once per group, then each group's
///   adapters (`LinearDelta.apply`) on the group's rows only.
public struct BlockRows {
    public enum LinearGroup {
        /// Rows r0..<r1, each multiplied as if alone (`forwardRows`, batch-invariant decoding);
        /// `adapters[i]` is row r0 + i's, applied one row at a time.
        case rows(Range<Int>, [AdapterSet])
        /// Prefill chunks of several sequences, each multiplied as one `forward` of its rows alone
        /// (`forwardChunks`: a quantized weight's tiles dequantized once for all of them);
        /// `adapters[i]` is chunk i's.
        case chunks([Range<Int>], [AdapterSet])
    }

    /// T, the number of rows.
    public let count: Int
    /// [T] rotary position of each row.
    public let positions: [Int32]
    /// [T] first key index (within its segment's keys) each row may see, before the sliding
    /// window; nil: 0 for every row. Packed training rows use it to keep records apart.
    public let firstKey: [Int32]?
    public let segments: [AttentionSegment]
    public let groups: [LinearGroup]
    /// Largest n * (past + n) over segments: one head's score matrix.
    let maxScores: Int

    public init(positions: [Int32], firstKey: [Int32]? = nil, segments: [AttentionSegment], groups: [LinearGroup]) {
        precondition(firstKey == nil || firstKey!.count == positions.count)
        count = positions.count
        self.positions = positions
        self.firstKey = firstKey
        self.segments = segments
        self.groups = groups
        maxScores = segments.map { $0.rows.count * ($0.past + $0.rows.count) }.max() ?? 0
    }

    /// B records of T rows each (a training micro-batch, rows flattened to N = B*T): each record
    /// attends within itself (`firstKey` for packed records), every row multiplied together
    /// through one adapter set.
    public static func records(_ B: Int, length T: Int, positions: [Int32], firstKey: [Int32]?,
                               adapters: AdapterSet) -> BlockRows {
        BlockRows(positions: positions, firstKey: firstKey,
                  segments: (0..<B).map { AttentionSegment(rows: ($0 * T)..<(($0 + 1) * T)) },
                  groups: [.chunks([0..<(B * T)], [adapters])])
    }
}

/// Where a block's forward writes the activations the backward reads (training); inference
/// passes none and the block uses workspace scratch. Planned for N rows.
public final class BlockActivations {
    public internal(set) var xIn = FloatBuffer(count: 0)     // [N, D] residual entering the block
    public internal(set) var xn1 = FloatBuffer(count: 0)     // [N, D] attention input (normed)
    public internal(set) var q = FloatBuffer(count: 0)       // [N, H*E] after RoPE
    public internal(set) var k = FloatBuffer(count: 0)       // [N, Hk*E] after RoPE
    public internal(set) var v = FloatBuffer(count: 0)       // [N, Hk*E]
    public internal(set) var lse = FloatBuffer(count: 0)     // [N*H] log-sum-exp of each attention row: segment, head, row
    public internal(set) var att = FloatBuffer(count: 0)     // [N, H*E] attention output (o_proj input)
    public internal(set) var xMid = FloatBuffer(count: 0)    // [N, D] residual after attention
    public internal(set) var xn2 = FloatBuffer(count: 0)     // [N, D] MLP input (normed)
    public internal(set) var gate = FloatBuffer(count: 0)    // [N, F] pre-activation
    public internal(set) var up = FloatBuffer(count: 0)      // [N, F]
    /// Whether xn1 and xn2 are kept. Without, the block writes them to workspace scratch and the
    /// backward recomputes them from xIn and xMid (`RMSNorm.forward`, the same bits): 2·N·D floats
    /// less per layer for two norms more.
    public let keepsNorms: Bool
    /// Whether the attention output is kept. Without, the block writes it to workspace scratch and the
    /// backward rebuilds it from the saved q, k, v (`LlamaModel.attentionOutput`, the same bits):
    /// N·H·E floats less per layer for one more attention forward.
    public let keepsAttention: Bool

    public init(keepingNorms: Bool = true, keepingAttention: Bool = true) {
        keepsNorms = keepingNorms
        keepsAttention = keepingAttention
    }

    public func plan(_ c: LlamaConfig, rows n: Int) {
        xIn.reserve(n * c.hiddenSize)
        if keepsNorms { xn1.reserve(n * c.hiddenSize); xn2.reserve(n * c.hiddenSize) }
        q.reserve(n * c.qDim); k.reserve(n * c.kvDim); v.reserve(n * c.kvDim)
        lse.reserve(n * c.numHeads)
        if keepsAttention { att.reserve(n * c.qDim) }
        xMid.reserve(n * c.hiddenSize)
        gate.reserve(n * c.intermediateSize); up.reserve(n * c.intermediateSize)
    }

    deinit { for b in [xIn, xn1, q, k, v, lse, att, xMid, xn2, gate, up] { b.free() } }
}

extension LlamaModel {
    /// One decoder block on the residual stream x [T, D] (updated in place), for every row of
    /// `rows`: the one block forward of training and inference.
    ///
    /// x += o(attention(rope(q(norm1 x)), rope(k(norm1 x)), v(norm1 x)));
    /// x += down(silu(gate(norm2 x)) ⊙ up(norm2 x)).
    ///
    /// With `saving`, every intermediate the backward needs lands there (and each attention row's
    /// log-sum-exp); without, they live in `ws` and are overwritten by the next block. `ws` must be
    /// planned for `rows` (`Workspace.plan(config:rows:saving:)`). Keys and values of segments with
    /// a cache are stored at the cache's positions past..<past+n; the caller advances the cache.
    /// Deterministic: called again on the same input it writes the same bits (the backward's recompute).
    public func blockForward(_ l: Int, rows: BlockRows, x: UnsafeMutablePointer<Float>, workspace ws: Workspace,
                             saving s: BlockActivations? = nil) {
        let c = config
        let T = rows.count, D = c.hiddenSize, F = c.intermediateSize
        let layer = weights.layers[l]
        let xn1 = s.map { $0.keepsNorms ? $0.xn1.pointer : ws.xn.pointer } ?? ws.xn.pointer
        let q = s?.q.pointer ?? ws.q.pointer, k = s?.k.pointer ?? ws.k.pointer, v = s?.v.pointer ?? ws.v.pointer
        let att = s.map { $0.keepsAttention ? $0.att.pointer : ws.att.pointer } ?? ws.att.pointer
        let xn2 = s.map { $0.keepsNorms ? $0.xn2.pointer : ws.xn.pointer } ?? ws.xn.pointer
        let gate = s?.gate.pointer ?? ws.gate.pointer, up = s?.up.pointer ?? ws.up.pointer
        // Training keeps the pre-activation gate for its backward; inference overwrites it.
        let act = s == nil ? ws.gate.pointer : ws.act.pointer
        rows.positions.withUnsafeBufferPointer { posBuf in
            let pos = posBuf.baseAddress!
            // Attention sublayer.
            if let s { s.xIn.pointer.update(from: x, count: T * D) }
            layer.attnNorm.withUnsafeBufferPointer { w in
                RMSNorm.forward(x, weight: w.baseAddress!, eps: c.rmsNormEps, tokens: T, dim: D, into: xn1)
            }
            linear(layer.q, .q, l, rows, xn1, q)
            linear(layer.k, .k, l, rows, xn1, k)
            linear(layer.v, .v, l, rows, xn1, v)
            // Frozen biases (Qwen2): constants, so the backward is unchanged.
            LayerWeights.addBias(layer.qBias, to: q, tokens: T)
            LayerWeights.addBias(layer.kBias, to: k, tokens: T)
            LayerWeights.addBias(layer.vBias, to: v, tokens: T)
            rope.apply(q, tokens: T, heads: c.numHeads, positions: pos)
            rope.apply(k, tokens: T, heads: c.numKVHeads, positions: pos)
            attention(l, rows, q: q, k: k, v: v, out: att, scores: ws.scores.pointer, lse: s?.lse.pointer)
            linear(layer.o, .o, l, rows, att, x, accumulate: true)
            if let s { s.xMid.pointer.update(from: x, count: T * D) }

            // MLP sublayer.
            layer.mlpNorm.withUnsafeBufferPointer { w in
                RMSNorm.forward(x, weight: w.baseAddress!, eps: c.rmsNormEps, tokens: T, dim: D, into: xn2)
            }
            linear(layer.gate, .gate, l, rows, xn2, gate)
            linear(layer.up, .up, l, rows, xn2, up)
            Activations.swiglu(gate: gate, up: up, into: act, count: T * F)
            linear(layer.down, .down, l, rows, act, x, accumulate: true)
        }
    }

    /// Block `l`'s attention output [T, H*E] (the o_proj input) for the backward: the saved one, or,
    /// when `s` did not keep it, rebuilt into `ws`'s scratch by the forward's own `attention` from the
    /// saved q, k, v (post-RoPE), so the same bits the forward multiplied. Training rows only (segments
    /// without a cache); overwrites `ws`'s attention scores.
    public func attentionOutput(_ l: Int, rows: BlockRows, saved s: BlockActivations,
                                workspace ws: Workspace) -> UnsafePointer<Float> {
        if s.keepsAttention { return UnsafePointer(s.att.pointer) }
        precondition(rows.segments.allSatisfy { $0.cache == nil }, "rebuilding attention needs the rows' own keys")
        attention(l, rows, q: s.q.pointer, k: s.k.pointer, v: s.v.pointer, out: ws.att.pointer,
                  scores: ws.scores.pointer, lse: nil)
        return UnsafePointer(ws.att.pointer)
    }

    /// Causal attention per segment and head: each row's scores against its segment's visible keys,
    /// a softmax, the weighted sum of values. Stores segments' new keys and values in their caches.
    /// lse (when given) gets each row's log-sum-exp at [(r0 * H) + h * n + t] for segment rows r0..<r0+n.
    func attention(_ l: Int, _ rows: BlockRows, q: UnsafePointer<Float>, k: UnsafeMutablePointer<Float>,
                   v: UnsafeMutablePointer<Float>, out: UnsafeMutablePointer<Float>, scores: UnsafeMutablePointer<Float>,
                   lse: UnsafeMutablePointer<Float>?) {
        if rows.segments.allSatisfy({ $0.cache == nil && $0.past == 0 }) {
            attentionOwnKeys(rows, q: q, k: k, v: v, out: out, scores: scores, lse: lse)
            return
        }
        let c = config
        let E = c.headDim, H = c.numHeads, Hk = c.numKVHeads
        let qDim = c.qDim, kvDim = c.kvDim
        let scale = 1 / Float(E).squareRoot()
        let group = H / Hk
        for seg in rows.segments {
            let r0 = seg.rows.lowerBound, n = seg.rows.count
            let p0 = seg.past, S = p0 + n
            let K: UnsafeMutablePointer<Float>, V: UnsafeMutablePointer<Float>
            if let cache = seg.cache {
                K = cache.keys[l]; V = cache.values[l]
                (K + p0 * kvDim).update(from: k + r0 * kvDim, count: n * kvDim)
                (V + p0 * kvDim).update(from: v + r0 * kvDim, count: n * kvDim)
            } else {
                precondition(p0 == 0, "a segment without a cache has no earlier keys")
                K = k + r0 * kvDim; V = v + r0 * kvDim
            }
            let qs = q + r0 * qDim, os = out + r0 * qDim
            for h in 0..<H {
                let kvh = h / group
                // scores[n, S] = Q_h[n, E] · K_hᵀ * scale
                BLAS.sgemm(transB: true, m: n, n: S, k: E, alpha: scale,
                           a: qs + h * E, lda: qDim, b: K + kvh * E, ldb: kvDim, c: scores, ldc: S)
                // Causal: row t (key index p0+t) sees keys lo...p0+t; lo from the record start
                // (packing) and the sliding window, when the model has one.
                // Rows are independent (each its own softmax): many are split over the pool.
                Activations.forEachRowChunk(n, width: S) { part in
                    for t in part {
                        let row = scores + t * S
                        let visible = p0 + t + 1
                        let first = rows.firstKey.map { Int($0[r0 + t]) } ?? 0
                        let lo = max(first, c.firstVisiblePosition(p0 + t))
                        let logSum = Activations.softmax(row + lo, count: visible - lo)
                        if let lse { lse[r0 * H + h * n + t] = logSum }
                        if lo > 0 { row.update(repeating: 0, count: lo) }
                        if visible < S { (row + visible).update(repeating: 0, count: S - visible) }
                    }
                }
                // out_h[n, E] = scores[n, S] · V_h[S, E]
                BLAS.sgemm(m: n, n: E, k: S, a: scores, lda: S, b: V + kvh * E, ldb: kvDim,
                           c: os + h * E, ldc: qDim)
            }
        }
    }

    /// Query rows per block of `attentionOwnKeys`.
    public static let attentionRowBlock = 64

    /// At most this many chunks (each with its own scores scratch) in `attentionOwnKeys`, whatever the
    /// thread count, so the scratch planned by `Workspace.plan` fits any budget the forward runs under.
    public static let ownKeyChunkLimit = 8

    /// How `tasks` are cut for the pool (`Parallel.forEachChunk(tasks, minChunk:, chunksPerThread: 3)`):
    /// the minChunk that keeps the chunks within `ownKeyChunkLimit`, the number of chunks and each one's
    /// tasks, so chunk c (the one starting at c · per) may use scratch c.
    public static func ownKeySplit(_ tasks: Int) -> (minChunk: Int, chunks: Int, per: Int) {
        let minChunk = max(1, (tasks + ownKeyChunkLimit - 1) / ownKeyChunkLimit)
        let chunks = Parallel.chunkCount(tasks, minChunk: minChunk, chunksPerThread: 3)
        return (minChunk, chunks, (tasks + chunks - 1) / max(1, chunks))
    }

    /// Scratch floats `attentionOwnKeys` needs in `scores` for `rows` (0 when a segment has a cache).
    static func ownKeyScores(_ c: LlamaConfig, _ rows: BlockRows) -> Int {
        guard !rows.segments.isEmpty, rows.segments.allSatisfy({ $0.cache == nil && $0.past == 0 }) else { return 0 }
        let n = rows.segments.map(\.rows.count).max() ?? 0
        return min(rows.segments.count * c.numHeads, ownKeyChunkLimit) * min(n, attentionRowBlock) * n
    }

    /// `attention` when every segment's keys are its own rows (training's records, `past` 0): the same
    /// scores, softmax and weighted sums, but (segment, head) pairs split over the pool, each pair's
    /// products whole on its thread (chunk c's scores at c · RB · n, `ownKeySplit`), and a head's query rows in blocks of
    /// `attentionRowBlock` multiplied only with the keys 0..<(block end) they can see: at 256 rows, 62.5% of
    /// the T x T products. A row's scores are the same dot products; its weighted sum leaves out only keys
    /// whose weight is exactly 0. Deterministic, whatever the split (the backward rebuilds from it).
    func attentionOwnKeys(_ rows: BlockRows, q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                          out: UnsafeMutablePointer<Float>, scores: UnsafeMutablePointer<Float>,
                          lse: UnsafeMutablePointer<Float>?) {
        let c = config
        let E = c.headDim, H = c.numHeads, Hk = c.numKVHeads
        let qDim = c.qDim, kvDim = c.kvDim
        let scale = 1 / Float(E).squareRoot()
        let group = H / Hk
        let maxN = rows.segments.map(\.rows.count).max() ?? 0
        let RB = min(maxN, Self.attentionRowBlock)
        let tasks = rows.segments.count * H
        let split = Self.ownKeySplit(tasks), per = split.per
        Parallel.forEachChunk(tasks, minChunk: split.minChunk, chunksPerThread: 3) { part in
            let P = scores + (part.lowerBound / per) * RB * maxN
            for task in part {
                let seg = rows.segments[task / H], h = task % H, kvh = h / group
                let r0 = seg.rows.lowerBound, n = seg.rows.count
                let qs = q + r0 * qDim + h * E, K = k + r0 * kvDim + kvh * E, V = v + r0 * kvDim + kvh * E
                let os = out + r0 * qDim + h * E
                var i0 = 0
                while i0 < n {
                    let i1 = min(n, i0 + RB), nb = i1 - i0, S = i1  // rows i0..<i1 see keys 0..<S at most
                    // scores[nb, S] = Q_h[i0..<i1] · K_h[0..<S]ᵀ * scale
                    BLAS.sgemm(transB: true, m: nb, n: S, k: E, alpha: scale, a: qs + i0 * qDim, lda: qDim,
                               b: K, ldb: kvDim, c: P, ldc: S)
                    for t in i0..<i1 {
                        let row = P + (t - i0) * S
                        let first = rows.firstKey.map { Int($0[r0 + t]) } ?? 0
                        let lo = max(first, c.firstVisiblePosition(t))
                        let logSum = Activations.softmax(row + lo, count: t + 1 - lo)
                        if let lse { lse[r0 * H + h * n + t] = logSum }
                        if lo > 0 { row.update(repeating: 0, count: lo) }
                        if t + 1 < S { (row + t + 1).update(repeating: 0, count: S - t - 1) }
                    }
                    // out_h[i0..<i1] = scores[nb, S] · V_h[0..<S]
                    BLAS.sgemm(m: nb, n: E, k: S, a: P, lda: S, b: V, ldb: kvDim, c: os + i0 * qDim, ldc: qDim)
                    i0 = i1
                }
            }
        }
    }

    /// Maximal runs of consecutive rows whose adapter sets hold the same adapters: run number `run`'s
    /// rows (indices into `sets`), or with `run` -1 the number of runs as 0..<count. Scans `sets`
    /// (a step's few rows) without allocating.
    @inline(__always)
    static func adapterRuns(_ sets: [AdapterSet], run: Int) -> Range<Int> {
        var i = 0, n = 0
        while i < sets.count {
            var j = i + 1
            while j < sets.count && sets[j].isSame(as: sets[i]) { j += 1 }
            if n == run { return i..<j }
            n += 1
            i = j
        }
        return 0..<n
    }

    /// Y[T, N] = X[T, K] · Wᵀ (+ Y) plus each group's adapters' low-rank update for this module.
    @inline(__always)
    func linear(_ w: LinearWeight, _ module: LinearModule, _ layer: Int, _ rows: BlockRows,
                _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, accumulate: Bool = false) {
        let K = w.inFeatures, N = w.outFeatures
        for g in rows.groups {
            switch g {
            case let .rows(r, sets):
                w.forwardRows(x + r.lowerBound * K, rows: r.count, into: y + r.lowerBound * N, accumulate: accumulate)
                // Runs of consecutive rows under the same adapters take their low-rank terms in one
                // `applyRows` (each adapter matrix read once for the run; each row's bits as if alone),
                // and runs are spread over the pool: with many adapters this is the step's memory traffic.
                Parallel.forEachChunk(Self.adapterRuns(sets, run: -1).count) { chunk in
                    for run in chunk {
                        let rr = Self.adapterRuns(sets, run: run)
                        if sets[rr.lowerBound].isEmpty { continue }
                        let row = r.lowerBound + rr.lowerBound
                        sets[rr.lowerBound].applyRows(layer: layer, module: module, x: x + row * K, ldx: K, rows: rr.count,
                                                      y: y + row * N, ldy: N)
                    }
                }
            case let .chunks(chunks, sets):
                // Each chunk's bits are those of its own `forward`; a quantized weight dequantizes
                // each tile once for all the chunks (prompts arriving together prefill together).
                w.forwardChunks(x, chunks: chunks, into: y, accumulate: accumulate)
                for (r, set) in zip(chunks, sets) where !set.isEmpty {
                    set.apply(layer: layer, module: module, x: x + r.lowerBound * K, tokens: r.count, y: y + r.lowerBound * N)
                }
            }
        }
    }
}
