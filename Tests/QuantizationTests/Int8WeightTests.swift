import Kernels
import Quantization
import TestSupport
import XCTest

final class Int8WeightTests: XCTestCase {
    func testFastKernelsMatchReferenceTwinsAtOddSizes() throws {
        for (n, k) in [(77, 192), (13, 37), (9, 100), (5, 16)] {
            var rng = TestRNG(seed: UInt64(n * 7 + k))
            let w = try Int8Weight(outFeatures: n, inFeatures: k, data: rng.uniform(n * k, scale: 0.05))
            for t in [1, 3, 17] {
                QuantizedKernelChecks.compare(
                    n: n, k: k, tokens: t, seed: UInt64(t + 100),
                    fast: { w.forward($0, tokens: $1, into: $2, accumulate: $3) },
                    reference: { w.forwardReference($0, tokens: $1, into: $2, accumulate: $3) },
                    fastBackward: { w.backwardInput($0, tokens: $1, into: $2) },
                    referenceBackward: { w.backwardInputReference($0, tokens: $1, into: $2) })
            }
        }
    }

    func testPerRowAbsmaxQuantizationRoundsToNearestEvenAndKeepsZeroRows() throws {
        // Row 0: absmax 1.27 -> scale 0.01; 0.005 / 0.01 = 0.5 rounds to 0 (even), 0.015 -> 2 (1.5 to even).
        // Row 1: all zero -> scale 0, q 0.
        let w = try Int8Weight(outFeatures: 2, inFeatures: 4, data: [1.27, -1.27, 0.005, 0.015, 0, 0, 0, 0])
        XCTAssertEqual(w.scales[0], Float(1.27) / 127)
        XCTAssertEqual(w.scales[1], 0)
        XCTAssertEqual(Array(w.q[0..<2]), [127, -127])
        XCTAssertEqual(Array(w.q[4..<8]), [0, 0, 0, 0])
        XCTAssertEqual(w.residentBytes, 8 + 8)
    }

    func testRoundTripErrorIsAtMostHalfAStepPerRow() throws {
        var rng = TestRNG(seed: 3)
        let (n, k) = (31, 70)
        let data = rng.uniform(n * k)
        let w = try Int8Weight(outFeatures: n, inFeatures: k, data: data)
        var deq = [Float](repeating: 0, count: n * k)
        w.dequantizeRows(0, n, into: &deq)
        for r in 0..<n {
            for c in 0..<k {
                XCTAssertLessThanOrEqual(abs(deq[r * k + c] - data[r * k + c]), w.scales[r] * 0.5001)
            }
        }
    }
}
