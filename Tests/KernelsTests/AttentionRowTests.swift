import Foundation
import Kernels
import TestSupport
import XCTest

/// Decode rows' attention kernel (`AttentionRow`, `ck_attention_row`): the AVX2 and portable builds
/// give the same bits, both are the fixed-order arithmetic they document (a plain Swift twin), and the
/// result is attention as Double computes it, within a bound derived from that arithmetic.
final class AttentionRowTests: XCTestCase {
    override func tearDown() { Activations.useSIMD = Activations.cpuHasSIMD }

    /// The documented arithmetic in plain Swift: 8 lanes of products in order, the tail to lanes 0...,
    /// a fixed tree, times scale; `Activations.softmax`; each output one sum over keys in order.
    static func twin(q: [Float], keys: [Float], values: [Float], ld: Int, E: Int, lo: Int, S: Int, scale: Float,
                     scores: inout [Float]) -> (out: [Float], lse: Float) {
        let K8 = E - E % 8
        for j in lo..<S {
            var acc = [Float](repeating: 0, count: 8)
            var e = 0
            while e < K8 {
                for l in 0..<8 { acc[l] = acc[l] + q[e + l] * keys[j * ld + e + l] }
                e += 8
            }
            for e in K8..<E { acc[e - K8] = acc[e - K8] + q[e] * keys[j * ld + e] }
            let dot = ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]))
            scores[j] = scale * dot
        }
        let lse = scores.withUnsafeMutableBufferPointer { Activations.softmax($0.baseAddress! + lo, count: S - lo) }
        var out = [Float](repeating: 0, count: E)
        for j in lo..<S {
            for e in 0..<E { out[e] = out[e] + scores[j] * values[j * ld + e] }
        }
        return (out, lse)
    }

    /// Head sizes around the 8-lane and 32-element strides (tails of every kind), key counts around the
    /// 4-key stride, with and without keys hidden at the front (a sliding window), keys `ld` apart.
    func testAttentionRowIsItsPortableTwinAndDoubleAttentionWithinTheDerivedBound() {
        check(heads: [1, 5, 8, 12, 31, 40, 64, 67], keys: [1, 2, 3, 4, 5, 8, 33, 131])
    }

    /// Every key count from 1 to 200 (odd ones, every tail of the 8- and 4-key passes) at the default model's
    /// head size 64 and at 24 and 40, odd multiples of 8 (the 8-key pass with a 64-element head's 32- and
    /// 8-wide value tails).
    func testEveryKeyCountUpTo200AtHeadSizes64AndOddMultiplesOf8() {
        check(heads: [24, 40, 64], keys: Array(1...200))
    }

    func check(heads: [Int], keys: [Int]) {
        let sentinel: Float = -12345
        for simd in Activations.cpuHasSIMD ? [true, false] : [false] {
            Activations.useSIMD = simd
            for E in heads {
                for S in keys {
                    for lo in Set([0, S / 3, S - 1]).sorted() {
                        let ld = E + 3
                        var rng = TestRNG(seed: UInt64(E * 1000 + S * 10 + lo))
                        let q = rng.uniform(E, scale: 2), keys = rng.uniform(S * ld, scale: 2), values = rng.uniform(S * ld)
                        let scale = 1 / Float(E).squareRoot()
                        var scores = [Float](repeating: sentinel, count: S), portable = scores, twinScores = scores
                        var out = [Float](repeating: 0, count: E), outPortable = out
                        let lse = AttentionRow.forward(q: q, keys: keys, values: values, ld: ld, headSize: E, first: lo, count: S,
                                                       scale: scale, scores: &scores, into: &out)
                        let lsePortable = AttentionRow.forwardPortable(q: q, keys: keys, values: values, ld: ld, headSize: E, first: lo,
                                                                       count: S, scale: scale, scores: &portable, into: &outPortable)
                        let twin = Self.twin(q: q, keys: keys, values: values, ld: ld, E: E, lo: lo, S: S, scale: scale, scores: &twinScores)
                        let what = "simd \(simd) E=\(E) S=\(S) lo=\(lo)"
                        XCTAssertEqual(out.map(\.bitPattern), outPortable.map(\.bitPattern), "\(what): AVX2 and portable builds differ")
                        XCTAssertEqual(lse.bitPattern, lsePortable.bitPattern, what)
                        XCTAssertEqual(out.map(\.bitPattern), twin.out.map(\.bitPattern), "\(what): not the documented arithmetic")
                        XCTAssertEqual(lse.bitPattern, twin.lse.bitPattern, what)
                        XCTAssertEqual(scores.map(\.bitPattern), twinScores.map(\.bitPattern), what)
                        XCTAssertTrue(scores[..<lo].allSatisfy { $0 == sentinel }, "\(what): scores before lo written")

                        // Double attention over keys lo..<S.
                        var exact = [Double](repeating: 0, count: S), delta = 0.0
                        for j in lo..<S {
                            var dot = 0.0, mag = 0.0
                            for e in 0..<E {
                                let p = Double(q[e]) * Double(keys[j * ld + e])
                                dot += p; mag += abs(p)
                            }
                            exact[j] = Double(scale) * dot
                            // A sum of E products (γ_E), then the scale's rounding.
                            delta = max(delta, Double(scale) * FP32.gamma(E) * mag + FP32.roundings(1) * abs(exact[j]))
                        }
                        let m = exact[lo..<S].max()!
                        let sum = exact[lo..<S].reduce(0.0) { $0 + exp($1 - m) }
                        let n = S - lo
                        // Scores off by at most delta move each weight by a factor within exp(±2·delta); the
                        // softmax itself adds exp's error, a sum of n terms of one sign and 3 roundings
                        // (ElementwiseKernelTests); the weighted sum is n products of one sum (γ_n).
                        let softmaxRel = ElementwiseKernelTests.expRelTolerance + FP32.gamma(n) + FP32.roundings(3)
                        let rho = exp(2 * delta) * (1 + softmaxRel) - 1
                        for e in 0..<E {
                            var want = 0.0, mag = 0.0
                            for j in lo..<S {
                                let p = exp(exact[j] - m) / sum
                                want += p * Double(values[j * ld + e]); mag += p * abs(Double(values[j * ld + e]))
                            }
                            let bound = (rho + FP32.gamma(n) * (1 + rho)) * mag
                            XCTAssertLessThanOrEqual(abs(Double(out[e]) - want), bound, "\(what) e=\(e)")
                        }
                        let wantLse = m + log(sum)
                        XCTAssertEqual(Double(lse), wantLse,
                                       accuracy: delta + ElementwiseKernelTests.expRelTolerance + FP32.gamma(n) + FP32.roundings(2) * abs(wantLse), what)
                    }
                }
            }
        }
    }
}

