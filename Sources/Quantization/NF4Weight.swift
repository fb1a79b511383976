import CKernels
import Kernels

/// A frozen linear weight W[N, K] held in NF4 with double quantization (`NF4Tensor`, shape [N, K]).
///
/// - T > 1 (prefill, training): tiles of rows are dequantized to fp32 into a per-thread buffer and
///   multiplied through packed panels (chunks of <= 256 rows) or with sgemm (`QuantizedTiles`).
/// - T == 1 (decoding): a fused dequantize-and-dot GEMV, SIMD over each 64-element block, threads over rows.
/// Each has a plain reference twin (`forwardReference`, `backwardInputReference`) that tests compare.
public final class NF4Weight: RowDequantizedWeight, @unchecked Sendable {
    public let tensor: NF4Tensor
    public let outFeatures: Int   // N
    public let inFeatures: Int    // K

    public init(_ tensor: NF4Tensor) throws {
        guard tensor.shape.count == 2 else { throw QuantizedError.badShape(field: "nf4 linear weight", shape: tensor.shape) }
        self.tensor = tensor
        self.outFeatures = tensor.shape[0]
        self.inFeatures = tensor.shape[1]
    }

    /// Quantizes an fp32 W[N, K] as bitsandbytes does.
    public convenience init(outFeatures: Int, inFeatures: Int, data: [Float]) throws {
        let t = try data.withUnsafeBufferPointer { try NF4Tensor.quantize($0, shape: [outFeatures, inFeatures]) }
        try self.init(t)
    }

    public var residentBytes: Int { tensor.residentBytes }

    /// (code[high nibble], code[low nibble]) for every byte: one load yields two consecutive weights.
    static let pairTable: [SIMD2<Float>] = (0..<256).map { SIMD2(NF4Tensor.code[$0 >> 4], NF4Tensor.code[$0 & 15]) }

    /// The fused GEMV covers every shape of this format whose K is a multiple of the block size.
    public var hasGEMV: Bool { inFeatures % NF4Tensor.blockSize == 0 }

    /// Rows r0..<r1 of W into dst[(r1 - r0) * K], fp32 (the same values as `NF4Tensor.dequantize`): the
    /// AVX2 kernel `ck_dequant_nf4` when the CPU has it and rows are whole blocks (K a multiple of 64),
    /// else `dequantizeRowsPortable`; the same bits either way.
    public func dequantizeRows(_ r0: Int, _ r1: Int, into dst: UnsafeMutablePointer<Float>) {
        let k = inFeatures, bs = NF4Tensor.blockSize
        guard QuantizedKernelDispatch.useAVX2 && k % bs == 0 else {
            dequantizeRowsPortable(r0, r1, into: dst)
            return
        }
        let t = tensor
        let firstBlock = r0 * (k / bs), blocks = (r1 - r0) * (k / bs)
        // Block scales decoded (double quantization) a batch at a time into a stack buffer.
        let batch = 64
        withUnsafeTemporaryAllocation(of: Float.self, capacity: batch) { scales in
            t.packed.withUnsafeBufferPointer { packed in
                NF4Tensor.code.withUnsafeBufferPointer { code in
                    var b = 0
                    while b < blocks {
                        let n = min(batch, blocks - b)
                        for j in 0..<n { scales[j] = t.absmax(block: firstBlock + b + j) }
                        ck_dequant_nf4(packed.baseAddress! + (firstBlock + b) * (bs / 2), scales.baseAddress!, n,
                                       code.baseAddress!, dst + b * bs)
                        b += n
                    }
                }
            }
        }
    }

    /// Portable twin of `dequantizeRows` (any K, blocks straddling rows included).
    public func dequantizeRowsPortable(_ r0: Int, _ r1: Int, into dst: UnsafeMutablePointer<Float>) {
        let k = inFeatures, bs = NF4Tensor.blockSize
        let start = r0 * k, end = r1 * k
        let t = tensor
        t.packed.withUnsafeBufferPointer { packed in
            Self.pairTable.withUnsafeBufferPointer { pairs in
                var i = start
                while i < end {
                    let b = i / bs
                    let blockEnd = min((b + 1) * bs, end)
                    let s = t.absmax(block: b)
                    if i & 1 == 1 {  // odd start: the low nibble of a shared byte
                        dst[i - start] = NF4Tensor.code[Int(packed[i >> 1] & 0x0F)] * s
                        i += 1
                    }
                    let raw = UnsafeMutableRawPointer(dst + (i - start))
                    var j = 0
                    let pairCount = (blockEnd - i) >> 1
                    let byte0 = i >> 1
                    while j < pairCount {
                        raw.storeBytes(of: pairs[Int(packed[byte0 + j])] * s, toByteOffset: j * 8, as: SIMD2<Float>.self)
                        j += 1
                    }
                    i += pairCount * 2
                    if i < blockEnd {  // odd end: the high nibble
                        dst[i - start] = NF4Tensor.code[Int(packed[i >> 1] >> 4)] * s
                        i += 1
                    }
                }
            }
        }
    }

