import CKernels
import Foundation
import Kernels

/// Which implementation the Q4_1 / Q8_0 GEMVs use: the AVX2 + FMA + F16C C kernels (`CKernels`) when
/// the CPU has them, else the portable Swift SIMD kernels. Chosen once per process, so every row of
/// every step goes through the same code (batch invariance holds on either path).
public enum QuantizedKernelDispatch {
    /// Whether this CPU can run the AVX2 kernels.
    public static let cpuHasAVX2: Bool = ck_cpu_has_avx2_fma() != 0

    nonisolated(unsafe) private static var _useAVX2 = cpuHasAVX2

    /// Whether the AVX2 kernels are in use. Tests turn it off to exercise the portable path; it must
    /// not change while a forward pass runs.
    public static var useAVX2: Bool {
        get { _useAVX2 }
        set { _useAVX2 = newValue && cpuHasAVX2 }
    }

    /// Whether this CPU also has AVX-512F + AVX-512VL: the AVX2 kernels' build with 32 vector registers
    /// (`ck_q4_1_rows_avx512vl`), the same operations in the same order, so the same bits.
    public static let cpuHasAVX512VL: Bool = ck_cpu_has_avx512vl() != 0

    nonisolated(unsafe) private static var _useAVX512VL =
        cpuHasAVX512VL && ProcessInfo.processInfo.environment["LORA_KERNELS"] != "avx2"

    /// Whether the AVX2 kernels run in their AVX-512VL build (only while `useAVX2`). On by default
    /// where the CPU has it; `LORA_KERNELS=avx2` turns it off for A/B figures, and tests compare both.
    public static var useAVX512VL: Bool {
        get { _useAVX512VL && _useAVX2 }
        set { _useAVX512VL = newValue && cpuHasAVX512VL }
    }
}

/// A decode GEMV on the pool (`ck_rows_job` / `ck_rows_task`): weight rows cut as `Parallel.forEachChunk`
/// would (64 rows at least, 4 chunks per thread), each chunk one C kernel call, and no allocation: the
/// job lives on this stack and no Swift closure is wrapped (a closure region allocated once per call,
/// 211 times a decoded token). Each output element is computed whole by one call with arithmetic fixed
/// per (row, weight row), so the split changes no bits.
enum QuantizedRowsJob {
    @inline(__always)
    static func run(_ kernel: ck_rows_fn, blocks: UnsafePointer<UInt8>, blocksPerRow: Int, n: Int,
                    x: UnsafePointer<Float>, rows T: Int, y: UnsafeMutablePointer<Float>, accumulate: Bool) {
        let chunks = Parallel.chunkCount(n, minChunk: 64, chunksPerThread: 4)
        var job = ck_rows_job(kernel: kernel, blocks: blocks, blocksPerRow: blocksPerRow, n: n, per: (n + chunks - 1) / chunks,
                              x: x, T: T, y: y, ldy: n, accumulate: accumulate ? 1 : 0)
        if chunks > 1 && withUnsafeMutablePointer(to: &job, { Parallel.runTasks(chunks, ck_rows_task, UnsafeMutableRawPointer($0)) }) {
            return
        }
        if chunks <= 1 {
            kernel(blocks, blocksPerRow, 0, n, x, T, y, n, accumulate ? 1 : 0)
            return
        }
        // The pool is busy (a nested call, another budget's region): `forEachChunk`'s other way.
        Parallel.forEachChunk(n, minChunk: 64, chunksPerThread: 4) { r in
            kernel(blocks, blocksPerRow, r.lowerBound, r.upperBound, x, T, y, n, accumulate ? 1 : 0)
        }
    }
}
