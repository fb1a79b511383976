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
    /// [n, S] one head's attention weights for one segment (the largest n * S of the call).
    public private(set) var scores = FloatBuffer(count: 0)
    /// [T, F] silu(gate) ⊙ up when the block saves activations (the saved gate stays pre-activation).
    public private(set) var act = FloatBuffer(count: 0)

    public init() {}

    /// Reserves what `blockForward` over `rows` uses: with `saving`, only the scratch that is not
    /// saved (scores, act, xn, att); without, every intermediate, plus the residual stream of `forwardBatch`.
    public func plan(config c: LlamaConfig, rows: BlockRows, saving: Bool) {
        let t = rows.count
        scores.reserve(max(rows.maxScores, LlamaModel.ownKeyScores(c, rows)))
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

    deinit {
        for b in [x, xn, q, k, v, att, scores, gate, up, act] { b.free() }
    }
}
