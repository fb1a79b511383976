import CKernels
import Kernels

/// A frozen linear weight W[N, K] kept in GGUF's Q8_0 blocks exactly as stored.
///
/// Block of 32 weights, 34 bytes (ggml-common.h `block_q8_0`): f16 d, then 32 int8 q; w = d * q (fp32).
/// Rows are K / 32 consecutive blocks.
///
/// T > 1: row tiles dequantized to fp32, then packed panels (chunks of <= 256 rows) or sgemm (`QuantizedTiles`). T == 1 (and `forwardRows`): fused GEMV, with AVX2 + FMA
/// the C kernel `ck_q8_0_rows` (each block decoded once per step for all rows), else the portable Swift
/// kernel; rows split over threads.
public final class Q8_0Weight: RowDequantizedWeight, @unchecked Sendable {
    public static let blockElements = 32
    public static let blockBytes = 34

    public let outFeatures: Int   // N
    public let inFeatures: Int    // K
    /// N * K / 32 blocks, `blockBytes` each, row-major.
    public let blocks: [UInt8]
    /// Whether this weight is a model's output head (the LM head): under `DecodeActivations.q8` its decode
    /// rows take two-digit inputs while the layers' take int8 ones (`DecodeActivations.input(outputHead:)`).
    public let isOutputHead: Bool

    public init(outFeatures: Int, inFeatures: Int, blocks: [UInt8], outputHead: Bool = false) throws {
        try QuantizedGGUFRows.check(format: "q8_0", n: outFeatures, k: inFeatures, blockElements: Self.blockElements,
                                    blockBytes: Self.blockBytes, actual: blocks.count)
        self.outFeatures = outFeatures
        self.inFeatures = inFeatures
        self.blocks = blocks
        self.isOutputHead = outputHead
    }

    public convenience init(outFeatures: Int, inFeatures: Int, blocks: UnsafeRawBufferPointer, outputHead: Bool = false) throws {
        try self.init(outFeatures: outFeatures, inFeatures: inFeatures, blocks: [UInt8](blocks), outputHead: outputHead)
    }

    /// What decode rows through this weight multiply under the current setting (fp32, int8 or two-digit inputs).
    public var decodeInput: DecodeActivations.Input {
        QuantizedKernelDispatch.decodeActivations.input(outputHead: isOutputHead)
    }

    /// Whether decode rows through this weight multiply int8 (one-digit) activations under the current setting.
    public var decodesWithInt8Activations: Bool { decodeInput == .int8 }

    public var residentBytes: Int { blocks.count }

    /// The fused GEMV covers every shape of this format.
    public var hasGEMV: Bool { true }

    /// Rows r0..<r1 of W into dst[(r1 - r0) * K].
    public func dequantizeRows(_ r0: Int, _ r1: Int, into dst: UnsafeMutablePointer<Float>) {
        blocks.withUnsafeBytes { raw in
            Self.dequantize(raw.baseAddress! + r0 * (inFeatures / 32) * Self.blockBytes,
                            blockCount: (r1 - r0) * (inFeatures / 32), into: dst)
        }
    }

    /// Dequantizes `blockCount` consecutive Q8_0 blocks at `src` into dst[blockCount * 32] (also usable for
    /// an embedding row lookup: one row is K / 32 blocks): the AVX2 kernel `ck_dequant_q8_0` when the CPU
    /// has it, else `dequantizePortable`; the same bits either way.
    @inline(__always)
    public static func dequantize(_ src: UnsafeRawPointer, blockCount: Int, into dst: UnsafeMutablePointer<Float>) {
        if QuantizedKernelDispatch.useAVX2 {
            ck_dequant_q8_0(src.assumingMemoryBound(to: UInt8.self), blockCount, dst)
        } else {
            dequantizePortable(src, blockCount: blockCount, into: dst)
        }
    }

    /// Portable twin of `dequantize`: a plain loop the compiler vectorizes.
    @inline(__always)
    public static func dequantizePortable(_ src: UnsafeRawPointer, blockCount: Int, into dst: UnsafeMutablePointer<Float>) {
        for b in 0..<blockCount {
            let p = src + b * blockBytes
            let d = QuantizedGGUFRows.halfToFloat(p.loadUnaligned(as: UInt16.self))
            let qs = (p + 2).assumingMemoryBound(to: Int8.self)
            let out = dst + b * 32
            for j in 0..<32 { out[j] = Float(qs[j]) * d }
        }
    }

    /// y[N] = W · x[K] (+ y): `gemvRows` with one row (one code path for one row and many).
    public func gemv(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, accumulate: Bool) {
        gemvRows(x, rows: 1, into: y, accumulate: accumulate)
    }