    /// y[N] = W · x[K] (+ y), K a multiple of 64, rows split over threads, two rows at a time so each x
    /// load serves both. Each packed byte indexes `pairTable` (its two weights' codes as one SIMD2), two
    /// pairs make a SIMD4 multiplied with x; a block's sum is scaled once by its absmax.
    /// Single thread on baseline x86-64 (SSE2): 8.2 weights/ns, against 4.5 when rows were first expanded
    /// into a buffer and 1.4 when table values were inserted lane by lane into SIMD8 vectors.
    public func gemv(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, accumulate: Bool) {
        let k = inFeatures, bs = NF4Tensor.blockSize
        let blocksPerRow = k / bs
        let t = tensor
        t.packed.withUnsafeBufferPointer { packedBuf in
        t.absmaxCodes.withUnsafeBufferPointer { codesBuf in
        t.nestedAbsmax.withUnsafeBufferPointer { nestedBuf in
        t.nestedCode.withUnsafeBufferPointer { mapBuf in
        Self.pairTable.withUnsafeBufferPointer { pairs in
            let packed = packedBuf.baseAddress!, offset = t.offset
            let pairBase = pairs.baseAddress!
            let xr = UnsafeRawPointer(x)
            Parallel.forEachChunk(outFeatures, minChunk: 16) { rows in
                // Two rows at a time share each x load. Per 8 packed bytes of a row: one 64-bit load,
                // bytes peeled off by shifts, and each pair of table entries joined into one SIMD4.
                @inline(__always) func quad(_ w: UInt64, _ shift: UInt64) -> SIMD4<Float> {
                    SIMD4(lowHalf: pairBase[Int(truncatingIfNeeded: (w &>> shift) & 0xFF)],
                          highHalf: pairBase[Int(truncatingIfNeeded: (w &>> (shift + 8)) & 0xFF)])
                }
                var r = rows.lowerBound
                while r < rows.upperBound {
                    let two = r + 1 < rows.upperBound
                    let r1 = two ? r + 1 : r
                    let bytesA = UnsafeRawPointer(packed + r * (k / 2)), bytesB = UnsafeRawPointer(packed + r1 * (k / 2))
                    var rowAccA = SIMD4<Float>(), rowAccB = SIMD4<Float>()
                    for bb in 0..<blocksPerRow {
                        let ba = r * blocksPerRow + bb, bB = r1 * blocksPerRow + bb
                        let sa = mapBuf[Int(codesBuf[ba])] * nestedBuf[ba >> 8] + offset
                        let sb = mapBuf[Int(codesBuf[bB])] * nestedBuf[bB >> 8] + offset
                        var accA = SIMD4<Float>(), accB = SIMD4<Float>()
                        var j = 0
                        while j < 32 {  // 8 bytes = 16 weights per step
                            let o = bb * 32 + j
                            let wa = bytesA.loadUnaligned(fromByteOffset: o, as: UInt64.self)
                            let wb = bytesB.loadUnaligned(fromByteOffset: o, as: UInt64.self)
                            let xo = o * 8
                            let x0 = xr.loadUnaligned(fromByteOffset: xo, as: SIMD4<Float>.self)
                            let x1 = xr.loadUnaligned(fromByteOffset: xo + 16, as: SIMD4<Float>.self)
                            let x2 = xr.loadUnaligned(fromByteOffset: xo + 32, as: SIMD4<Float>.self)
                            let x3 = xr.loadUnaligned(fromByteOffset: xo + 48, as: SIMD4<Float>.self)
                            accA += quad(wa, 0) * x0 + quad(wa, 16) * x1 + quad(wa, 32) * x2 + quad(wa, 48) * x3
                            accB += quad(wb, 0) * x0 + quad(wb, 16) * x1 + quad(wb, 32) * x2 + quad(wb, 48) * x3
                            j += 8
                        }
                        // One scale per block: sum(code * x) * absmax.
                        rowAccA += accA * sa
                        rowAccB += accB * sb
                    }
                    let va = rowAccA.sum()
                    y[r] = accumulate ? y[r] + va : va
                    if two {
                        let vb = rowAccB.sum()
                        y[r1] = accumulate ? y[r1] + vb : vb
                    }
                    r += two ? 2 : 1
                }
            }
        }}}}}
    }

    // MARK: reference twins

    /// Plain twin of `forward`: every weight from `NF4Tensor.dequantize` semantics, scalar loops.
    public func forwardReference(_ x: UnsafePointer<Float>, tokens: Int, into y: UnsafeMutablePointer<Float>, accumulate: Bool) {
        let n = outFeatures, k = inFeatures
        for t in 0..<tokens {
            for r in 0..<n {
                var acc: Float = 0
                for c in 0..<k { acc += referenceWeight(r * k + c) * x[t * k + c] }
                y[t * n + r] = accumulate ? y[t * n + r] + acc : acc
            }
        }
    }

    /// Plain twin of `backwardInput`.
    public func backwardInputReference(_ dy: UnsafePointer<Float>, tokens: Int, into dx: UnsafeMutablePointer<Float>) {
        let n = outFeatures, k = inFeatures
        for t in 0..<tokens {
            for c in 0..<k {
                var acc: Float = 0
                for r in 0..<n { acc += dy[t * n + r] * referenceWeight(r * k + c) }
                dx[t * k + c] += acc
            }
        }
    }

    @inline(__always)
    func referenceWeight(_ i: Int) -> Float {
        NF4Tensor.code[tensor.codeIndex(i)] * tensor.absmax(block: i / NF4Tensor.blockSize)
    }
}
