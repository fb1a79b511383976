import CBLAS
import Foundation

/// The only place that calls cblas. Every dense matrix product of the project goes through here.
///
/// Shapes use row-major storage throughout: a matrix of M rows and K columns is `M*K` floats.
///
/// Threads: a large product is split over `Parallel`'s pool (rows of C, or columns when C is wider
/// than tall), each part a single-threaded OpenBLAS call; OpenBLAS itself runs one thread. So one
/// pool does all the work: OpenBLAS's own threads (which wait for work spinning and yielding) never
/// compete with ours for the cores, and each product uses the calling work's budget
/// (`ComputeContext`), not one process-wide count. Each element of C is still one sum over K, but
/// OpenBLAS picks kernels by the size of each part, so the bits can differ from an unsplit product
/// (within the same rounding bound); the split depends on the shape and the budget only, so a given
/// product under a given budget always computes the same bits. `LORA_BLAS=openblas` restores
/// OpenBLAS's own threading (for A/B figures).
public enum BLAS {
    /// Whether large products are split over `Parallel`'s pool (else OpenBLAS threads them itself).
    public static let splitOverPool = ProcessInfo.processInfo.environment["LORA_BLAS"] != "openblas"

    /// Products of fewer multiply-adds run whole on the calling thread (a split costs a region).
    static let splitMinimumMACs = 1 << 20

    /// Sets OpenBLAS's thread count (its own pool, separate from `Parallel`); 1 whatever `n` is
    /// when products are split over our pool.
    public static func setThreads(_ n: Int) {
        openblas_set_num_threads(Int32(splitOverPool ? 1 : max(1, n)))
    }

    /// OpenBLAS starts with one thread per core; ours split instead (see the type's comment).
    private static let singleThreaded: Void = { if splitOverPool { openblas_set_num_threads(1) } }()

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
        _ = singleThreaded
        if splitOverPool && m * n * k >= splitMinimumMACs && Parallel.threads > 1 && !Parallel.insideRegion {
            if m >= n {
                // Rows of C: rows of op(A).
                Parallel.forEachChunk(m, minChunk: 32) { r in
                    let aPart = transA ? a + r.lowerBound : a + r.lowerBound * lda
                    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                                Int32(r.count), Int32(n), Int32(k), alpha, aPart, Int32(lda), b, Int32(ldb),
                                beta, c + r.lowerBound * ldc, Int32(ldc))
                }
            } else {
                // Columns of C: columns of op(B).
                Parallel.forEachChunk(n, minChunk: 32) { r in
                    let bPart = transB ? b + r.lowerBound * ldb : b + r.lowerBound
                    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                                Int32(m), Int32(r.count), Int32(k), alpha, a, Int32(lda), bPart, Int32(ldb),
                                beta, c + r.lowerBound, Int32(ldc))
                }
            }
            return
        }
        cblas_sgemm(CblasRowMajor,
                    transA ? CblasTrans : CblasNoTrans,
                    transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k),
                    alpha, a, Int32(lda), b, Int32(ldb),
                    beta, c, Int32(ldc))
    }
}
