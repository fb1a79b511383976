/// An fp16 copy of an fp32 matrix for decode rows, half the bytes read per use: `bits` are the IEEE fp16
/// values of 2^exponent · w, rounded to nearest even, so w ≈ 2^-exponent · half(bits[i]).
///
/// The power of two puts max |w| in [2^14, 2^15): the largest value cannot round up past fp16's
/// range, and the smallest keep fp16's normal precision down to 2^-28 · max |w| (a LoRA B is often
/// ~1e-5 after little training: subnormal in fp16 unscaled). Scaling by a power of two is exact, so
/// a kernel fed half(bits[i]) with 2^-exponent folded into its alpha (`DenseRows`' fp16 overloads, which
/// convert as they load) computes the same bits as on the rounded values 2^-exponent · half(bits[i])
/// themselves (barring an fp32 product under 2^-126).
public struct HalfMatrix: Sendable {
    public let bits: [UInt16]
    public let exponent: Int

    /// nil when some value is not finite, or when max |w| < 2^-88: then 2^-exponent · (fp16's least
    /// subnormal, 2^-24) would be under fp32's least normal, and the rounded values not exact in fp32.
    public init?(_ w: UnsafeBufferPointer<Float>) {
        var top: Float = 0
        for v in w {
            guard v.isFinite else { return nil }
            top = max(top, abs(v))
        }
        // Float.exponent is floor(log2 top) (subnormals too); an all-zero matrix needs no scale.
        let e = top == 0 ? 0 : 14 - Int(top.exponent)
        guard e <= 102 else { return nil }
        let scale = Float(sign: .plus, exponent: e, significand: 1)
        exponent = e
        bits = w.map { Float16($0 * scale).bitPattern }
    }

    /// 2^-exponent: the factor to fold into a kernel's alpha.
    public var inverseScale: Float { Float(sign: .plus, exponent: -exponent, significand: 1) }

    public var residentBytes: Int { bits.count * MemoryLayout<UInt16>.size }
}
