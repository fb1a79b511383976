import CKernels

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
    /// The fp16 values: a matrix's own array, or its place in an adapter's one buffer of copies
    /// (`LoRAAdapter.prepareHalfRows`: contiguous, on huge pages).
    public let bits: ArraySlice<UInt16>
    public let exponent: Int

    /// nil when some value is not finite, or when max |w| < 2^-88: then 2^-exponent · (fp16's least
    /// subnormal, 2^-24) would be under fp32's least normal, and the rounded values not exact in fp32.
    public init?(_ w: UnsafeBufferPointer<Float>) {
        var bits = [UInt16](repeating: 0, count: w.count)
        guard let e = bits.withUnsafeMutableBufferPointer({ Self.encode(w, into: $0) }) else { return nil }
        self.init(bits: bits[...], exponent: e)
    }

    /// A copy already encoded (`encode`) at `bits`.
    public init(bits: ArraySlice<UInt16>, exponent: Int) {
        self.bits = bits
        self.exponent = exponent
    }

    /// Writes the fp16 values of 2^e · w into `out` (w.count of them) and returns e, or nil (`out` then
    /// unspecified) when w has no copy (see `init`).
    public static func encode(_ w: UnsafeBufferPointer<Float>, into out: UnsafeMutableBufferPointer<UInt16>) -> Int? {
        precondition(out.count >= w.count, "an fp16 copy needs room for every value")
        var top: Float = 0
        for v in w {
            guard v.isFinite else { return nil }
            top = max(top, abs(v))
        }
        // Float.exponent is floor(log2 top) (subnormals too); an all-zero matrix needs no scale.
        let e = top == 0 ? 0 : 14 - Int(top.exponent)
        guard e <= 102 else { return nil }
        let scale = Float(sign: .plus, exponent: e, significand: 1)
        if let base = w.baseAddress { ck_float_to_half_scaled(base, w.count, scale, out.baseAddress) }   // F16C: fast loads
        return e
    }

    /// 2^-exponent: the factor to fold into a kernel's alpha.
    public var inverseScale: Float { Float(sign: .plus, exponent: -exponent, significand: 1) }
}
