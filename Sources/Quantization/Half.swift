/// IEEE half (fp16) and bfloat16 conversions used by every file format that stores them.
public enum Half {
    /// fp16 bits -> Float, exact (every fp16 value is representable in fp32), including subnormals, inf, NaN.
    @inline(__always)
    public static func toFloat(_ h: UInt16) -> Float {
        #if arch(x86_64) || arch(arm64)
        return Float(Float16(bitPattern: h))
        #else
        let sign = UInt32(h & 0x8000) << 16
        let exp = Int((h >> 10) & 0x1F)
        let mant = UInt32(h & 0x3FF)
        if exp == 0 {
            let v = Float(mant) * (1.0 / 16_777_216.0)  // mant * 2^-24
            return sign != 0 ? -v : v
        }
        if exp == 31 { return Float(bitPattern: sign | 0x7F80_0000 | (mant << 13)) }
        return Float(bitPattern: sign | UInt32(exp - 15 + 127) << 23 | (mant << 13))
        #endif
    }

    /// Float -> fp16 bits, round to nearest even (as numpy and torch cast).
    @inline(__always)
    public static func fromFloat(_ f: Float) -> UInt16 {
        Float16(f).bitPattern
    }

    /// bfloat16 bits -> Float, exact.
    @inline(__always)
    public static func bf16ToFloat(_ b: UInt16) -> Float {
        Float(bitPattern: UInt32(b) << 16)
    }
}
