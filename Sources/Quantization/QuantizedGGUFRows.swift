/// Helpers shared by the GGUF block weights (`Q4_1Weight`, `Q8_0Weight`): size checks and the plain
/// reference matmuls their fast kernels are tested against.
enum QuantizedGGUFRows {
    /// fp16 bits -> Float, exact, inlined: `Float(Float16)` is a libcall (`__extendhfsf2`) on baseline
    /// x86-64 without F16C and took a sixth of the GEMV time. The fp16 exponent and mantissa shifted into
    /// an fp32 are 2^-112 times the value for normals and subnormals alike; inf / NaN are patched.
    @inline(__always)
    static func halfToFloat(_ h: UInt16) -> Float {
        let bits = UInt32(h)
        let em = bits & 0x7FFF
        var f = Float(bitPattern: em << 13) * Float(bitPattern: 0x7780_0000)  // * 2^112
        if em >= 0x7C00 { f = Float(bitPattern: (em << 13) | 0x7F80_0000) }
        return Float(bitPattern: f.bitPattern | (bits & 0x8000) << 16)
    }

    /// Σ a[i] * x[i] over count floats (a multiple of 32), two SIMD8 accumulator pairs.
    @inline(__always)
    static func dot(_ a: UnsafePointer<Float>, _ x: UnsafeRawPointer, count: Int) -> Float {
        let ar = UnsafeRawPointer(a)
        var acc0 = SIMD8<Float>(), acc1 = SIMD8<Float>(), acc2 = SIMD8<Float>(), acc3 = SIMD8<Float>()
        var o = 0
        let bytes = count * 4
        while o < bytes {
            acc0 += ar.loadUnaligned(fromByteOffset: o, as: SIMD8<Float>.self) * x.loadUnaligned(fromByteOffset: o, as: SIMD8<Float>.self)
            acc1 += ar.loadUnaligned(fromByteOffset: o + 32, as: SIMD8<Float>.self) * x.loadUnaligned(fromByteOffset: o + 32, as: SIMD8<Float>.self)
            acc2 += ar.loadUnaligned(fromByteOffset: o + 64, as: SIMD8<Float>.self) * x.loadUnaligned(fromByteOffset: o + 64, as: SIMD8<Float>.self)
            acc3 += ar.loadUnaligned(fromByteOffset: o + 96, as: SIMD8<Float>.self) * x.loadUnaligned(fromByteOffset: o + 96, as: SIMD8<Float>.self)
            o += 128
        }
        return ((acc0 + acc1) + (acc2 + acc3)).sum()
    }

    /// (Σ a[i] * x[i], Σ b[i] * x[i]) over count floats (a multiple of 16): two rows share each x load.
    @inline(__always)
    static func dot2(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ x: UnsafeRawPointer, count: Int) -> (Float, Float) {
        let ar = UnsafeRawPointer(a), br = UnsafeRawPointer(b)
        var a0 = SIMD4<Float>(), a1 = SIMD4<Float>(), b0 = SIMD4<Float>(), b1 = SIMD4<Float>()
        var o = 0
        let bytes = count * 4
        while o < bytes {
            let x0 = x.loadUnaligned(fromByteOffset: o, as: SIMD4<Float>.self)
            let x1 = x.loadUnaligned(fromByteOffset: o + 16, as: SIMD4<Float>.self)
            let x2 = x.loadUnaligned(fromByteOffset: o + 32, as: SIMD4<Float>.self)
            let x3 = x.loadUnaligned(fromByteOffset: o + 48, as: SIMD4<Float>.self)
            a0 += ar.loadUnaligned(fromByteOffset: o, as: SIMD4<Float>.self) * x0 + ar.loadUnaligned(fromByteOffset: o + 32, as: SIMD4<Float>.self) * x2
            a1 += ar.loadUnaligned(fromByteOffset: o + 16, as: SIMD4<Float>.self) * x1 + ar.loadUnaligned(fromByteOffset: o + 48, as: SIMD4<Float>.self) * x3
            b0 += br.loadUnaligned(fromByteOffset: o, as: SIMD4<Float>.self) * x0 + br.loadUnaligned(fromByteOffset: o + 32, as: SIMD4<Float>.self) * x2
            b1 += br.loadUnaligned(fromByteOffset: o + 16, as: SIMD4<Float>.self) * x1 + br.loadUnaligned(fromByteOffset: o + 48, as: SIMD4<Float>.self) * x3
            o += 64
        }
        return ((a0 + a1).sum(), (b0 + b1).sum())
    }

    static func check(format: String, n: Int, k: Int, blockElements: Int, blockBytes: Int, actual: Int) throws {
        guard n > 0, k > 0, k % blockElements == 0 else {
            throw QuantizedError.badShape(field: "\(format) linear weight (K must be a multiple of \(blockElements))", shape: [n, k])
        }
        let expected = n * (k / blockElements) * blockBytes
        guard actual == expected else { throw QuantizedError.sizeMismatch(field: "\(format).blocks (bytes)", expected: expected, actual: actual) }
    }

    /// Y[T, N] = X[T, K] · Wᵀ (+ Y) with W read one element at a time.
    static func forwardReference(n: Int, k: Int, weight: (Int, Int) -> Float, _ x: UnsafePointer<Float>, tokens: Int,
                                 into y: UnsafeMutablePointer<Float>, accumulate: Bool) {
        for t in 0..<tokens {
            for r in 0..<n {
                var acc: Float = 0
                for c in 0..<k { acc += weight(r, c) * x[t * k + c] }
                y[t * n + r] = accumulate ? y[t * n + r] + acc : acc
            }
        }
    }

    /// dX[T, K] += dY[T, N] · W with W read one element at a time.
    static func backwardInputReference(n: Int, k: Int, weight: (Int, Int) -> Float, _ dy: UnsafePointer<Float>, tokens: Int,
                                       into dx: UnsafeMutablePointer<Float>) {
        for t in 0..<tokens {
            for c in 0..<k {
                var acc: Float = 0
                for r in 0..<n { acc += dy[t * n + r] * weight(r, c) }
                dx[t * k + c] += acc
            }
        }
    }
}
