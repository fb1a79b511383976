import Kernels
import TestSupport
import XCTest

/// The elementwise and row kernels split large work over `Parallel`'s pool; each element (row) is
/// computed the same way whatever the split, so the split result equals the plain twin run over the
/// whole range on one thread, bit for bit, at odd sizes.
final class ElementwiseSplitTests: XCTestCase {
    /// Two threads, so the work is really split (whatever the machine's cores).
    let twoThreads = ComputeContext(threads: 2)

    func testSwiGLUForwardAndBackwardEqualTheirOneThreadTwins() {
        let count = 3 * Activations.parallelMinimumElements + 17
        var rng = TestRNG(seed: 5)
        let g = rng.uniform(count, scale: 6), u = rng.uniform(count), dA = rng.uniform(count)
        var a = [Float](repeating: 0, count: count), aRef = a
        var dG = a, dU = a, dGRef = a, dURef = a
        ComputeContext.run(twoThreads) {
            Activations.swiglu(gate: g, up: u, into: &a, count: count)
            Activations.swigluBackward(gate: g, up: u, dA: dA, dGate: &dG, dUp: &dU, count: count)
        }
        Activations.swigluRange(gate: g, up: u, into: &aRef, 0..<count)
        Activations.swigluBackwardRange(gate: g, up: u, dA: dA, dGate: &dGRef, dUp: &dURef, 0..<count)
        XCTAssertEqual(a.map(\.bitPattern), aRef.map(\.bitPattern))
        XCTAssertEqual(dG.map(\.bitPattern), dGRef.map(\.bitPattern))
        XCTAssertEqual(dU.map(\.bitPattern), dURef.map(\.bitPattern))
        // And the twin is SwiGLU: silu(g) * u in Double, within exp's error and three roundings (add, divide, multiply).
        let tolerance = ElementwiseKernelTests.expRelTolerance + FP32.roundings(3)
        for i in stride(from: 0, to: count, by: 997) {
            let x = Double(g[i]), ref = x / (1 + exp(-x)) * Double(u[i])
            XCTAssertEqual(Double(aRef[i]), ref, accuracy: tolerance * abs(ref) + Double(Float.leastNormalMagnitude))
        }
    }

    func testRMSNormForwardAndBackwardEqualTheirOneThreadTwins() {
        let d = 37, t = 3 * Activations.parallelMinimumElements / d + 5
        var rng = TestRNG(seed: 6)
        let x = rng.uniform(t * d, scale: 4), w = rng.uniform(d), dy = rng.uniform(t * d)
        let dx0 = rng.uniform(t * d)
        var y = [Float](repeating: 0, count: t * d), yRef = y
        var dx = dx0, dxRef = dx0
        ComputeContext.run(twoThreads) {
            RMSNorm.forward(x, weight: w, eps: 1e-5, tokens: t, dim: d, into: &y)
            RMSNorm.backward(x, weight: w, eps: 1e-5, dy: dy, tokens: t, dim: d, dx: &dx)
        }
        RMSNorm.forwardRows(x, weight: w, eps: 1e-5, 0..<t, dim: d, into: &yRef)
        RMSNorm.backwardRows(x, weight: w, eps: 1e-5, dy: dy, 0..<t, dim: d, dx: &dxRef)
        XCTAssertEqual(y.map(\.bitPattern), yRef.map(\.bitPattern))
        XCTAssertEqual(dx.map(\.bitPattern), dxRef.map(\.bitPattern))
        XCTAssertNotEqual(dx, dx0)
    }

    func testRowChunksCoverEveryRowOnceAndSplitLargeWork() {
        let rows = 301, width = Activations.parallelMinimumElements / 64 + 3
        var seen = [Int](repeating: 0, count: rows)
        var parts = 0
        let lock = NSLock()
        ComputeContext.run(twoThreads) {
            seen.withUnsafeMutableBufferPointer { s in
                Activations.forEachRowChunk(rows, width: width) { part in
                    lock.lock(); parts += 1; lock.unlock()
                    for r in part { s[r] += 1 }
                }
            }
        }
        XCTAssertEqual(seen, [Int](repeating: 1, count: rows))
        XCTAssertGreaterThan(parts, 1, "large work is split")
        // Small work (a decode row) stays whole on the caller.
        var small = 0
        ComputeContext.run(twoThreads) { Activations.forEachRowChunk(1, width: 576) { _ in small += 1 } }
        XCTAssertEqual(small, 1)
    }
}
