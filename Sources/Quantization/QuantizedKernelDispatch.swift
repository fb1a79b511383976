import CKernels
import Foundation

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
