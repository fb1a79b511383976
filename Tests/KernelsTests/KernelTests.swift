import Kernels
import TestSupport
import XCTest

final class KernelTests: XCTestCase {
    private func random(_ n: Int, seed: inout UInt64, scale: Float = 1) -> [Float] {
        var rng = TestRNG(seed: seed)
        defer { seed = rng.state }
        return rng.uniform(n, scale: scale)
    }

    /// Plain triple loop in Double: the reference every sgemm call is checked against, with each
    /// element's Σ|aᵢbᵢ|, which bounds an fp32 sum's error (γ_K · Σ|aᵢbᵢ|, FP32.gamma).
    private func naiveGemm(_ a: [Float], _ b: [Float], m: Int, n: Int, k: Int, transA: Bool, transB: Bool) -> (c: [Float], abs: [Double]) {
        var c = [Float](repeating: 0, count: m * n)
        var absSum = [Double](repeating: 0, count: m * n)
        for i in 0..<m {
            for j in 0..<n {
                var s = 0.0, t = 0.0
                for p in 0..<k {
                    let av = transA ? a[p * m + i] : a[i * k + p]
                    let bv = transB ? b[j * k + p] : b[p * n + j]
                    s += Double(av) * Double(bv)
                    t += abs(Double(av) * Double(bv))
                }
                c[i * n + j] = Float(s)
                absSum[i * n + j] = t
            }
        }
        return (c, absSum)
    }

    /// |fp32 result − exact| ≤ γ_K·Σ|aᵢbᵢ| (+ the reference's own rounding to fp32, u·|ref|), element by element.
    private func assertWithinSumBound(_ c: [Float], _ ref: (c: [Float], abs: [Double]), terms k: Int, added: Double = 0,
                                      _ message: String, file: StaticString = #filePath, line: UInt = #line) {
        for i in c.indices {
            let bound = FP32.gamma(k + (added != 0 ? 1 : 0)) * (ref.abs[i] + abs(added)) + FP32.unitRoundoff * abs(Double(ref.c[i]))
            XCTAssertLessThanOrEqual(abs(Double(c[i]) - Double(ref.c[i])), bound, "\(message) at \(i)", file: file, line: line)
        }
    }

    func testSgemmMatchesNaiveProductForEveryTransposeCombination() {
        var seed: UInt64 = 1
        let m = 7, n = 13, k = 19
        for transA in [false, true] {
            for transB in [false, true] {
                let a = random(m * k, seed: &seed), b = random(k * n, seed: &seed)
                var c = [Float](repeating: 0, count: m * n)
                a.withUnsafeBufferPointer { ap in
                    b.withUnsafeBufferPointer { bp in
                        c.withUnsafeMutableBufferPointer { cp in
                            BLAS.sgemm(transA: transA, transB: transB, m: m, n: n, k: k,
                                       a: ap.baseAddress!, b: bp.baseAddress!, c: cp.baseAddress!)
                        }
                    }
                }
                let ref = naiveGemm(a, b, m: m, n: n, k: k, transA: transA, transB: transB)
                assertWithinSumBound(c, ref, terms: k, "transA \(transA) transB \(transB)")
            }
        }
    }

    /// Products large enough to be split over the pool (`BLAS.splitMinimumMACs`), taller than wide
    /// (split by rows of C) and wider than tall (by columns), every transpose combination: within the
    /// sum bound of the naive product, as the unsplit product (one thread) is. (Not always the same
    /// bits: OpenBLAS picks its small-matrix kernels by the size of each part.)
    func testSplitSgemmMatchesNaiveAndUnsplitProducts() {
        var seed: UInt64 = 9
        for (m, n, k) in [(211, 97, 61), (67, 233, 71)] {
            XCTAssertGreaterThanOrEqual(m * n * k, 1 << 20, "large enough to split")
            for transA in [false, true] {
                for transB in [false, true] {
                    let a = random(m * k, seed: &seed), b = random(k * n, seed: &seed)
                    func product(threads: Int) -> [Float] {
                        var c = [Float](repeating: 0, count: m * n)
                        ComputeContext.run(ComputeContext(threads: threads)) {
                            a.withUnsafeBufferPointer { ap in
                                b.withUnsafeBufferPointer { bp in
                                    c.withUnsafeMutableBufferPointer { cp in
                                        BLAS.sgemm(transA: transA, transB: transB, m: m, n: n, k: k,
                                                   a: ap.baseAddress!, b: bp.baseAddress!, c: cp.baseAddress!)
                                    }
                                }
                            }
                        }
                        return c
                    }
                    let split = product(threads: 2), whole = product(threads: 1)
                    let ref = naiveGemm(a, b, m: m, n: n, k: k, transA: transA, transB: transB)
                    assertWithinSumBound(split, ref, terms: k, "split \(m)x\(n)x\(k) transA \(transA) transB \(transB)")
                    assertWithinSumBound(whole, ref, terms: k, "whole \(m)x\(n)x\(k) transA \(transA) transB \(transB)")
                }
            }
        }
    }

