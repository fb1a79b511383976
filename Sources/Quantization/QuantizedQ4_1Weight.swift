import CKernels
import Kernels

/// A frozen linear weight W[N, K] kept in GGUF's Q4_1 blocks exactly as stored (no re-quantization).
///
/// Block of 32 weights, 20 bytes (ggml-common.h `block_q4_1`): f16 d, f16 m, 16 bytes `qs` where byte j
/// holds element j in its LOW nibble and element j + 16 in its HIGH nibble; w = d * q + m (fp32, unfused).
/// Rows are K / 32 consecutive blocks (K a multiple of 32, as GGUF requires).
///
/// T > 1: row tiles dequantized to fp32, then packed panels (chunks of <= 256 rows) or sgemm (`QuantizedTiles`). T == 1 (and `forwardRows`, batched decoding): fused GEMV,
/// with AVX2 + FMA the C kernel `ck_q4_1_rows` (each block decoded once per step for all rows), else the
/// portable Swift kernel (see `gemvRows`), per block
/// d * Σ q·x + m * Σ x with Σ x per block computed once per call; rows split over threads.
public final class Q4_1Weight: RowDequantizedWeight, @unchecked Sendable {
    public static let blockElements = 32
    public static let blockBytes = 20

    public let outFeatures: Int   // N
    public let inFeatures: Int    // K
    /// N * K / 32 blocks, `blockBytes` each, row-major.
    public let blocks: [UInt8]
    /// Whether this weight is a model's output head (the LM head): under `DecodeActivations.q8` its decode
    /// rows take two-digit inputs while the layers' take int8 ones (`DecodeActivations.input(outputHead:)`).
    public let isOutputHead: Bool

