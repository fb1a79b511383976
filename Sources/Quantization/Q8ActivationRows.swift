import CKernels
import Kernels

/// Decode rows with int8 activations: Y[T, N] = X[T, K] · Wᵀ (+ Y) for a Q4_1 or Q8_0 weight, X quantized
/// per row per block of 32 (`ck_q8_quantize_rows`: d = amax / 127, q = round(x / d); or two digits,
/// `ck_q8x2_quantize_rows`, see `Digits`) on the calling thread,
/// then integer dots per block (`ck_q4_1_q8_rows`), weight rows split over the pool as `QuantizedRowsJob`
/// splits them. Each output element is computed whole by one kernel call whose arithmetic depends on its
/// input row and weight row only (CKernels.h), and a row's quantization depends on that row only, so a
/// row's bits do not depend on T, on the split or on the build (AVX2, VNNI, portable).
///
/// The quantized input lives in the calling thread's scratch (`QuantizedScratch.q8Activations`): allocated
/// when a thread first needs that much, then reused, so decoding allocates nothing per token.
public enum Q8ActivationRows {
    public enum Format: Sendable { case q4_1, q8_0 }

    /// int8 digits per input element: one (`ck_q8_quantize_rows`, the layers' inputs) or two (`ck_q8x2_quantize_rows`,
    /// x ~ e * (256 * q_hi + q_lo), about 15 bits: the output head's under `DecodeActivations.q8`).
    public enum Digits: Int, Sendable { case one = 1, two = 2 }

    /// T rounded up to the quantizer's groups of 8 rows (CKernels.h: the padding rows are zeros).
    @inline(__always)
    static func paddedRows(_ T: Int) -> Int { (T + 7) / 8 * 8 }

    /// Floats of scratch for T rows of K: d and s [Tp / 8, K/32, 8] each, then q [Tp, digits * K] bytes (Tp = paddedRows(T)).
    @inline(__always)
    static func scratchFloats(rows T: Int, k: Int, digits: Digits) -> Int {
        paddedRows(T) * (k / 32) * 2 + (paddedRows(T) * k * digits.rawValue + 3) / 4
    }

    /// The kernel the current dispatch selects for `format` and `digits`.
    @inline(__always)
    static func kernel(_ format: Format, digits: Digits = .one) -> ck_q8_rows_fn {
        let avx2 = QuantizedKernelDispatch.useAVX2, vnni = QuantizedKernelDispatch.useVNNI
        switch (format, digits) {
        case (.q4_1, .one): return !avx2 ? ck_q4_1_q8_rows_ref : vnni ? ck_q4_1_q8_rows_vnni : ck_q4_1_q8_rows
        case (.q8_0, .one): return !avx2 ? ck_q8_0_q8_rows_ref : vnni ? ck_q8_0_q8_rows_vnni : ck_q8_0_q8_rows
        case (.q4_1, .two): return !avx2 ? ck_q4_1_q8x2_rows_ref : vnni ? ck_q4_1_q8x2_rows_vnni : ck_q4_1_q8x2_rows
        case (.q8_0, .two): return !avx2 ? ck_q8_0_q8x2_rows_ref : vnni ? ck_q8_0_q8x2_rows_vnni : ck_q8_0_q8x2_rows
        }
    }

    /// X[T, K] quantized into the calling thread's scratch in the kernels' layout (CKernels.h), the one place
    /// that knows it: q [Tp, digits * K] bytes (two digits: per block the 32 high digits, then the 32 low
    /// ones), d and s [Tp / 8, K/32, 8] (Tp = paddedRows(T)). Valid until this thread's next quantization.
    @inline(__always)
    static func quantize(_ x: UnsafePointer<Float>, rows T: Int, k: Int, digits: Digits = .one)
        -> (q: UnsafeMutablePointer<Int8>, d: UnsafeMutablePointer<Float>, s: UnsafeMutablePointer<Float>) {
        let scratch = QuantizedScratch.q8Activations(scratchFloats(rows: T, k: k, digits: digits))
        let tp = paddedRows(T), bpr = k / 32
        let xd = scratch, xs = scratch + tp * bpr
        let xq = UnsafeMutableRawPointer(scratch + tp * bpr * 2).assumingMemoryBound(to: Int8.self)
        switch (digits, QuantizedKernelDispatch.useAVX2) {
        case (.one, true): ck_q8_quantize_rows(x, T, k, xq, xd, xs)
        case (.one, false): ck_q8_quantize_rows_ref(x, T, k, xq, xd, xs)
        case (.two, true): ck_q8x2_quantize_rows(x, T, k, xq, xd, xs)
        case (.two, false): ck_q8x2_quantize_rows_ref(x, T, k, xq, xd, xs)
        }
        return (xq, xd, xs)
    }

    /// Y[T, N] = X[T, K] · Wᵀ (+ Y), W's N * K / 32 blocks at `blocks`.
    @inline(__always)
    static func run(_ format: Format, digits: Digits = .one, blocks: UnsafePointer<UInt8>, blocksPerRow bpr: Int, n: Int,
                    x: UnsafePointer<Float>, rows T: Int, y: UnsafeMutablePointer<Float>, accumulate: Bool) {
        if T <= 0 { return }
        let (xq, xd, xs) = quantize(x, rows: T, k: bpr * 32, digits: digits)
        let kernel = Self.kernel(format, digits: digits)
        let chunks = Parallel.chunkCount(n, minChunk: 64, chunksPerThread: 4)
        if chunks <= 1 {
            kernel(blocks, bpr, 0, n, xq, xd, xs, T, y, n, accumulate ? 1 : 0)
            return
        }
        var job = ck_q8_rows_job(kernel: kernel, blocks: blocks, blocksPerRow: bpr, n: n, per: (n + chunks - 1) / chunks,
                                 xq: xq, xd: xd, xs: xs, T: T, y: y, ldy: n, accumulate: accumulate ? 1 : 0)
        if withUnsafeMutablePointer(to: &job, { Parallel.runTasks(chunks, ck_q8_rows_task, UnsafeMutableRawPointer($0)) }) {
            return
        }
        // The pool is busy (a nested call, another budget's region): `forEachChunk`'s other way.
        let (q, d, s) = (UnsafePointer(xq), UnsafePointer(xd), UnsafePointer(xs))
        Parallel.forEachChunk(n, minChunk: 64, chunksPerThread: 4) { r in
            kernel(blocks, bpr, r.lowerBound, r.upperBound, q, d, s, T, y, n, accumulate ? 1 : 0)
        }
    }
}
