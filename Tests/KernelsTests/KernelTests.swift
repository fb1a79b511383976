import Kernels
import TestSupport
import XCTest

final class KernelTests: XCTestCase {
    private func random(_ n: Int, seed: inout UInt64, scale: Float = 1) -> [Float] {
        var rng = TestRNG(seed: seed)
        defer { seed = rng.state }
        return rng.uniform(n, scale: scale)
    }

    /// Plain triple loop in Double: the reference every sgemm call is checked against.
    private func naiveGemm(_ a: [Float], _ b: [Float], m: Int, n: Int, k: Int, transA: Bool, transB: Bool) -> [Float] {
        var c = [Float](repeating: 0, count: m * n)
        for i in 0..<m {
            for j in 0..<n {
                var s = 0.0
                for p in 0..<k {
                    let av = transA ? a[p * m + i] : a[i * k + p]
                    let bv = transB ? b[j * k + p] : b[p * n + j]
                    s += Double(av) * Double(bv)
                }
                c[i * n + j] = Float(s)
            }
        }
        return c
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
                for i in 0..<c.count { XCTAssertEqual(c[i], ref[i], accuracy: 1e-5, "transA \(transA) transB \(transB) at \(i)") }
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
        let dxRef = naiveGemm(dy, w, m: t, n: k, k: n, transA: false, transB: false).map { $0 + 1 }
        for i in 0..<y.count { XCTAssertEqual(y[i], yRef[i], accuracy: 1e-5) }
        for i in 0..<dx.count { XCTAssertEqual(dx[i], dxRef[i], accuracy: 1e-5) }
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
        for i in 0..<y.count { XCTAssertEqual(y[i], ref[i], accuracy: 1e-5) }
    }

    func testSoftmaxIsStableForLargeLogitsAndSumsToOne() {
        var x: [Float] = [1000, 1001, 999, -1e30]
        x.withUnsafeMutableBufferPointer { Activations.softmax($0.baseAddress!, count: 4) }
        XCTAssertEqual(x.reduce(0, +), 1, accuracy: 1e-6)
        XCTAssertEqual(x[1], Float(exp(1.0) / (1 + exp(1.0) + exp(-1.0))), accuracy: 1e-6)
        XCTAssertEqual(x[3], 0)
        let lse = [Float(1000), 1000].withUnsafeBufferPointer { Activations.logSumExp($0.baseAddress!, count: 2) }
        XCTAssertEqual(lse, 1000 + log(2.0), accuracy: 1e-9)
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
                XCTAssertEqual(Double(y[heads * e + h * e + i]), x1 * cos(a) - x2 * sin(a), accuracy: 1e-5)
                XCTAssertEqual(Double(y[heads * e + h * e + i + e / 2]), x2 * cos(a) + x1 * sin(a), accuracy: 1e-5)
            }
        }
    }
}