    /// Takes the raw block bytes of a [N, K] tensor (e.g. a GGUF tensor's data), checking the size.
    public init(outFeatures: Int, inFeatures: Int, blocks: [UInt8], outputHead: Bool = false) throws {
        try QuantizedGGUFRows.check(format: "q4_1", n: outFeatures, k: inFeatures, blockElements: Self.blockElements,
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

    /// Dequantizes `blockCount` consecutive Q4_1 blocks at `src` into dst[blockCount * 32]: the AVX2
    /// kernel `ck_dequant_q4_1` when the CPU has it, else `dequantizePortable`; the same bits either way.
    @inline(__always)
    public static func dequantize(_ src: UnsafeRawPointer, blockCount: Int, into dst: UnsafeMutablePointer<Float>) {
        if QuantizedKernelDispatch.useAVX2 {
            ck_dequant_q4_1(src.assumingMemoryBound(to: UInt8.self), blockCount, dst)
        } else {
            dequantizePortable(src, blockCount: blockCount, into: dst)
        }
    }

    /// Portable twin of `dequantize`. Plain per-lane loops: the compiler vectorizes them, where the
    /// stdlib's generic SIMD integer-to-float conversions compiled to out-of-line calls.
    @inline(__always)
    public static func dequantizePortable(_ src: UnsafeRawPointer, blockCount: Int, into dst: UnsafeMutablePointer<Float>) {
        for b in 0..<blockCount {
            let p = src + b * blockBytes
            let d = QuantizedGGUFRows.halfToFloat(p.loadUnaligned(as: UInt16.self))
            let m = QuantizedGGUFRows.halfToFloat(p.loadUnaligned(fromByteOffset: 2, as: UInt16.self))
            let qs = (p + 4).assumingMemoryBound(to: UInt8.self)
            let out = dst + b * 32
            // q * d + m as two roundings (no fused multiply-add), like ggml's scalar dequantize_row_q4_1.
            for j in 0..<16 {
                out[j] = Float(qs[j] & 0x0F) * d + m
                out[j + 16] = Float(qs[j] >> 4) * d + m
            }
        }
    }

    /// (Float(low nibble), Float(high nibble)) of every byte: the quants of elements j and j + 16.
    static let pairTable: [SIMD2<Float>] = (0..<256).map { SIMD2(Float($0 & 15), Float($0 >> 4)) }

    /// y[N] = W · x[K] (+ y): `gemvRows` with one row (one code path for one row and many).
    public func gemv(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, accumulate: Bool) {
        gemvRows(x, rows: 1, into: y, accumulate: accumulate)
    }

    /// Y[T, N] = X[T, K] · Wᵀ (+ Y), each row bit-identical to its one-row `gemv` (batch-invariant decoding).
    public func forwardRows(_ x: UnsafePointer<Float>, rows: Int, into y: UnsafeMutablePointer<Float>, accumulate: Bool) {
        gemvRows(x, rows: rows, into: y, accumulate: accumulate)
    }

    /// Y[T, N] = X[T, K] · Wᵀ (+ Y), weight rows split over threads, two at a time so each x load serves
    /// both, and each pair of weight rows read once for all T inputs (it stays in L1 across them).
    /// Each x row is first reordered per block to (x[j], x[j + 16]) pairs so that a byte's two quants,
    /// looked up as one SIMD2 in `pairTable`, line up with their inputs; per block d * Σ q·x + m * Σ x,
    /// with Σ x per block computed once per call. The arithmetic of output (b, r) depends on x row b and
    /// weight row r only (the thread split depends on N alone), so it is the same bits for any T.
    /// Reordered x and block sums live in the caller's per-thread scratch ([T, K + K/32]).
    func gemvRows(_ x: UnsafePointer<Float>, rows T: Int, into y: UnsafeMutablePointer<Float>, accumulate: Bool) {
        if T <= 0 { return }
        let k = inFeatures, bpr = k / 32, n = outFeatures
        if let digits = decodeInput.digits {
            // int8 (or two-digit) activations, integer dots (`Q8ActivationRows`); the same bits for any T as well.
            blocks.withUnsafeBytes { raw in
                Q8ActivationRows.run(.q4_1, digits: digits, blocks: raw.baseAddress!.assumingMemoryBound(to: UInt8.self), blocksPerRow: bpr, n: n,
                                     x: x, rows: T, y: y, accumulate: accumulate)
            }
            return
        }
        if QuantizedKernelDispatch.useAVX2 {
            // Each output element is computed whole by one call with arithmetic fixed per (row, weight row)
            // (see `ck_q4_1_rows`), so neither the thread split nor T changes its bits.
            blocks.withUnsafeBytes { raw in
                QuantizedRowsJob.run(QuantizedKernelDispatch.useAVX512VL ? ck_q4_1_rows_avx512vl : ck_q4_1_rows,
                                     blocks: raw.baseAddress!.assumingMemoryBound(to: UInt8.self), blocksPerRow: bpr, n: n,
                                     x: x, rows: T, y: y, accumulate: accumulate)
            }
            return
        }
        let stride = k + bpr
        let scratch = QuantizedScratch.floats(T * stride)
        for i in 0..<T {
            let xi = x + i * k, si = scratch + i * stride
            let xsums = si + k
            for b in 0..<bpr {
                var s: Float = 0
                for j in 0..<16 {
                    si[b * 32 + 2 * j] = xi[b * 32 + j]
                    si[b * 32 + 2 * j + 1] = xi[b * 32 + j + 16]
                    s += xi[b * 32 + j] + xi[b * 32 + j + 16]
                }
                xsums[b] = s
            }
        }
        let scratchBase = UnsafePointer(scratch)
        blocks.withUnsafeBytes { raw in
            Self.pairTable.withUnsafeBufferPointer { pairs in
                let base = raw.baseAddress!
                let pairBase = pairs.baseAddress!
                @inline(__always) func quad(_ w: UInt64, _ shift: UInt64) -> SIMD4<Float> {
                    SIMD4(lowHalf: pairBase[Int(truncatingIfNeeded: (w &>> shift) & 0xFF)],
                          highHalf: pairBase[Int(truncatingIfNeeded: (w &>> (shift + 8)) & 0xFF)])
                }
                @inline(__always) func half(_ p: UnsafeRawPointer, _ o: Int) -> Float {
                    QuantizedGGUFRows.halfToFloat(p.loadUnaligned(fromByteOffset: o, as: UInt16.self))
                }
                Parallel.forEachChunk(n, minChunk: 16) { rows in
                    var r = rows.lowerBound
                    while r < rows.upperBound {
                        let two = r + 1 < rows.upperBound
                        let r1 = two ? r + 1 : r
                        let rowA = base + r * bpr * Self.blockBytes, rowB = base + r1 * bpr * Self.blockBytes
                        for i in 0..<T {
                            let xr = UnsafeRawPointer(scratchBase + i * stride)
                            let sums = scratchBase + i * stride + k
                            var accA = SIMD4<Float>(), accB = SIMD4<Float>()
                            var mA: Float = 0, mB: Float = 0
                            for b in 0..<bpr {
                                let pa = rowA + b * Self.blockBytes, pb = rowB + b * Self.blockBytes
                                let xo = b * 128
                                var dotA = SIMD4<Float>(), dotB = SIMD4<Float>()
                                // Two halves of 8 bytes each: fewer live vectors than the whole block at once.
                                for h in 0..<2 {
                                    let wa = pa.loadUnaligned(fromByteOffset: 4 + h * 8, as: UInt64.self)
                                    let wb = pb.loadUnaligned(fromByteOffset: 4 + h * 8, as: UInt64.self)
                                    let xh = xo + h * 64
                                    let x0 = xr.loadUnaligned(fromByteOffset: xh, as: SIMD4<Float>.self)
                                    let x1 = xr.loadUnaligned(fromByteOffset: xh + 16, as: SIMD4<Float>.self)
                                    let x2 = xr.loadUnaligned(fromByteOffset: xh + 32, as: SIMD4<Float>.self)
                                    let x3 = xr.loadUnaligned(fromByteOffset: xh + 48, as: SIMD4<Float>.self)
                                    dotA += (quad(wa, 0) * x0 + quad(wa, 16) * x1) + (quad(wa, 32) * x2 + quad(wa, 48) * x3)
                                    dotB += (quad(wb, 0) * x0 + quad(wb, 16) * x1) + (quad(wb, 32) * x2 + quad(wb, 48) * x3)
                                }
                                accA += dotA * half(pa, 0)
                                accB += dotB * half(pb, 0)
                                mA += half(pa, 2) * sums[b]
                                mB += half(pb, 2) * sums[b]
                            }
                            let yi = y + i * n
                            let va = accA.sum() + mA
                            yi[r] = accumulate ? yi[r] + va : va
                            if two {
                                let vb = accB.sum() + mB
                                yi[r1] = accumulate ? yi[r1] + vb : vb
                            }
                        }
                        r += two ? 2 : 1
                    }
                }
            }
        }
    }

    // MARK: reference twins

    /// Element i of W, scalar (block layout read byte by byte).
    @inline(__always)
    func referenceWeight(_ r: Int, _ c: Int) -> Float {
        let b = (r * inFeatures + c) / 32, j = c % 32
        let o = b * Self.blockBytes
        let d = Half.toFloat(UInt16(blocks[o]) | UInt16(blocks[o + 1]) << 8)
        let m = Half.toFloat(UInt16(blocks[o + 2]) | UInt16(blocks[o + 3]) << 8)
        let byte = blocks[o + 4 + (j % 16)]
        let q = j < 16 ? byte & 0x0F : byte >> 4
        return Float(q) * d + m
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
