import Kernels

/// A frozen linear weight W[N, K] in per-row absmax int8: scale[n] = max_k |W[n, k]| / 127,
/// q[n, k] = round(W[n, k] / scale[n]) (round half to even, as `torch.round`), W ≈ q * scale.
/// An all-zero row has scale 0 and q 0.
///
/// Same structure as `NF4Weight`: T > 1 dequantizes row tiles (`QuantizedTiles`: panels or sgemm); T == 1 is a fused
/// int8 GEMV (SIMD, threads over rows); `...Reference` twins are plain loops.
public final class Int8Weight: RowDequantizedWeight, @unchecked Sendable {
    public let outFeatures: Int   // N
    public let inFeatures: Int    // K
    /// Row-major [N, K].
    public let q: [Int8]
    /// [N] per-row scales.
    public let scales: [Float]

    /// Wraps stored int8 data and per-row scales.
    public init(outFeatures: Int, inFeatures: Int, q: [Int8], scales: [Float]) throws {
        guard outFeatures > 0, inFeatures > 0 else { throw QuantizedError.badShape(field: "int8 linear weight", shape: [outFeatures, inFeatures]) }
        guard q.count == outFeatures * inFeatures else { throw QuantizedError.sizeMismatch(field: "int8.q", expected: outFeatures * inFeatures, actual: q.count) }
        guard scales.count == outFeatures else { throw QuantizedError.sizeMismatch(field: "int8.scales", expected: outFeatures, actual: scales.count) }
        self.outFeatures = outFeatures
        self.inFeatures = inFeatures
        self.q = q
        self.scales = scales
    }

    /// Quantizes an fp32 W[N, K].
    public convenience init(outFeatures: Int, inFeatures: Int, data: [Float]) throws {
        guard outFeatures > 0, inFeatures > 0 else { throw QuantizedError.badShape(field: "int8 linear weight", shape: [outFeatures, inFeatures]) }
        guard data.count == outFeatures * inFeatures else { throw QuantizedError.sizeMismatch(field: "int8.weight", expected: outFeatures * inFeatures, actual: data.count) }
        var q = [Int8](repeating: 0, count: data.count)
        var scales = [Float](repeating: 0, count: outFeatures)
        let k = inFeatures
        for r in 0..<outFeatures {
            var m: Float = 0
            for c in 0..<k { m = max(m, abs(data[r * k + c])) }
            let s = m / 127
            scales[r] = s
            if s == 0 { continue }
            for c in 0..<k {
                let v = (data[r * k + c] / s).rounded(.toNearestOrEven)
                q[r * k + c] = Int8(min(127, max(-127, v)))
            }
        }
        try self.init(outFeatures: outFeatures, inFeatures: inFeatures, q: q, scales: scales)
    }

    /// q (1 byte per weight) plus one fp32 scale per row.
    public var residentBytes: Int { q.count + 4 * scales.count }

    /// The fused GEMV covers every shape of this format.
    public var hasGEMV: Bool { true }

    /// Rows r0..<r1 of W into dst[(r1 - r0) * K], fp32 q * scale.
    public func dequantizeRows(_ r0: Int, _ r1: Int, into dst: UnsafeMutablePointer<Float>) {
        let k = inFeatures
        q.withUnsafeBufferPointer { qb in
            scales.withUnsafeBufferPointer { sb in
                for r in r0..<r1 {
                    let s = sb[r]
                    let src = qb.baseAddress! + r * k
                    let out = dst + (r - r0) * k
                    for c in 0..<k { out[c] = Float(src[c]) * s }
                }
            }
        }
    }

    /// y[N] = W · x[K] (+ y), rows split over threads, two at a time: both rows' int8 values are widened
    /// to fp32 into an L1-resident per-thread buffer (a loop the compiler vectorizes), dotted with x sharing
    /// each x load, and scaled once by their row scales. K not a multiple of 16 finishes with a scalar tail.
    public func gemv(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, accumulate: Bool) {
        let k = inFeatures
        let k16 = k / 16 * 16
        q.withUnsafeBufferPointer { qb in
            scales.withUnsafeBufferPointer { sb in
                let xr = UnsafeRawPointer(x)
                Parallel.forEachChunk(outFeatures, minChunk: 16) { rows in
                    let bufA = QuantizedScratch.floats(2 * k), bufB = bufA + k
                    var r = rows.lowerBound
                    while r < rows.upperBound {
                        let two = r + 1 < rows.upperBound
                        let src = qb.baseAddress! + r * k
                        let n = two ? 2 * k : k
                        for c in 0..<n { bufA[c] = Float(src[c]) }
                        var (va, vb) = QuantizedGGUFRows.dot2(bufA, two ? bufB : bufA, xr, count: k16)
                        for c in k16..<k {
                            va += bufA[c] * x[c]
                            if two { vb += bufB[c] * x[c] }
                        }
                        let outA = va * sb[r]
                        y[r] = accumulate ? y[r] + outA : outA
                        if two {
                            let outB = vb * sb[r + 1]
                            y[r + 1] = accumulate ? y[r + 1] + outB : outB
                        }
                        r += two ? 2 : 1
                    }
                }
            }
        }
    }

    // MARK: reference twins

    /// Plain twin of `forward`.
    public func forwardReference(_ x: UnsafePointer<Float>, tokens: Int, into y: UnsafeMutablePointer<Float>, accumulate: Bool) {
        let n = outFeatures, k = inFeatures
        for t in 0..<tokens {
            for r in 0..<n {
                var acc: Float = 0
                for c in 0..<k { acc += Float(q[r * k + c]) * scales[r] * x[t * k + c] }
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
                for r in 0..<n { acc += dy[t * n + r] * Float(q[r * k + c]) * scales[r] }
                dx[t * k + c] += acc
            }
        }
    }
}
