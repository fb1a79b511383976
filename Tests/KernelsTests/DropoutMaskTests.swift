import Kernels
import XCTest

/// `DropoutMask`: the AVX2 and portable kernels give the same bits, both follow the definition (element i
/// kept iff lowbias32(lowbias32(i ^ k1) ^ k2) >= round(p · 2^32), computed here independently), bits past
/// the count are 0, and the kept fraction and the agreement of two keys' masks are those of independent
/// draws, within 7 standard deviations of the binomial counts.
final class DropoutMaskTests: XCTestCase {
    private static func mix(_ v: UInt32) -> UInt32 {
        var x = v
        x ^= x >> 16; x = x &* 0x7feb_352d
        x ^= x >> 15; x = x &* 0x846c_a68b
        return x ^ (x >> 16)
    }

    private static func mask(count: Int, key: UInt64, dropout p: Float, simd: Bool) -> [UInt64] {
        let saved = Activations.useSIMD
        defer { Activations.useSIMD = saved }
        Activations.useSIMD = simd
        var bits = [UInt64](repeating: .max, count: (count + 63) / 64)
        bits.withUnsafeMutableBufferPointer { DropoutMask.fill($0.baseAddress!, count: count, key: key, dropout: p) }
        return bits
    }

    private static func kept(_ bits: [UInt64], _ i: Int) -> Bool { (bits[i >> 6] >> UInt64(i & 63)) & 1 == 1 }

    func testBuildsAgreeAndFollowTheDefinitionAtOddCounts() {
        for count in [1, 7, 63, 64, 65, 127, 511, 1000, 4097] {
            for key: UInt64 in [0, 1, 0xDEAD_BEEF_0123_4567, .max] {
                for p: Float in [0, 0.05, 0.1, 0.5, 0.9] {
                    let portable = Self.mask(count: count, key: key, dropout: p, simd: false)
                    if Activations.cpuHasSIMD {
                        XCTAssertEqual(Self.mask(count: count, key: key, dropout: p, simd: true), portable,
                                       "count \(count) key \(key) p \(p): AVX2 and portable differ")
                    }
                    let (k1, k2) = (UInt32(truncatingIfNeeded: key), UInt32(truncatingIfNeeded: key >> 32))
                    let t = DropoutMask.threshold(dropout: p)
                    for i in 0..<count {
                        let want = Self.mix(Self.mix(UInt32(i) ^ k1) ^ k2) >= t
                        XCTAssertEqual(Self.kept(portable, i), want, "count \(count) key \(key) p \(p) element \(i)")
                    }
                    if count % 64 != 0 { XCTAssertEqual(portable.last! >> UInt64(count % 64), 0, "bits past the count") }
                    if p == 0 { XCTAssertEqual((0..<count).filter { Self.kept(portable, $0) }.count, count) }
                }
            }
        }
    }

    func testKeptFractionAndIndependenceOfKeysAreThoseOfIndependentDraws() {
        let n = 1 << 20
        for p: Float in [0.05, 0.1, 0.5] {
            let a = Self.mask(count: n, key: 42, dropout: p, simd: Activations.cpuHasSIMD)
            let b = Self.mask(count: n, key: 43, dropout: p, simd: Activations.cpuHasSIMD)
            let keptA = a.reduce(0) { $0 + $1.nonzeroBitCount }
            let agree = zip(a, b).reduce(0) { $0 + (~($1.0 ^ $1.1)).nonzeroBitCount }
            let q = 1 - Double(p)
            // Kept count ~ Binomial(n, q); agreement of two independent masks ~ Binomial(n, p² + q²).
            let sdKept = (Double(n) * q * (1 - q)).squareRoot()
            XCTAssertLessThan(abs(Double(keptA) - Double(n) * q), 7 * sdKept, "p \(p): kept \(keptA) of \(n)")
            let r = Double(p) * Double(p) + q * q
            let sdAgree = (Double(n) * r * (1 - r)).squareRoot()
            XCTAssertLessThan(abs(Double(agree) - Double(n) * r), 7 * sdAgree, "p \(p): keys 42 and 43 agree on \(agree) of \(n)")
            XCTAssertEqual(Self.mask(count: n, key: 42, dropout: p, simd: false), a, "p \(p): a key's mask is the same every time")
        }
    }
}
