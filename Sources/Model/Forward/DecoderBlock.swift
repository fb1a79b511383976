import Foundation
import Kernels
import Quantization

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
///
/// Groups hold index ranges into flat arrays (`adapterSets`, `chunkRanges`) rather than arrays of
/// their own, so a serving step rebuilds its rows in the workspace's arrays (`Workspace.servingRows`,
/// capacity kept) without allocating.
public struct BlockRows {
    public enum LinearGroup {
        /// Rows r0..<r1, each multiplied as if alone (`forwardRows`, batch-invariant decoding);
        /// `adapterSets[sets.lowerBound + i]` is row r0 + i's, applied one row at a time.
        case rows(Range<Int>, sets: Range<Int>)
        /// Prefill chunks of several sequences (`chunkRanges[chunks]`), each multiplied as one `forward`
        /// of its rows alone (`forwardChunks`: a quantized weight's tiles dequantized once for all of
        /// them); `adapterSets[sets.lowerBound + i]` is chunk i's.
        case chunks(Range<Int>, sets: Range<Int>)
    }

    /// T, the number of rows.
    public internal(set) var count: Int
    /// [T] rotary position of each row.
    public internal(set) var positions: [Int32]
    /// [T] first key index (within its segment's keys) each row may see, before the sliding
    /// window; nil: 0 for every row. Packed training rows use it to keep records apart.
    public internal(set) var firstKey: [Int32]?
    public internal(set) var segments: [AttentionSegment]
    public internal(set) var groups: [LinearGroup]
    /// The adapter sets groups index (one per decode row, one per prefill chunk).
    public internal(set) var adapterSets: [AdapterSet]
    /// The row ranges `.chunks` groups index.
    public internal(set) var chunkRanges: [Range<Int>]
    /// Largest n * (past + n) over segments: one head's score matrix.
    var maxScores: Int

    public init(positions: [Int32], firstKey: [Int32]? = nil, segments: [AttentionSegment], groups: [LinearGroup],
                adapterSets: [AdapterSet], chunkRanges: [Range<Int>] = []) {
        precondition(firstKey == nil || firstKey!.count == positions.count)
        count = positions.count
        self.positions = positions
        self.firstKey = firstKey
        self.segments = segments
        self.groups = groups
        self.adapterSets = adapterSets
        self.chunkRanges = chunkRanges
        maxScores = 0
        updateMaxScores()
    }

    mutating func updateMaxScores() {
        maxScores = 0
        for s in segments { maxScores = max(maxScores, s.rows.count * (s.past + s.rows.count)) }
    }

    /// Empties every array, keeping its capacity (the next `serving` build reuses it).
    mutating func removeAll() {
        count = 0
        firstKey = nil
        positions.removeAll(keepingCapacity: true)
        segments.removeAll(keepingCapacity: true)
        groups.removeAll(keepingCapacity: true)
        adapterSets.removeAll(keepingCapacity: true)
        chunkRanges.removeAll(keepingCapacity: true)
        maxScores = 0
    }

    /// B records of T rows each (a training micro-batch, rows flattened to N = B*T): each record
    /// attends within itself (`firstKey` for packed records), every row multiplied together
    /// through one adapter set.
    public static func records(_ B: Int, length T: Int, positions: [Int32], firstKey: [Int32]?,
                               adapters: AdapterSet) -> BlockRows {
        BlockRows(positions: positions, firstKey: firstKey,
                  segments: (0..<B).map { AttentionSegment(rows: ($0 * T)..<(($0 + 1) * T)) },
                  groups: [.chunks(0..<1, sets: 0..<1)], adapterSets: [adapters], chunkRanges: [0..<(B * T)])
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
        do {
            // Attention sublayer.
            if let s { s.xIn.pointer.update(from: x, count: T * D) }
            layer.attnNorm.withUnsafeBufferPointer { w in
                RMSNorm.forward(x, weight: w.baseAddress!, eps: c.rmsNormEps, tokens: T, dim: D, into: xn1)
            }
            let qkvGrouped = baseRowsGroup(rows, xn1, (layer.q, q), (layer.k, k), (layer.v, v))
            linear(layer.q, .q, l, rows, xn1, q, baseDone: qkvGrouped)
            linear(layer.k, .k, l, rows, xn1, k, baseDone: qkvGrouped)
            linear(layer.v, .v, l, rows, xn1, v, baseDone: qkvGrouped)
            // Frozen biases (Qwen2): constants, so the backward is unchanged.
            LayerWeights.addBias(layer.qBias, to: q, tokens: T)
            LayerWeights.addBias(layer.kBias, to: k, tokens: T)
            LayerWeights.addBias(layer.vBias, to: v, tokens: T)
            let angles = ws.rotaryTable(rope, positions: rows.positions)
            rope.apply(q, tokens: T, heads: c.numHeads, cos: angles.cos, sin: angles.sin)
            rope.apply(k, tokens: T, heads: c.numKVHeads, cos: angles.cos, sin: angles.sin)
            attention(l, rows, q: q, k: k, v: v, out: att, scores: ws.scores.pointer, lse: s?.lse.pointer)
            linear(layer.o, .o, l, rows, att, x, accumulate: true)
            if let s { s.xMid.pointer.update(from: x, count: T * D) }

            // MLP sublayer.
            layer.mlpNorm.withUnsafeBufferPointer { w in
                RMSNorm.forward(x, weight: w.baseAddress!, eps: c.rmsNormEps, tokens: T, dim: D, into: xn2)
            }
            let gateUpGrouped = baseRowsGroup(rows, xn2, (layer.gate, gate), (layer.up, up), nil)
            linear(layer.gate, .gate, l, rows, xn2, gate, baseDone: gateUpGrouped)
            linear(layer.up, .up, l, rows, xn2, up, baseDone: gateUpGrouped)
            Activations.swiglu(gate: gate, up: up, into: act, count: T * F)
            linear(layer.down, .down, l, rows, act, x, accumulate: true)
        }
    }

