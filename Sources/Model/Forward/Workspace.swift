import Kernels

/// Scratch buffers for one forward call of T tokens: planned once, grown when a longer call comes,
/// reused across calls so the hot loop allocates nothing. One workspace per thread of execution.
public final class Workspace {
    var x = FloatBuffer(count: 0)        // [T, D] residual stream
    public private(set) var xn = FloatBuffer(count: 0)  // [T, D] normed input of a sublayer
    var q = FloatBuffer(count: 0)        // [T, H*E]
    var k = FloatBuffer(count: 0)        // [T, Hk*E]
    var v = FloatBuffer(count: 0)        // [T, Hk*E]
    /// [T, H*E] attention output before o_proj (also of saving blocks that do not keep it).
    public private(set) var att = FloatBuffer(count: 0)
    var gate = FloatBuffer(count: 0)     // [T, F]
    var up = FloatBuffer(count: 0)       // [T, F]
    /// [T, F] silu(gate) ⊙ up when the block saves activations (the saved gate stays pre-activation).
    public private(set) var act = FloatBuffer(count: 0)
    /// [T, E/2] cos and sin of the rotary angles of `ropePositions` under `ropeFrequencies`: every
    /// block of one forward turns q and k by the same angles, so they are computed once, not per layer.
    var ropeCos = FloatBuffer(count: 0)
    var ropeSin = FloatBuffer(count: 0)
    private var ropePositions: [Int32] = []
    private var ropeFrequencies: [Float] = []

    /// A serving step's rows (`forwardBatch`), rebuilt in place each call: its arrays keep their
    /// capacity, so a decode step allocates nothing.
    var servingRows = BlockRows(positions: [], segments: [], groups: [], adapterSets: [])

    public init() {}

    /// Reserves what `blockForward` over `rows` uses (attention's score blocks live in each thread's
    /// `ThreadScratch.attention`): with `saving`, only the scratch that is not saved (act, xn, att); without, every intermediate, plus the residual stream of `forwardBatch`.
    public func plan(config c: LlamaConfig, rows: BlockRows, saving: Bool) {
        let t = rows.count
        if saving {
            act.reserve(t * c.intermediateSize)
            xn.reserve(t * c.hiddenSize)  // the normed inputs of blocks that do not keep them
            att.reserve(t * c.qDim)       // the attention output of blocks that do not keep it
            return
        }
        x.reserve(t * c.hiddenSize)
        xn.reserve(t * c.hiddenSize)
        q.reserve(t * c.qDim)
        k.reserve(t * c.kvDim)
        v.reserve(t * c.kvDim)
        att.reserve(t * c.qDim)
        gate.reserve(t * c.intermediateSize)
        up.reserve(t * c.intermediateSize)
    }

    /// The rotary table (cos, sin) of `positions` under `rope`, computed when either differs from the
    /// last call's (the first block of a forward), else the same table again.
    func rotaryTable(_ rope: RoPE, positions: [Int32]) -> (cos: UnsafePointer<Float>, sin: UnsafePointer<Float>) {
        if positions != ropePositions || rope.invFreq != ropeFrequencies {
            let n = positions.count * (rope.headDim / 2)
            ropeCos.reserve(n)
            ropeSin.reserve(n)
            positions.withUnsafeBufferPointer { p in
                rope.table(positions: p.baseAddress!, tokens: positions.count, cos: ropeCos.pointer, sin: ropeSin.pointer)
            }
            // Replaced in place: no allocation once the arrays have grown to the longest call.
            ropePositions.removeAll(keepingCapacity: true)
            ropePositions.append(contentsOf: positions)
            ropeFrequencies.removeAll(keepingCapacity: true)
            ropeFrequencies.append(contentsOf: rope.invFreq)
        }
        return (UnsafePointer(ropeCos.pointer), UnsafePointer(ropeSin.pointer))
    }

    deinit {
        for b in [x, xn, q, k, v, att, gate, up, act, ropeCos, ropeSin] { b.free() }
    }
}
