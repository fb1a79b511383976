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

    /// Whether this CPU has AVX-512VL + AVX-512 VNNI: the integer-dot decode kernels' `vpdpbusd` build
    /// (`ck_q4_1_q8_rows_vnni`), the same integers and the same float operations, so the same bits.
    public static let cpuHasVNNI: Bool = ck_cpu_has_avx512vnni() != 0

    nonisolated(unsafe) private static var _useVNNI =
        cpuHasVNNI && ProcessInfo.processInfo.environment["LORA_KERNELS"] != "avx2"

    /// Whether the integer-dot kernels run in their VNNI build (only while `useAVX2`). On by default where
    /// the CPU has it; `LORA_KERNELS=avx2` turns it off, and tests compare both.
    public static var useVNNI: Bool {
        get { _useVNNI && _useAVX2 }
        set { _useVNNI = newValue && cpuHasVNNI }
    }

    /// The environment variable choosing `decodeActivations`.
    public static let decodeActivationsVariable = "LORA_DECODE_ACTIVATIONS"

    nonisolated(unsafe) private static var _decodeActivations: DecodeActivations = {
        if let v = ProcessInfo.processInfo.environment[decodeActivationsVariable], let a = DecodeActivations(rawValue: v) { return a }
        return DecodeActivations.defaultForThisCPU
    }()

    /// What the quantized weights' decode rows (`gemv`, `forwardRows`) multiply with: the fp32 input, or the
    /// input quantized to int8 (or two int8 digits) per block of 32 (`Q8ActivationRows`), chosen per weight by
    /// its role (`DecodeActivations.input(outputHead:)`). `LORA_DECODE_ACTIVATIONS=f32|q8|q8-f32head|q8-all` sets it at
    /// start (default `DecodeActivations.defaultForThisCPU`); tests switch it (never while a forward pass runs).
    /// Every decode row of every step goes through the same choice for a given weight, so batch invariance
    /// holds under each setting.
    public static var decodeActivations: DecodeActivations {
        get { _decodeActivations }
        set { _decodeActivations = newValue }
    }
}

/// The activations of decode rows through Q4_1 / Q8_0 weights (`QuantizedKernelDispatch.decodeActivations`).
///
/// The setting is per role, not per format: the output head's logits are what greedy decoding compares,
/// and its input error lands on them unattenuated, where a layer's is one of 210 (30 layers x 7) that
/// the residual stream and the norms carry. Measured on the default model: int8 activations everywhere turn the greedy chat answer to "What
/// is the capital of France?" into "L'Étoile, la Cité, ..."; int8 in the layers with the head on fp32 or on
/// two-digit (~15-bit) inputs keeps transformers' "The capital of France is Paris." (ChatCLITests,
/// OpenAIClientReplayTests). The head is the output projection whatever its format (the default model's is
/// the tied Q8_0 embedding; an untied Q4_1 `output.weight` is a head too), and a Q8_0 layer decodes with
/// int8 inputs like a Q4_1 one.
public enum DecodeActivations: String, Sendable, CaseIterable {
    /// fp32 inputs everywhere, each weight block decoded to fp32 (`ck_q4_1_rows`, `ck_q8_0_rows`).
    case f32
    /// Layers' inputs quantized to int8 per block of 32, integer dots (`ck_q4_1_q8_rows`, `ck_q8_0_q8_rows`);
    /// the output head's to two int8 digits per element (`ck_q8x2_quantize_rows`, `ck_q8_0_q8x2_rows`).
    case q8
    /// Layers int8, the output head on fp32 inputs (the default before the two-digit head; for A/B figures).
    case q8F32Head = "q8-f32head"
    /// int8 inputs for the output head too (faster, but not the reference answers: see above).
    case q8All = "q8-all"

    /// What a weight's decode rows multiply: fp32 inputs, int8 ones, or two-digit ones.
    public enum Input: Sendable, Equatable {
        case f32, int8, twoDigit

        /// The int8 digits per input element (`Q8ActivationRows.Digits`), nil for fp32 inputs.
        @inline(__always)
        public var digits: Q8ActivationRows.Digits? {
            switch self {
            case .f32: return nil
            case .int8: return .one
            case .twoDigit: return .two
            }
        }
    }

    /// What a weight in this role multiplies under this setting.
    @inline(__always)
    public func input(outputHead: Bool) -> Input {
        switch self {
        case .f32: return .f32
        case .q8: return outputHead ? .twoDigit : .int8
        case .q8F32Head: return outputHead ? .f32 : .int8
        case .q8All: return .int8
        }
    }

    /// q8 where the CPU has AVX2 (the default model's greedy answers follow transformers' up to a near-tie
    /// in transformers' own logits, where they take its runner-up: ChatCLITests); f32 elsewhere,
    /// where the integer kernels' portable twin is slow (it calls `fmaf`, a library call without FMA hardware).
    public static var defaultForThisCPU: DecodeActivations { QuantizedKernelDispatch.cpuHasAVX2 ? .q8 : .f32 }
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

// MARK: - The decode knobs the CLI checks at start

extension QuantizedKernelDispatch {
    /// Why the decode knobs in this process's environment cannot be used (`LORA_DECODE_ACTIVATIONS`, then each
    /// `EnvironmentSwitch.all`), naming the variable, its value and the accepted values; nil when every one is
    /// unset or known. The CLI refuses to start with it (`Lora.main`).
    public static func decodeKnobsError(in environment: [String: String] = ProcessInfo.processInfo.environment) -> String? {
        if let v = environment[decodeActivationsVariable], !v.isEmpty, DecodeActivations(rawValue: v) == nil {
            return "\(decodeActivationsVariable)=\(v) is not one of "
                + DecodeActivations.allCases.map(\.rawValue).joined(separator: ", ") + " (decode rows' activations)"
        }
        for s in EnvironmentSwitch.all { if let e = s.error(in: environment) { return e } }
        return nil
    }
}