    func testDenseWeightForwardAndBackwardInputMatchNaiveProducts() {
        var seed: UInt64 = 2
        let n = 11, k = 9, t = 5
        let w = random(n * k, seed: &seed), x = random(t * k, seed: &seed), dy = random(t * n, seed: &seed)
        let dense = DenseWeight(outFeatures: n, inFeatures: k, data: w)
        var y = [Float](repeating: 0, count: t * n)
        var dx = [Float](repeating: 1, count: t * k)  // backwardInput accumulates
        x.withUnsafeBufferPointer { xp in y.withUnsafeMutableBufferPointer { dense.forward(xp.baseAddress!, tokens: t, into: $0.baseAddress!, accumulate: false) } }
        dy.withUnsafeBufferPointer { dp in dx.withUnsafeMutableBufferPointer { dense.backwardInput(dp.baseAddress!, tokens: t, into: $0.baseAddress!) } }
        let yRef = naiveGemm(x, w, m: t, n: n, k: k, transA: false, transB: true)
        var dxRef = naiveGemm(dy, w, m: t, n: k, k: n, transA: false, transB: false)
        dxRef.c = dxRef.c.map { $0 + 1 }   // backwardInput accumulates onto the ones dx started with
        assertWithinSumBound(y, yRef, terms: k, "forward")
        assertWithinSumBound(dx, dxRef, terms: n, added: 1, "backwardInput")
    }

    func testRMSNormMatchesDoubleReference() {
        var seed: UInt64 = 3
        let t = 3, d = 37
        let x = random(t * d, seed: &seed, scale: 5), w = random(d, seed: &seed)
        var y = [Float](repeating: 0, count: t * d)
        x.withUnsafeBufferPointer { xp in w.withUnsafeBufferPointer { wp in y.withUnsafeMutableBufferPointer {
            RMSNorm.forward(xp.baseAddress!, weight: wp.baseAddress!, eps: 1e-5, tokens: t, dim: d, into: $0.baseAddress!)
        } } }
        let ref = RMSNorm.reference(x, weight: w, eps: 1e-5, tokens: t, dim: d)
        // The mean of D squares (γ_D), its reciprocal square root and two products: relative per element.
        let tolerance = FP32.gamma(d) + FP32.roundings(4)
        for i in 0..<y.count { XCTAssertEqual(Double(y[i]), Double(ref[i]), accuracy: tolerance * abs(Double(ref[i])) + Double(Float.leastNormalMagnitude)) }
    }

    func testSoftmaxIsStableForLargeLogitsAndSumsToOne() {
        var x: [Float] = [1000, 1001, 999, -1e30]
        x.withUnsafeMutableBufferPointer { Activations.softmax($0.baseAddress!, count: 4) }
        // exp, a sum of 4 and a division per element: a few roundings, relative (values of order one).
        XCTAssertEqual(Double(x.reduce(0, +)), 1, accuracy: FP32.roundings(8))
        XCTAssertEqual(Double(x[1]), exp(1.0) / (1 + exp(1.0) + exp(-1.0)), accuracy: FP32.roundings(8))
        XCTAssertEqual(x[3], 0)
        let lse = [Float(1000), 1000].withUnsafeBufferPointer { Activations.logSumExp($0.baseAddress!, count: 2) }
        // max + log(Σ exp(x − max)): exact up to Double's rounding of log 2 and the sum (values ~1000).
        XCTAssertEqual(lse, 1000 + log(2.0), accuracy: 1000 * 4 * Double.ulpOfOne)
    }

    func testRoPERotatesHalvesByPositionTimesFrequency() {
        let e = 8, heads = 2
        let rope = RoPE(headDim: e, theta: 10000)
        var seed: UInt64 = 4
        let x = random(2 * heads * e, seed: &seed)
        var y = x
        let pos: [Int32] = [0, 5]
        y.withUnsafeMutableBufferPointer { yp in pos.withUnsafeBufferPointer { rope.apply(yp.baseAddress!, tokens: 2, heads: heads, positions: $0.baseAddress!) } }
        // Position 0 is the identity.
        for i in 0..<(heads * e) { XCTAssertEqual(y[i], x[i], accuracy: 0) }
        for h in 0..<heads {
            for i in 0..<(e / 2) {
                let f = 1 / pow(10000.0, Double(2 * i) / Double(e))
                let a = 5 * f
                let x1 = Double(x[heads * e + h * e + i]), x2 = Double(x[heads * e + h * e + i + e / 2])
                // fp32 cos/sin of an angle ≤ 5 rad (argument rounding ~5u absolute), two products and a sum;
                // |x| ≤ 1, so an absolute bound of 16 roundings covers it.
                XCTAssertEqual(Double(y[heads * e + h * e + i]), x1 * cos(a) - x2 * sin(a), accuracy: FP32.roundings(16))
                XCTAssertEqual(Double(y[heads * e + h * e + i + e / 2]), x2 * cos(a) + x1 * sin(a), accuracy: FP32.roundings(16))
            }
        }
    }
}
