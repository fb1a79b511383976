import CKernels

/// Dropout keep-masks drawn from a counter-based hash (`ck_dropout_mask`, dropout_mask.c): element i of a
/// mask is kept iff a 32-bit hash of (i, key) is at least round(p · 2^32), so each element is dropped with
/// probability p (to 2^-32), a mask depends on its key and length alone, and the words are drawn 8 elements
/// per vector (AVX2, with a portable twin giving the same bits; `Activations.useSIMD` picks one).
public enum DropoutMask {
    /// The hash threshold of drop probability p in [0, 1).
    @inline(__always)
    public static func threshold(dropout p: Float) -> UInt32 {
        UInt32(min((Double(max(p, 0)) * 4_294_967_296).rounded(), 4_294_967_295))
    }

    /// Keep bits of `count` elements into bits[(count + 63) / 64]: element i is bit i % 64 of word i / 64,
    /// 1 = kept; bits past `count` are 0. Indices are taken modulo 2^32.
    public static func fill(_ bits: UnsafeMutablePointer<UInt64>, count: Int, key: UInt64, dropout p: Float) {
        let k1 = UInt32(truncatingIfNeeded: key), k2 = UInt32(truncatingIfNeeded: key >> 32)
        let t = threshold(dropout: p)
        if Activations.useSIMD { ck_dropout_mask(bits, count, k1, k2, t) } else { ck_dropout_mask_ref(bits, count, k1, k2, t) }
    }
}
