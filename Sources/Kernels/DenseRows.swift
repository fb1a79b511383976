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
}
