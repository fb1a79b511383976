import Foundation
import Kernels
import Quantization
import TestSupport
import XCTest

/// The fused decoding GEMVs at the default model's MLP shapes equal their reference twins (the
/// timings of the same kernels are a benchmark, scripts/bench/gemv.sh, not a test).
final class QuantizedGEMVShapeTests: XCTestCase {
    func testFusedGEMVsEqualTheirReferenceTwinsAtSmolLM2Shapes() throws {
        for (n, k) in [(576, 1536), (1536, 576)] {
            var rng = TestRNG(seed: UInt64(n + k))
            let data = rng.uniform(n * k, scale: 0.05)
            let nf4 = try NF4Weight(outFeatures: n, inFeatures: k, data: data)
            let int8 = try Int8Weight(outFeatures: n, inFeatures: k, data: data)
            let x = rng.uniform(k)
            var y = [Float](repeating: 0, count: n), yRef = y
            nf4.forward(x, tokens: 1, into: &y, accumulate: false)
            nf4.forwardReference(x, tokens: 1, into: &yRef, accumulate: false)
            XCTAssertLessThanOrEqual(maxRelativeError(y, yRef), QuantizedKernelChecks.fastVsReferenceRelTolerance(terms: k), "nf4 \(n)x\(k)")
            int8.forward(x, tokens: 1, into: &y, accumulate: false)
            int8.forwardReference(x, tokens: 1, into: &yRef, accumulate: false)
            XCTAssertLessThanOrEqual(maxRelativeError(y, yRef), QuantizedKernelChecks.fastVsReferenceRelTolerance(terms: k), "int8 \(n)x\(k)")
        }
    }
}
