import CKernels

/// One decode row's attention for one head against its sequence's cached keys (`ck_attention_row`):
/// scores[j] = scale · (q · K[j]) for lo ≤ j < S, the softmax over them in place (`Activations.softmax`'s
/// kernel, so the project keeps one softmax), out[E] = Σ_j scores[j] · V[j]; returns the log-sum-exp.
/// q [E]; K, V [S, ld] (the head's E columns of each cached position); scores holds S floats.
/// Each score is 8 lanes of products in order plus a fixed tree, each output element one sum over j in
/// order: a row's bits depend on its own query, keys and values only (batch-invariant decoding), and
/// are the same with AVX2 or without.
public enum AttentionRow {
    @inline(__always)
    public static func forward(q: UnsafePointer<Float>, keys: UnsafePointer<Float>, values: UnsafePointer<Float>, ld: Int,
                               headSize E: Int, first lo: Int, count S: Int, scale: Float,
                               scores: UnsafeMutablePointer<Float>, into out: UnsafeMutablePointer<Float>) -> Float {
        ck_attention_row(q, keys, values, ld, E, lo, S, scale, scores, out, Activations.useSIMD ? 1 : 0)
    }

    /// The same arithmetic without AVX2 (what CPUs without it run), for tests.
    public static func forwardPortable(q: UnsafePointer<Float>, keys: UnsafePointer<Float>, values: UnsafePointer<Float>, ld: Int,
                                       headSize E: Int, first lo: Int, count S: Int, scale: Float,
                                       scores: UnsafeMutablePointer<Float>, into out: UnsafeMutablePointer<Float>) -> Float {
        ck_attention_row_portable(q, keys, values, ld, E, lo, S, scale, scores, out, Activations.useSIMD ? 1 : 0)
    }
}
