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
            linear(layer.q, .q, l, rows, xn1, q, baseDone: qkvGrouped, rowsAdapters: false)
            linear(layer.k, .k, l, rows, xn1, k, baseDone: qkvGrouped, rowsAdapters: false)
            linear(layer.v, .v, l, rows, xn1, v, baseDone: qkvGrouped, rowsAdapters: false)
            rowsAdapterTerms(l, rows, xn1, width: D, AdapterParts((.q, q, layer.q.outFeatures), (.k, k, layer.k.outFeatures),
                                                        (.v, v, layer.v.outFeatures)))
            // Frozen biases (Qwen2): constants, so the backward is unchanged.
            LayerWeights.addBias(layer.qBias, to: q, tokens: T)
            LayerWeights.addBias(layer.kBias, to: k, tokens: T)
            LayerWeights.addBias(layer.vBias, to: v, tokens: T)
            let angles = ws.rotaryTable(rope, positions: rows.positions)
            rope.apply(q, tokens: T, heads: c.numHeads, cos: angles.cos, sin: angles.sin)
            rope.apply(k, tokens: T, heads: c.numKVHeads, cos: angles.cos, sin: angles.sin)
            attention(l, rows, q: q, k: k, v: v, out: att, lse: s?.lse.pointer)
            linear(layer.o, .o, l, rows, att, x, accumulate: true)
            if let s { s.xMid.pointer.update(from: x, count: T * D) }

            // MLP sublayer.
            layer.mlpNorm.withUnsafeBufferPointer { w in
                RMSNorm.forward(x, weight: w.baseAddress!, eps: c.rmsNormEps, tokens: T, dim: D, into: xn2)
            }
            let gateUpGrouped = baseRowsGroup(rows, xn2, (layer.gate, gate), (layer.up, up), nil)
            linear(layer.gate, .gate, l, rows, xn2, gate, baseDone: gateUpGrouped, rowsAdapters: false)
            linear(layer.up, .up, l, rows, xn2, up, baseDone: gateUpGrouped, rowsAdapters: false)
            rowsAdapterTerms(l, rows, xn2, width: D, AdapterParts((.gate, gate, layer.gate.outFeatures), (.up, up, layer.up.outFeatures)))
            Activations.swiglu(gate: gate, up: up, into: act, count: T * F)
            linear(layer.down, .down, l, rows, act, x, accumulate: true)
        }
    }

    /// Pieces of at most `piece` consecutive rows within runs of rows whose adapter sets (`sets[within]`)
    /// hold the same adapters, runs without adapters (the base) left out: piece number `index`'s indices
    /// into `sets`, or with `index` -1 the number of pieces as 0..<count. Scans a step's few rows without
    /// allocating.
    @inline(__always)
    static func adapterPieces(_ sets: UnsafeBufferPointer<AdapterSet>, within: Range<Int>, piece: Int, index: Int) -> Range<Int> {
        var i = within.lowerBound, n = 0
        while i < within.upperBound {
            var j = i + 1
            while j < within.upperBound && sets[j].isSame(as: sets[i]) { j += 1 }
            if !sets[i].isEmpty {
                let pieces = (j - i + piece - 1) / piece
                if index >= n && index < n + pieces {
                    let p0 = i + (index - n) * piece
                    return p0..<min(j, p0 + piece)
                }
                n += pieces
            }
            i = j
        }
        return 0..<n
    }

    /// The modules whose low-rank terms one pool region adds (1 to 3 sharing the input x: q/k/v, gate/up,
    /// or one module alone): each module, its output Y [T, n] and n. A fixed-size value, so building one
    /// allocates nothing.
    struct AdapterParts {
        typealias Part = (module: LinearModule, y: UnsafeMutablePointer<Float>, n: Int)
        let count: Int
        let p0: Part, p1: Part, p2: Part

        init(_ a: Part, _ b: Part? = nil, _ c: Part? = nil) {
            count = c != nil ? 3 : b != nil ? 2 : 1
            p0 = a; p1 = b ?? a; p2 = c ?? a
        }

        @inline(__always)
        subscript(i: Int) -> Part { i == 0 ? p0 : i == 1 ? p1 : p2 }
    }

    /// One `.rows` group's low-rank terms for the modules of `parts` (all over the same input x), as pool
    /// tasks: task i applies piece i's adapters (`adapterPieces`) to its rows for each module in turn (the
    /// rows' x stays in cache across the modules' A products; one region for q/k/v instead of three). Lives
    /// on the caller's stack for the region (`Parallel.runTasks`), so spreading the pieces over the pool
    /// allocates nothing (a Swift closure region allocates once per call).
    struct AdapterRunsTask {
        let sets: UnsafeBufferPointer<AdapterSet>
        let within: Range<Int>          // the group's indices into `sets`
        let firstRow: Int               // the group's first row (sets index within.lowerBound)
        let piece: Int                  // rows per piece at most
        let layer: Int
        let parts: AdapterParts
        let x: UnsafePointer<Float>, k: Int
        let context: ComputeContext

        func run(_ i: Int) {
            let rr = LlamaModel.adapterPieces(sets, within: within, piece: piece, index: i)
            let row = firstRow + (rr.lowerBound - within.lowerBound)
            for p in 0..<parts.count {
                let part = parts[p]
                sets[rr.lowerBound].applyRows(layer: layer, module: part.module, x: x + row * k, ldx: k, rows: rr.count,
                                              y: part.y + row * part.n, ldy: part.n)
            }
        }

        static let poolTask: @convention(c) (UnsafeMutableRawPointer?, Int) -> Void = { raw, i in
            let t = raw!.assumingMemoryBound(to: AdapterRunsTask.self)
            Parallel.runChunk(t.pointee.context) { t.pointee.run(i) }
        }
    }

    /// The `.rows` groups' low-rank terms of `parts` (modules sharing the input x [T, K], K = `width`): runs of consecutive
    /// rows under the same adapters take their terms in pieces of a few rows, one `applyRows` per module each
    /// (each adapter matrix read once for the piece; each row's bits as if alone), spread over the pool in one
    /// region for all of `parts`: with many adapters this is the step's memory traffic, and with one adapter on
    /// every row its terms no longer run on one thread while the others wait. About two pieces a thread, so one
    /// that starts late takes fewer. (`.chunks` groups take theirs in `linear`.)
    @inline(__always)
    func rowsAdapterTerms(_ layer: Int, _ rows: BlockRows, _ x: UnsafePointer<Float>, width K: Int, _ parts: AdapterParts) {
        for g in rows.groups {
            guard case let .rows(r, setRange) = g else { continue }
            rows.adapterSets.withUnsafeBufferPointer { sets in
                let context = ComputeContext.current
                let piece = !Self.spreadDecodeRows ? r.count : max(1, (r.count + 2 * context.threads - 1) / (2 * context.threads))
                let tasks = Self.adapterPieces(sets, within: setRange, piece: piece, index: -1).count
                var task = AdapterRunsTask(sets: sets, within: setRange, firstRow: r.lowerBound, piece: piece, layer: layer,
                                           parts: parts, x: x, k: K, context: context)
                if tasks <= 1 || Parallel.chunkCount(tasks, context: context) <= 1 {
                    for i in 0..<tasks { task.run(i) }
                } else if !withUnsafeMutablePointer(to: &task, { Parallel.runTasks(tasks, AdapterRunsTask.poolTask, $0) }) {
                    // The pool is busy (a nested call, another budget's region): `forEachChunk`'s other way.
                    Parallel.forEachChunk(tasks) { chunk in for i in chunk { task.run(i) } }
                }
            }
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
    /// `rowsAdapters` false: the `.rows` groups' low-rank terms are left to the caller (`rowsAdapterTerms`
    /// over several modules sharing x, one region for all of them).
    @inline(__always)
    func linear(_ w: LinearWeight, _ module: LinearModule, _ layer: Int, _ rows: BlockRows,
                _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, accumulate: Bool = false, baseDone: Bool = false,
                rowsAdapters: Bool = true) {
        let K = w.inFeatures, N = w.outFeatures
        for g in rows.groups {
            switch g {
            case let .rows(r, _):
                if !baseDone {
                    w.forwardRows(x + r.lowerBound * K, rows: r.count, into: y + r.lowerBound * N, accumulate: accumulate)
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
        if rowsAdapters { rowsAdapterTerms(layer, rows, x, width: K, AdapterParts((module, y, N))) }
    }
}
