import CKernels
import Foundation
import Kernels
import TestSupport
import XCTest

/// The AVX2 elementwise kernels (`elementwise_kernels.c`) against their portable twins (the same bits
/// at odd sizes, including the 8-lane tails), and the shared exp against Double.
final class ElementwiseKernelTests: XCTestCase {
    override func tearDown() { Activations.useSIMD = true }

    /// Cephes reports a peak relative error of 1.7e-7 (< 3u) for its expf polynomial; evaluated here with
    /// fused multiply-adds the reduction and the polynomial round no more often, and scaling by 2^n is
    /// exact in the normal range: 4 roundings (u = 2⁻²⁴) relative.
    static let expRelTolerance = FP32.roundings(4)

    func testExpIsWithinFourRoundingsOfDoubleOverTheNormalRange() {
        var worst = 0.0
        var x: Float = -86.5
        while x <= 88.7 {
            let e = Double(ck_exp_ref(x)), ref = exp(Double(x))
            worst = max(worst, abs(e - ref) / ref)
            x = x.nextUp.nextUp + 0.000_731 * max(1, abs(x))
        }
        XCTAssertLessThanOrEqual(worst, Self.expRelTolerance)
        XCTAssertEqual(ck_exp_ref(0), 1)
        XCTAssertEqual(ck_exp_ref(-1000), 0)
        XCTAssertEqual(ck_exp_ref(89), .infinity)
        XCTAssertTrue(ck_exp_ref(.nan).isNaN)
        XCTAssertEqual(ck_exp_ref(-.infinity), 0)
    }

    /// Inputs of every scale, including exp's saturation ranges and special values.
    func inputs(_ n: Int, seed: UInt64) -> [Float] {
        var rng = TestRNG(seed: seed)
        return (0..<n).map { i in
            switch i % 11 {
            case 3: return rng.uniform(scale: 120)     // past both ends of exp's range
            case 7: return rng.uniform(scale: 1e-3)
            default: return rng.uniform(scale: 8)
            }
        }
    }

    func bits(_ a: [Float]) -> [UInt32] { a.map(\.bitPattern) }

    func testSIMDKernelsEqualPortableTwinsBitForBitAtOddSizes() throws {
        guard Activations.cpuHasSIMD else { throw XCTSkip("the CPU has no AVX2 + FMA") }
        for n in [1, 7, 8, 9, 63, 64, 1001] {
            let g = inputs(n, seed: UInt64(n)), u = inputs(n, seed: UInt64(n) + 1), d = inputs(n, seed: UInt64(n) + 2)
            var a = [Float](repeating: 0, count: n), aRef = a
            ck_swiglu(g, u, &a, n); ck_swiglu_ref(g, u, &aRef, n)
            XCTAssertEqual(bits(a), bits(aRef), "swiglu n=\(n)")
            var dG = a, dU = a, dGRef = a, dURef = a
            ck_swiglu_backward(g, u, d, &dG, &dU, n); ck_swiglu_backward_ref(g, u, d, &dGRef, &dURef, n)
            XCTAssertEqual(bits(dG), bits(dGRef), "swiglu backward dG n=\(n)")
            XCTAssertEqual(bits(dU), bits(dURef), "swiglu backward dU n=\(n)")
            var s = g, sRef = g
            let l = ck_softmax(&s, n), lRef = ck_softmax_ref(&sRef, n)
            XCTAssertEqual(bits(s), bits(sRef), "softmax n=\(n)")
            XCTAssertEqual(l.bitPattern, lRef.bitPattern, "softmax log-sum n=\(n)")
            XCTAssertEqual(ck_logsumexp(g, n).bitPattern, ck_logsumexp_ref(g, n).bitPattern, "logsumexp n=\(n)")
            var e = g, eRef = g
            ck_exp_scaled(&e, n, 1.5, 0.25); ck_exp_scaled_ref(&eRef, n, 1.5, 0.25)
            XCTAssertEqual(bits(e), bits(eRef), "exp scaled n=\(n)")
            var p = g, pRef = g, dd = d, ddRef = d
            ck_attention_backward_row(&p, &dd, n, 2, 0.5); ck_attention_backward_row_ref(&pRef, &ddRef, n, 2, 0.5)
            XCTAssertEqual(bits(p), bits(pRef), "attention backward P n=\(n)")
            XCTAssertEqual(bits(dd), bits(ddRef), "attention backward dS n=\(n)")
        }
    }

