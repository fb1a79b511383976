import CKernels

/// RMSNorm as LlamaRMSNorm computes it in fp32: y = w * x / sqrt(mean(x²) + eps).
/// Rows go through `ck_rmsnorm_rows` (AVX2 where the CPU has it and `Activations.useSIMD`, else its portable
/// twin, the same bits): the sum of squares in 8 lanes and a fixed tree, so a row's bits depend on that row alone.
public enum RMSNorm {
    /// X[T, D] -> Y[T, D]. `y` may alias `x`. Many rows are split over `Parallel`'s pool; a row's
    /// arithmetic depends on that row alone, so the bits are those of `forwardRows` over all rows.
    public static func forward(_ x: UnsafePointer<Float>, weight: UnsafePointer<Float>, eps: Float,
                               tokens: Int, dim: Int, into y: UnsafeMutablePointer<Float>) {
        forEachRowChunk(tokens, dim: dim) { r in forwardRows(x, weight: weight, eps: eps, r, dim: dim, into: y) }
    }

    /// `forward` of rows in `rows`, on the calling thread (the plain twin of the split).
    @inline(__always)
    public static func forwardRows(_ x: UnsafePointer<Float>, weight: UnsafePointer<Float>, eps: Float,
                                   _ rows: Range<Int>, dim: Int, into y: UnsafeMutablePointer<Float>) {
        guard !rows.isEmpty else { return }
        let xr = x + rows.lowerBound * dim, yr = y + rows.lowerBound * dim
        if Activations.useSIMD {
            ck_rmsnorm_rows(xr, weight, eps, rows.count, dim, yr)
        } else {
            ck_rmsnorm_rows_ref(xr, weight, eps, rows.count, dim, yr)
        }
    }

    /// Plain reference twin in Double, for tests.
    public static func reference(_ x: [Float], weight: [Float], eps: Float, tokens: Int, dim: Int) -> [Float] {
        var y = [Float](repeating: 0, count: x.count)
        for t in 0..<tokens {
            var ss = 0.0
            for i in 0..<dim { ss += Double(x[t * dim + i]) * Double(x[t * dim + i]) }
            let inv = 1 / (ss / Double(dim) + Double(eps)).squareRoot()
            for i in 0..<dim { y[t * dim + i] = Float(Double(weight[i]) * Double(x[t * dim + i]) * inv) }
        }
        return y
    }
}

extension RMSNorm {
    /// Backward of `forward` for a frozen weight: dX[T, D] += ∂y/∂x · dY[T, D].
    /// With r = 1/sqrt(mean(x²) + eps) and g = w ⊙ dy: dx = r·g - x · r³ · Σ(g ⊙ x) / D (`ck_rmsnorm_backward_rows`,
    /// its sums in the forward's lane order).
    /// Rows split over the pool as in `forward`.
    public static func backward(_ x: UnsafePointer<Float>, weight: UnsafePointer<Float>, eps: Float,
                                dy: UnsafePointer<Float>, tokens: Int, dim: Int, dx: UnsafeMutablePointer<Float>) {
        forEachRowChunk(tokens, dim: dim) { r in backwardRows(x, weight: weight, eps: eps, dy: dy, r, dim: dim, dx: dx) }
    }

    /// `backward` of rows in `rows`, on the calling thread (the plain twin of the split).
    @inline(__always)
    public static func backwardRows(_ x: UnsafePointer<Float>, weight: UnsafePointer<Float>, eps: Float,
                                    dy: UnsafePointer<Float>, _ rows: Range<Int>, dim: Int, dx: UnsafeMutablePointer<Float>) {
        guard !rows.isEmpty else { return }
        let o = rows.lowerBound * dim
        if Activations.useSIMD {
            ck_rmsnorm_backward_rows(x + o, weight, eps, dy + o, rows.count, dim, dx + o)
        } else {
            ck_rmsnorm_backward_rows_ref(x + o, weight, eps, dy + o, rows.count, dim, dx + o)
        }
    }
}

extension RMSNorm {
    /// Rows of at least `Activations.parallelMinimumElements` elements in all are split over the pool.
    @inline(__always)
    static func forEachRowChunk(_ tokens: Int, dim: Int, _ body: (Range<Int>) -> Void) {
        let minRows = max(1, Activations.parallelMinimumElements / max(1, dim))
        if tokens < 2 * minRows || Parallel.threads <= 1 || Parallel.insideRegion {
            body(0..<tokens)
            return
        }
        Parallel.forEachChunk(tokens, minChunk: minRows, body)
    }
}
