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

    // fp16 copies (`HalfMatrix`, decode rows' LoRA A and B): the kernels read the fp16 bits and convert each
    // value exactly as they load it, and the copy's 2^-exponent is folded into alpha, so each result is the
    // fp32 overload's bits on the rounded matrix 2^-exponent · half(bits) (barring a product under 2^-126).

    /// `forward` on an fp16 copy of W (`ck_dense_rows_half`).
    public static func forward(_ w: HalfMatrix, k: Int, rows r: Range<Int>, x: UnsafePointer<Float>, ldx: Int, tokens: Int,
                               into y: UnsafeMutablePointer<Float>, ldy: Int, alpha: Float = 1, accumulate: Bool) {
        precondition(r.upperBound * k <= w.bits.count, "rows past the matrix")
        w.bits.withUnsafeBufferPointer {
            ck_dense_rows_half($0.baseAddress, k, r.lowerBound, r.upperBound, x, ldx, tokens, y, ldy, alpha * w.inverseScale,
                               accumulate ? 1 : 0)
        }
    }

    /// The same arithmetic without AVX2 / F16C (what CPUs without them run), for tests.
    public static func forwardPortable(_ w: HalfMatrix, k: Int, rows r: Range<Int>, x: UnsafePointer<Float>, ldx: Int, tokens: Int,
                                       into y: UnsafeMutablePointer<Float>, ldy: Int, alpha: Float = 1, accumulate: Bool) {
        precondition(r.upperBound * k <= w.bits.count, "rows past the matrix")
        w.bits.withUnsafeBufferPointer {
            ck_dense_rows_half_portable($0.baseAddress, k, r.lowerBound, r.upperBound, x, ldx, tokens, y, ldy,
                                        alpha * w.inverseScale, accumulate ? 1 : 0)
        }
    }

    /// `lowRank` on an fp16 copy of B (`ck_low_rank_rows_half`).
    public static func lowRank(_ b: HalfMatrix, outputs n: Int, rank r: Int, h: UnsafePointer<Float>, ldh: Int,
                               tokens: Int, into y: UnsafeMutablePointer<Float>, ldy: Int, alpha: Float) {
        precondition(r >= 1, "a low-rank product needs rank >= 1")
        precondition(n * r <= b.bits.count, "outputs past the matrix")
        b.bits.withUnsafeBufferPointer { ck_low_rank_rows_half($0.baseAddress, n, r, h, ldh, tokens, y, ldy, alpha * b.inverseScale) }
    }

    /// The same arithmetic without AVX2 / F16C (what CPUs without them run), for tests.
    public static func lowRankPortable(_ b: HalfMatrix, outputs n: Int, rank r: Int, h: UnsafePointer<Float>, ldh: Int,
                                       tokens: Int, into y: UnsafeMutablePointer<Float>, ldy: Int, alpha: Float) {
        precondition(r >= 1, "a low-rank product needs rank >= 1")
        precondition(n * r <= b.bits.count, "outputs past the matrix")
        b.bits.withUnsafeBufferPointer {
            ck_low_rank_rows_half_portable($0.baseAddress, n, r, h, ldh, tokens, y, ldy, alpha * b.inverseScale)
        }
    }
}
