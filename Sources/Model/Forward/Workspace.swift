/// Scratch buffers for one forward call of T tokens: planned once, grown when a longer call comes,
/// reused across calls so the hot loop allocates nothing. One workspace per thread of execution.
public final class Workspace {
    var x = FloatBuffer(count: 0)        // [T, D] residual stream
    var xn = FloatBuffer(count: 0)       // [T, D] normed input of a sublayer
    var q = FloatBuffer(count: 0)        // [T, H*E]
    var k = FloatBuffer(count: 0)        // [T, Hk*E]
    var v = FloatBuffer(count: 0)        // [T, Hk*E]
    var att = FloatBuffer(count: 0)      // [T, H*E] attention output before o_proj
    var scores = FloatBuffer(count: 0)   // [T, S] one head's attention weights
    var gate = FloatBuffer(count: 0)     // [T, F]
    var up = FloatBuffer(count: 0)       // [T, F]
    var positions = [Int32]()

    public init() {}

    func plan(config c: LlamaConfig, tokens t: Int, keys s: Int) {
        x.reserve(t * c.hiddenSize)
        xn.reserve(t * c.hiddenSize)
        q.reserve(t * c.qDim)
        k.reserve(t * c.kvDim)
        v.reserve(t * c.kvDim)
        att.reserve(t * c.qDim)
        scores.reserve(t * s)
        gate.reserve(t * c.intermediateSize)
        up.reserve(t * c.intermediateSize)
        if positions.count < t { positions = [Int32](repeating: 0, count: t) }
    }

    deinit {
        for b in [x, xn, q, k, v, att, scores, gate, up] { b.free() }
    }
}
