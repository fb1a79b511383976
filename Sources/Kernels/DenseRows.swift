import CKernels

/// Fixed-order fp32 products for a few rows (`ck_dense_rows`): Y[t, r] (= or +=) alpha · Σ_k W[r, k] · X[t, k]
/// for weight rows r0..<r1 of W [N, K] (row-major) and t < T, X [T, ldx], Y [T, ldy]. Each (t, r) is
/// computed whole with an order fixed by K alone (16 lanes, a fixed final tree), so a row's bits do not
/// depend on T, on the row range or on the CPU's vector width: decode rows' LoRA terms use it to stay
/// batch-invariant (an sgemm picks its kernel, and its summation order, by M).
public enum DenseRows {
    public static func forward(_ w: UnsafePointer<Float>, k: Int, rows r: Range<Int>, x: UnsafePointer<Float>, ldx: Int, tokens: Int,
                               into y: UnsafeMutablePointer<Float>, ldy: Int, alpha: Float = 1, accumulate: Bool) {
        ck_dense_rows(w, k, r.lowerBound, r.upperBound, x, ldx, tokens, y, ldy, alpha, accumulate ? 1 : 0)
    }

    /// The same arithmetic without AVX2 (what CPUs without it run), for tests.
    public static func forwardPortable(_ w: UnsafePointer<Float>, k: Int, rows r: Range<Int>, x: UnsafePointer<Float>, ldx: Int, tokens: Int,
                                       into y: UnsafeMutablePointer<Float>, ldy: Int, alpha: Float = 1, accumulate: Bool) {
        ck_dense_rows_portable(w, k, r.lowerBound, r.upperBound, x, ldx, tokens, y, ldy, alpha, accumulate ? 1 : 0)
    }

    /// LoRA's B product on decode rows (`ck_low_rank_rows`): Y[t, n] += alpha · Σ_{r<R} H[t, r] · B[n, r] for
    /// n < N, t < T; B [N, R] row-major, H [T, ldh], Y [T, ldy]. Per (t, n) one running sum over r in order,
    /// then Y + alpha · sum: fixed by R alone (batch-invariant), the same bits with AVX2 or without. The AVX2
    /// body keeps 8 outputs side by side (no horizontal sum per output, which `forward` pays with K = R).
    public static func lowRank(_ b: UnsafePointer<Float>, outputs n: Int, rank r: Int, h: UnsafePointer<Float>, ldh: Int,
                               tokens: Int, into y: UnsafeMutablePointer<Float>, ldy: Int, alpha: Float) {
        precondition(r >= 1, "a low-rank product needs rank >= 1")
        ck_low_rank_rows(b, n, r, h, ldh, tokens, y, ldy, alpha)
    }

    /// The same arithmetic without AVX2 (what CPUs without it run), for tests.
    public static func lowRankPortable(_ b: UnsafePointer<Float>, outputs n: Int, rank r: Int, h: UnsafePointer<Float>, ldh: Int,
                                       tokens: Int, into y: UnsafeMutablePointer<Float>, ldy: Int, alpha: Float) {
        precondition(r >= 1, "a low-rank product needs rank >= 1")
        ck_low_rank_rows_portable(b, n, r, h, ldh, tokens, y, ldy, alpha)
    }
}
