import Kernels

/// A frozen linear weight W[N, K] held in NF4 with double quantization (`NF4Tensor`, shape [N, K]).
///
/// - T > 1 (prefill, training): tiles of rows are dequantized to fp32 into a per-thread buffer and
///   multiplied with sgemm, so the product runs at BLAS speed.
/// - T == 1 (decoding): a fused dequantize-and-dot GEMV, SIMD over each 64-element block, threads over rows.
/// Each has a plain reference twin (`forwardReference`, `backwardInputReference`) that tests compare.
public final class NF4Weight: LinearWeight, @unchecked Sendable {
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

    /// Y[T, N] = X[T, K] · Wᵀ (+ Y when accumulate).
    public func forward(_ x: UnsafePointer<Float>, tokens: Int, into y: UnsafeMutablePointer<Float>, accumulate: Bool) {
        if tokens == 1 && inFeatures % NF4Tensor.blockSize == 0 {
            gemv(x, into: y, accumulate: accumulate)
            return
        }
        QuantizedTiles.forward(n: outFeatures, k: inFeatures, x: x, tokens: tokens, y: y, accumulate: accumulate) { r0, r1, dst in
            self.dequantizeRows(r0, r1, into: dst)
        }
    }

    /// dX[T, K] += dY[T, N] · W.
    public func backwardInput(_ dy: UnsafePointer<Float>, tokens: Int, into dx: UnsafeMutablePointer<Float>) {
        QuantizedTiles.backwardInput(n: outFeatures, k: inFeatures, dy: dy, tokens: tokens, dx: dx) { r0, r1, dst in
            self.dequantizeRows(r0, r1, into: dst)
        }
    }

    /// Rows r0..<r1 of W into dst[(r1 - r0) * K], fp32 (the same values as `NF4Tensor.dequantize`).
    public func dequantizeRows(_ r0: Int, _ r1: Int, into dst: UnsafeMutablePointer<Float>) {
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

    /// y[N] = W · x[K] (+ y), K a multiple of 64, rows split over threads. Each row's codes are first
    /// expanded to fp32 into an L1-resident per-thread buffer (one byte -> two floats from `pairTable`),
    /// then dotted with x in SIMD8 lanes, one block of 64 at a time, scaled once per block by its absmax.
    /// (Gathering table values straight into vector lanes was 3-4x slower on baseline x86-64.)
    func gemv(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, accumulate: Bool) {
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
                let rowBuf = QuantizedScratch.floats(k)
                let rowPairs = UnsafeMutableRawPointer(rowBuf).assumingMemoryBound(to: SIMD2<Float>.self)
                let rb = UnsafeRawPointer(rowBuf)
                for r in rows {
                    let bytes = packed + r * (k / 2)
                    for j in 0..<(k / 2) { rowPairs[j] = pairBase[Int(bytes[j])] }
                    var rowAcc = SIMD8<Float>()
                    let b0 = r * blocksPerRow
                    for bb in 0..<blocksPerRow {
                        let b = b0 + bb
                        let s = mapBuf[Int(codesBuf[b])] * nestedBuf[b >> 8] + offset
                        let o = bb * bs * 4
                        var acc0 = SIMD8<Float>(), acc1 = SIMD8<Float>()
                        var j = 0
                        while j < bs * 4 {
                            acc0 += rb.load(fromByteOffset: o + j, as: SIMD8<Float>.self) * xr.loadUnaligned(fromByteOffset: o + j, as: SIMD8<Float>.self)
                            acc1 += rb.load(fromByteOffset: o + j + 32, as: SIMD8<Float>.self) * xr.loadUnaligned(fromByteOffset: o + j + 32, as: SIMD8<Float>.self)
                            j += 64
                        }
                        // One scale per block: sum(code * x) * absmax.
                        rowAcc += (acc0 + acc1) * s
                    }
                    let v = rowAcc.sum()
                    y[r] = accumulate ? y[r] + v : v
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