    /// Y[T, N] = X[T, K] · Wᵀ (+ Y), each row bit-identical to its one-row `gemv` (batch-invariant decoding).
    public func forwardRows(_ x: UnsafePointer<Float>, rows: Int, into y: UnsafeMutablePointer<Float>, accumulate: Bool) {
        gemvRows(x, rows: rows, into: y, accumulate: accumulate)
    }

    /// Y[T, N] = X[T, K] · Wᵀ (+ Y), weight rows split over threads, two at a time: both rows are
    /// dequantized into an L1-resident per-thread buffer (a loop the compiler vectorizes) once, then
    /// dotted with every x row, sharing each x load between the two. Output (b, r) depends on x row b
    /// and weight row r only (the thread split and the pairing depend on N alone): the same bits for any T.
    func gemvRows(_ x: UnsafePointer<Float>, rows T: Int, into y: UnsafeMutablePointer<Float>, accumulate: Bool) {
        if T <= 0 { return }
        let k = inFeatures, bpr = k / 32, n = outFeatures
        if let digits = decodeInput.digits {
            // int8 (or two-digit) activations, integer dots (`Q8ActivationRows`); the same bits for any T as well.
            blocks.withUnsafeBytes { raw in
                Q8ActivationRows.run(.q8_0, digits: digits, blocks: raw.baseAddress!.assumingMemoryBound(to: UInt8.self), blocksPerRow: bpr, n: n,
                                     x: x, rows: T, y: y, accumulate: accumulate)
            }
            return
        }
        if QuantizedKernelDispatch.useAVX2 {
            // As in Q4_1Weight: each output element whole in one call, its arithmetic fixed (`ck_q8_0_rows`).
            blocks.withUnsafeBytes { raw in
                QuantizedRowsJob.run(QuantizedKernelDispatch.useAVX512VL ? ck_q8_0_rows_avx512vl : ck_q8_0_rows,
                                     blocks: raw.baseAddress!.assumingMemoryBound(to: UInt8.self), blocksPerRow: bpr, n: n,
                                     x: x, rows: T, y: y, accumulate: accumulate)
            }
            return
        }
        blocks.withUnsafeBytes { raw in
            let base = raw.baseAddress!
            Parallel.forEachChunk(n, minChunk: 16) { rows in
                let bufA = QuantizedScratch.floats(2 * k), bufB = bufA + k
                var r = rows.lowerBound
                while r < rows.upperBound {
                    if r + 1 < rows.upperBound {
                        Self.dequantize(base + r * bpr * Self.blockBytes, blockCount: 2 * bpr, into: bufA)
                        for i in 0..<T {
                            let (va, vb) = QuantizedGGUFRows.dot2(bufA, bufB, UnsafeRawPointer(x + i * k), count: k)
                            let yi = y + i * n
                            yi[r] = accumulate ? yi[r] + va : va
                            yi[r + 1] = accumulate ? yi[r + 1] + vb : vb
                        }
                        r += 2
                    } else {
                        Self.dequantize(base + r * bpr * Self.blockBytes, blockCount: bpr, into: bufA)
                        for i in 0..<T {
                            let v = QuantizedGGUFRows.dot(bufA, UnsafeRawPointer(x + i * k), count: k)
                            let yi = y + i * n
                            yi[r] = accumulate ? yi[r] + v : v
                        }
                        r += 1
                    }
                }
            }
        }
    }

    // MARK: reference twins

    @inline(__always)
    func referenceWeight(_ r: Int, _ c: Int) -> Float {
        let b = (r * inFeatures + c) / 32, j = c % 32
        let o = b * Self.blockBytes
        let d = Half.toFloat(UInt16(blocks[o]) | UInt16(blocks[o + 1]) << 8)
        return Float(Int8(bitPattern: blocks[o + 2 + j])) * d
    }

    /// Plain twin of `forward`.
    public func forwardReference(_ x: UnsafePointer<Float>, tokens: Int, into y: UnsafeMutablePointer<Float>, accumulate: Bool) {
        QuantizedGGUFRows.forwardReference(n: outFeatures, k: inFeatures, weight: referenceWeight, x, tokens: tokens, into: y, accumulate: accumulate)
    }

    /// Plain twin of `backwardInput`.
    public func backwardInputReference(_ dy: UnsafePointer<Float>, tokens: Int, into dx: UnsafeMutablePointer<Float>) {
        QuantizedGGUFRows.backwardInputReference(n: outFeatures, k: inFeatures, weight: referenceWeight, dy, tokens: tokens, into: dx)
    }
}