    func testKernelsComputeWhatTheyClaimAgainstDouble() {
        // On either path (the twin is what the SIMD path equals bit for bit).
        for simd in [true, false] {
            Activations.useSIMD = simd
            let n = 37
            var rng = TestRNG(seed: 9)
            let g = rng.uniform(n, scale: 6), u = rng.uniform(n), d = rng.uniform(n)
            var a = [Float](repeating: 0, count: n), dG = a, dU = a
            Activations.swigluRange(gate: g, up: u, into: &a, 0..<n)
            Activations.swigluBackwardRange(gate: g, up: u, dA: d, dGate: &dG, dUp: &dU, 0..<n)
            var x = g
            let logSum = Activations.softmax(&x, count: n)
            let lse = Activations.logSumExp(g, count: n)
            let m = Double(g.max()!)
            let sum = g.reduce(0.0) { $0 + exp(Double($1) - m) }
            for i in 0..<n {
                let gi = Double(g[i]), s = 1 / (1 + exp(-gi))
                // exp (expRelTolerance) then an add, a divide and a multiply or two: a few roundings more.
                let tol = Self.expRelTolerance + FP32.roundings(6)
                XCTAssertEqual(Double(a[i]), gi * s * Double(u[i]), accuracy: tol * abs(gi * s * Double(u[i])) + 1e-30)
                XCTAssertEqual(Double(dU[i]), Double(d[i]) * gi * s, accuracy: tol * abs(Double(d[i]) * gi * s) + 1e-30)
                let dg = Double(d[i]) * Double(u[i]) * s * (1 + gi * (1 - s))
                // 1 - s cancels for large g: bound it by the terms' magnitudes, not the result's.
                let dgScale = abs(Double(d[i]) * Double(u[i]) * s) * (1 + abs(gi))
                XCTAssertEqual(Double(dG[i]), dg, accuracy: (tol + FP32.roundings(4)) * dgScale + 1e-30)
                // Softmax: exp, a sum of n terms of one sign (γ_n), a reciprocal and a product.
                let p = exp(gi - m) / sum
                XCTAssertEqual(Double(x[i]), p, accuracy: (Self.expRelTolerance + FP32.gamma(n) + FP32.roundings(3)) * p)
            }
            XCTAssertEqual(lse, m + log(sum), accuracy: Self.expRelTolerance * 2 + 1e-12)
            XCTAssertEqual(Double(logSum), m + log(sum), accuracy: (Self.expRelTolerance + FP32.gamma(n)) + FP32.roundings(2) * abs(m + log(sum)))
        }
    }
    /// The rotary kernel against its twin at odd head sizes (8-lane tails), both directions.
    func testRoPEKernelEqualsItsPortableTwinBitForBitAtOddSizes() throws {
        guard Activations.cpuHasSIMD else { throw XCTSkip("the CPU has no AVX2 + FMA") }
        for (T, heads, E) in [(1, 1, 2), (3, 2, 14), (5, 3, 16), (2, 9, 64), (7, 1, 34), (4, 3, 50)] {
            var rng = TestRNG(seed: UInt64(T * 100 + E))
            let x = rng.uniform(T * heads * E, scale: 4)
            let cs = rng.uniform(T * E / 2), sn = rng.uniform(T * E / 2)
            for sign: Float in [1, -1] {
                var a = x, b = x
                ck_rope(&a, T, heads, E, cs, sn, sign)
                ck_rope_ref(&b, T, heads, E, cs, sn, sign)
                XCTAssertEqual(bits(a), bits(b), "rope T=\(T) heads=\(heads) E=\(E) sign \(sign)")
            }
        }
    }

    /// `RoPE.apply` (a cos/sin table, then the kernel) computes what the per-layer loop it replaced
    /// computed, bit for bit: cosf and sinf of the fp32 angle, x1·c − x2·s and x2·c + x1·s unfused;
    /// the inverse with s negated. On both paths.
    func testRoPEApplyEqualsThePlainRotationBitForBit() {
        let rope = RoPE(headDim: 18, theta: 10_000)
        let T = 5, heads = 3, E = 18, half = 9
        var rng = TestRNG(seed: 4)
        let x = rng.uniform(T * heads * E, scale: 3)
        let positions: [Int32] = [0, 1, 7, 300, 4095]
        for simd in [true, false] {
            Activations.useSIMD = simd
            for sign: Float in [1, -1] {
                var expected = x
                for t in 0..<T {
                    for i in 0..<half {
                        let angle = Float(positions[t]) * rope.invFreq[i]
                        let c = cosf(angle), s = sign * sinf(angle)
                        for h in 0..<heads {
                            let b = (t * heads + h) * E
                            let x1 = expected[b + i], x2 = expected[b + i + half]
                            let p1 = x1 * c, p2 = x2 * s, p3 = x2 * c, p4 = x1 * s
                            expected[b + i] = p1 - p2
                            expected[b + i + half] = p3 + p4
                        }
                    }
                }
                var got = x
                got.withUnsafeMutableBufferPointer { g in
                    positions.withUnsafeBufferPointer { p in
                        if sign > 0 {
                            rope.apply(g.baseAddress!, tokens: T, heads: heads, positions: p.baseAddress!)
                        } else {
                            rope.applyInverse(g.baseAddress!, tokens: T, heads: heads, positions: p.baseAddress!)
                        }
                    }
                }
                XCTAssertEqual(bits(got), bits(expected), "simd \(simd) sign \(sign)")
            }
        }
    }
}
