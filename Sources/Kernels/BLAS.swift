import CBLAS

/// The only place that calls cblas. Every dense matrix product of the project goes through here.
///
/// Shapes use row-major storage throughout: a matrix of M rows and K columns is `M*K` floats.
public enum BLAS {
    /// Sets OpenBLAS's thread count (its own pool, separate from `Parallel`).
    public static func setThreads(_ n: Int) {
        openblas_set_num_threads(Int32(max(1, n)))
    }

    /// C[M, N] = alpha * op(A) · op(B) + beta * C, all row-major.
    /// op(A) is [M, K]: A is stored [M, K], or [K, M] when `transA`.
    /// op(B) is [K, N]: B is stored [K, N], or [N, K] when `transB`.
    @inline(__always)
    public static func sgemm(transA: Bool = false, transB: Bool = false,
                             m: Int, n: Int, k: Int,
                             alpha: Float = 1,
                             a: UnsafePointer<Float>, lda: Int? = nil,
                             b: UnsafePointer<Float>, ldb: Int? = nil,
                             beta: Float = 0,
                             c: UnsafeMutablePointer<Float>, ldc: Int? = nil) {
        if m == 0 || n == 0 { return }
        let lda = lda ?? (transA ? m : k)
        let ldb = ldb ?? (transB ? k : n)
        let ldc = ldc ?? n
        cblas_sgemm(CblasRowMajor,
                    transA ? CblasTrans : CblasNoTrans,
                    transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k),
                    alpha, a, Int32(lda), b, Int32(ldb),
                    beta, c, Int32(ldc))
    }
}