    /// Rows of a segment per attention task: a block of queries attends to the keys its last row sees.
    public static let attentionBlockRows = 64

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
    ///
    /// A segment's work is cut into tasks of (head, block of `attentionBlockRows` rows): a block's
    /// scores cover only the keys its last row sees (past + the block's end), not the segment's
    /// later keys, so a long prefill chunk skips most of the causal mask's zeros. Large segments
    /// spread their tasks over the pool (one region per segment and layer; each task's products are
    /// single-threaded, in the thread's `ThreadScratch`); a decode row's few tasks run in turn on the
    /// calling thread. A task's arithmetic depends on its own rows and keys only, never on the split.
    /// When every segment's keys are its own rows (training, scoring: no cache, no past) the same
    /// blocks go through `attentionOwnKeys`, which spreads all (segment, head) pairs over one region:
    /// the same products in the same shapes, so the same bits.
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
        let block = Self.attentionBlockRows
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
            let blocks = (n + block - 1) / block
            let tasks = H * blocks
            // Tasks h-major: task i is head i / blocks, row block i % blocks.
            func run(_ part: Range<Int>, _ scratch: UnsafeMutablePointer<Float>?) {
                for task in part {
                    let h = task / blocks, b = task % blocks
                    let kvh = h / group
                    let t0 = b * block, t1 = min(n, t0 + block), rb = t1 - t0
                    let Sb = p0 + t1   // keys the block's last row sees
                    let sc = scratch ?? ThreadScratch.attention.floats(rb * Sb)
                    // scores[rb, Sb] = Q_h[t0..<t1, E] · K_h[0..<Sb]ᵀ * scale
                    BLAS.sgemm(transB: true, m: rb, n: Sb, k: E, alpha: scale,
                               a: qs + t0 * qDim + h * E, lda: qDim, b: K + kvh * E, ldb: kvDim, c: sc, ldc: Sb)
                    // Causal: row t (key index p0+t) sees keys lo...p0+t; lo from the record start
                    // (packing) and the sliding window, when the model has one.
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
            }
            // Multiply-adds of the segment's products, the causal half skipped: about H·n·S·E.
            if Parallel.threads > 1 && !Parallel.insideRegion && tasks > 1 && H * n * S * E >= Self.attentionParallelMACs {
                Parallel.forEachChunk(tasks, chunksPerThread: tasks) { part in run(part, nil) }
            } else {
                // In turn on this thread: `scores` holds n * S floats, every block's rb * Sb.
                run(0..<tasks, scores)
            }
        }
    }

    /// Query rows per block of `attentionOwnKeys` (the same blocks as `attention`'s tasks).
    public static var attentionRowBlock: Int { attentionBlockRows }

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

    /// Segments with fewer multiply-adds run their attention on the calling thread (a region costs
    /// more than a decode row's few heads).
    public static let attentionParallelMACs = 1 << 20

    /// Maximal runs of consecutive rows whose adapter sets (`sets[within]`) hold the same adapters:
    /// run number `run`'s indices into `sets`, or with `run` -1 the number of runs as 0..<count.
    /// Scans a step's few rows without allocating.
    @inline(__always)
    static func adapterRuns(_ sets: UnsafeBufferPointer<AdapterSet>, within: Range<Int>, run: Int) -> Range<Int> {
        var i = within.lowerBound, n = 0
        while i < within.upperBound {
            var j = i + 1
            while j < within.upperBound && sets[j].isSame(as: sets[i]) { j += 1 }
            if n == run { return i..<j }
            n += 1
            i = j
        }
        return 0..<n
    }

    /// One `.rows` group's adapter runs for one module, as pool tasks: task i applies run i's low-rank
    /// terms to its rows. Lives on the caller's stack for the region (`Parallel.runTasks`), so spreading
    /// the runs over the pool allocates nothing (a Swift closure region allocates once per call).
    struct AdapterRunsTask {
        let sets: UnsafeBufferPointer<AdapterSet>
        let within: Range<Int>          // the group's indices into `sets`
        let firstRow: Int               // the group's first row (sets index within.lowerBound)
        let layer: Int
        let module: LinearModule
        let x: UnsafePointer<Float>, k: Int
        let y: UnsafeMutablePointer<Float>, n: Int
        let context: ComputeContext

        func run(_ i: Int) {
            let rr = LlamaModel.adapterRuns(sets, within: within, run: i)
            let set = sets[rr.lowerBound]
            if set.isEmpty { return }
            let row = firstRow + (rr.lowerBound - within.lowerBound)
            set.applyRows(layer: layer, module: module, x: x + row * k, ldx: k, rows: rr.count, y: y + row * n, ldy: n)
        }

        static let poolTask: @convention(c) (UnsafeMutableRawPointer?, Int) -> Void = { raw, i in
            let t = raw!.assumingMemoryBound(to: AdapterRunsTask.self)
            Parallel.runChunk(t.pointee.context) { t.pointee.run(i) }
        }
    }

    /// Decode rows only (one `.rows` group, as in a decode or serving step without prefill chunks): the base
    /// products of two or three weights sharing the input x (q/k/v, gate/up) as one pool region when all of
    /// them take int8 activations (`Q8ActivationRows.forwardRowsGroup`: x quantized once, one fork and join
    /// instead of one per weight, the same bits). Returns whether it did; then `linear(..., baseDone: true)`
    /// adds each module's adapter terms.
    @inline(__always)
    func baseRowsGroup(_ rows: BlockRows, _ x: UnsafePointer<Float>, _ a: (LinearWeight, UnsafeMutablePointer<Float>),
                       _ b: (LinearWeight, UnsafeMutablePointer<Float>), _ c: (LinearWeight, UnsafeMutablePointer<Float>)?) -> Bool {
        guard rows.groups.count == 1, case let .rows(r, _) = rows.groups[0] else { return false }
        let K = a.0.inFeatures, t0 = r.lowerBound
        return Q8ActivationRows.forwardRowsGroup(a.0, into: a.1 + t0 * a.0.outFeatures, b.0, into: b.1 + t0 * b.0.outFeatures,
                                                 c?.0, into: c.map { $0.1 + t0 * $0.0.outFeatures }, x: x + t0 * K, rows: r.count)
    }

    /// Y[T, N] = X[T, K] · Wᵀ (+ Y) plus each group's adapters' low-rank update for this module.
    /// `baseDone`: `baseRowsGroup` already wrote the base product of the (single) `.rows` group.
    @inline(__always)
    func linear(_ w: LinearWeight, _ module: LinearModule, _ layer: Int, _ rows: BlockRows,
                _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, accumulate: Bool = false, baseDone: Bool = false) {
        let K = w.inFeatures, N = w.outFeatures
        for g in rows.groups {
            switch g {
            case let .rows(r, setRange):
                if !baseDone {
                    w.forwardRows(x + r.lowerBound * K, rows: r.count, into: y + r.lowerBound * N, accumulate: accumulate)
                }
                // Runs of consecutive rows under the same adapters take their low-rank terms in one
                // `applyRows` (each adapter matrix read once for the run; each row's bits as if alone),
                // and runs are spread over the pool: with many adapters this is the step's memory traffic.
                rows.adapterSets.withUnsafeBufferPointer { sets in
                    let runs = Self.adapterRuns(sets, within: setRange, run: -1).count
                    var task = AdapterRunsTask(sets: sets, within: setRange, firstRow: r.lowerBound, layer: layer, module: module,
                                               x: x, k: K, y: y, n: N, context: .current)
                    if runs <= 1 || Parallel.chunkCount(runs) <= 1 {
                        for i in 0..<runs { task.run(i) }
                    } else if !withUnsafeMutablePointer(to: &task, { Parallel.runTasks(runs, AdapterRunsTask.poolTask, $0) }) {
                        // The pool is busy (a nested call, another budget's region): `forEachChunk`'s other way.
                        Parallel.forEachChunk(runs) { chunk in for i in chunk { task.run(i) } }
                    }
                }
            case let .chunks(chunkIndices, setRange):
                // Each chunk's bits are those of its own `forward`; a quantized weight dequantizes
                // each tile once for all the chunks (prompts arriving together prefill together).
                // (A prefill step, not a decode one: the one chunks group of a serving step or of training
                // is the whole array, passed as it is; another slice is copied.)
                let chunks = chunkIndices == rows.chunkRanges.indices ? rows.chunkRanges : Array(rows.chunkRanges[chunkIndices])
                w.forwardChunks(x, chunks: chunks, into: y, accumulate: accumulate)
                for (i, r) in chunks.enumerated() {
                    let set = rows.adapterSets[setRange.lowerBound + i]
                    if set.isEmpty { continue }
                    set.apply(layer: layer, module: module, x: x + r.lowerBound * K, tokens: r.count, y: y + r.lowerBound * N)
                }
            }
        }
    }
}
