import Foundation
import Kernels
import TestSupport
import XCTest

/// RMSNorm's row kernels (`ck_rmsnorm_rows`, `ck_rmsnorm_backward_rows`): the AVX2 and portable builds
/// give the same bits, both are the lane-order arithmetic they document (a plain Swift twin), and both
/// are RMSNorm as Double computes it within bounds derived from that arithmetic, at odd widths.
final class RMSNormTests: XCTestCase {
    override func tearDown() { Activations.useSIMD = Activations.cpuHasSIMD }

    static let widths = [1, 3, 7, 8, 9, 15, 37, 64, 577, 1539]

    /// Σ over i of term(i) in the kernels' order: lane l adds i ≡ l (mod 8) for i < D8 in order, the tail
    /// into lanes 0.., then ((l0 + l4) + (l2 + l6)) + ((l1 + l5) + (l3 + l7)).
    static func laneSum(_ d: Int, _ term: (Int) -> Float) -> Float {
        var acc = [Float](repeating: 0, count: 8)
        let d8 = d - d % 8
        for i in 0..<d8 { acc[i % 8] = acc[i % 8] + term(i) }
        for i in d8..<d { acc[i - d8] = acc[i - d8] + term(i) }
        return ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]))
    }

    func testForwardIsItsPortableTwinTheLaneOrderAndDoubleRMSNormWithinTheDerivedBound() {
        let t = 3, eps: Float = 1e-5
        for d in Self.widths {
            var rng = TestRNG(seed: UInt64(d))
            let x = rng.uniform(t * d, scale: 5), w = rng.uniform(d)
            var outs: [[Float]] = []
            for simd in Activations.cpuHasSIMD ? [true, false] : [false] {
                Activations.useSIMD = simd
                var y = [Float](repeating: 0, count: t * d)
                RMSNorm.forward(x, weight: w, eps: eps, tokens: t, dim: d, into: &y)
                outs.append(y)
                // In place (y aliasing x) gives the same bits.
                var inPlace = x
                inPlace.withUnsafeMutableBufferPointer { p in
                    RMSNorm.forward(p.baseAddress!, weight: w, eps: eps, tokens: t, dim: d, into: p.baseAddress!)
                }
                XCTAssertEqual(inPlace.map(\.bitPattern), y.map(\.bitPattern), "D=\(d) simd \(simd): in place differs")
            }
            Activations.useSIMD = Activations.cpuHasSIMD
            XCTAssertEqual(outs.first!.map(\.bitPattern), outs.last!.map(\.bitPattern), "D=\(d): AVX2 and portable builds differ")
            let ref = RMSNorm.reference(x, weight: w, eps: eps, tokens: t, dim: d)
            for r in 0..<t {
                let xr = Array(x[(r * d)..<((r + 1) * d)])
                let ss = Self.laneSum(d) { xr[$0] * xr[$0] }
                let inv = 1 / (ss / Float(d) + eps).squareRoot()
                for i in 0..<d {
                    let twin = w[i] * (xr[i] * inv)
                    XCTAssertEqual(outs[0][r * d + i].bitPattern, twin.bitPattern, "D=\(d) row \(r) i=\(i): not the lane order")
                    // The sum of D squares (γ_D, relative: all terms positive), halved by the square root, its
                    // division, eps's add, the root and the reciprocal (4 roundings), two products (2).
                    let tol = FP32.gamma(d) / 2 + FP32.roundings(6)
                    let want = Double(ref[r * d + i])
                    XCTAssertEqual(Double(outs[0][r * d + i]), want, accuracy: tol * abs(want) + Double(Float.leastNormalMagnitude),
                                   "D=\(d) row \(r) i=\(i)")
                }
            }
        }
    }

    func testBackwardIsItsPortableTwinTheLaneOrderAndDoubleGradientWithinTheDerivedBound() {
        let t = 3, eps: Float = 1e-5
        for d in Self.widths {
            var rng = TestRNG(seed: UInt64(1000 + d))
            let x = rng.uniform(t * d, scale: 3), w = rng.uniform(d), dy = rng.uniform(t * d), dx0 = rng.uniform(t * d)
            var outs: [[Float]] = []
            for simd in Activations.cpuHasSIMD ? [true, false] : [false] {
                Activations.useSIMD = simd
                var dx = dx0
                RMSNorm.backward(x, weight: w, eps: eps, dy: dy, tokens: t, dim: d, dx: &dx)
                outs.append(dx)
            }
            Activations.useSIMD = Activations.cpuHasSIMD
            XCTAssertEqual(outs.first!.map(\.bitPattern), outs.last!.map(\.bitPattern), "D=\(d): AVX2 and portable builds differ")
            let u = FP32.roundings(1)
            for r in 0..<t {
                let o = r * d
                let ss = Self.laneSum(d) { x[o + $0] * x[o + $0] }
                let gx = Self.laneSum(d) { (w[$0] * dy[o + $0]) * x[o + $0] }
                let rf = 1 / (ss / Float(d) + eps).squareRoot()
                let cf = ((rf * rf) * rf) * gx / Float(d)
                // Double: r, Σ g·x (and its magnitude), c.
                var ssD = 0.0, gxD = 0.0, mag = 0.0
                for i in 0..<d {
                    ssD += Double(x[o + i]) * Double(x[o + i])
                    let p = Double(w[i]) * Double(dy[o + i]) * Double(x[o + i])
                    gxD += p; mag += abs(p)
                }
                let rD = 1 / (ssD / Double(d) + Double(eps)).squareRoot()
                let cD = rD * rD * rD * gxD / Double(d)
                // r: γ_D on a positive sum, halved by the root, plus 4 roundings (as the forward).
                let errR = FP32.gamma(d) / 2 + FP32.roundings(4)
                // c = r³ · Σ(w·dy·x) / D: three r factors, the sum's γ_{D+1} over its magnitude (each term two
                // products), r·r·r, the product and the division (4 roundings); first order, so doubled.
                let cErr = 2 * (rD * rD * rD * mag / Double(d)) * (3 * errR + FP32.gamma(d + 1) + FP32.roundings(4))
                for i in 0..<d {
                    let twin = dx0[o + i] + ((rf * w[i]) * dy[o + i] - x[o + i] * cf)
                    XCTAssertEqual(outs[0][o + i].bitPattern, twin.bitPattern, "D=\(d) row \(r) i=\(i): not the lane order")
                    let t1 = rD * Double(w[i]) * Double(dy[o + i]), t2 = Double(x[o + i]) * cD
                    let want = Double(dx0[o + i]) + t1 - t2
                    // t1: r's error and two products; t2: c's error and one product; the subtraction and the add.
                    let bound = 2 * abs(t1) * (errR + FP32.roundings(2)) + abs(Double(x[o + i])) * cErr + 2 * u * abs(t2)
                        + u * abs(t1 - t2) * 2 + u * abs(want) * 2
                    XCTAssertLessThanOrEqual(abs(Double(outs[0][o + i]) - want), bound, "D=\(d) row \(r) i=\(i)")
                }
            }
        }
    }
}
