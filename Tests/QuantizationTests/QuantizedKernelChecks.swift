import Kernels
import Quantization
import XCTest

/// Shared checks for quantized LinearWeights: fast kernels vs their reference twins at odd sizes.
enum QuantizedKernelChecks {
    /// Fast and reference differ only in summation order (SIMD lanes, sgemm blocking).
    static let fastVsReferenceRelTolerance: Float = 1e-5

    typealias Forward = (UnsafePointer<Float>, Int, UnsafeMutablePointer<Float>, Bool) -> Void
    typealias Backward = (UnsafePointer<Float>, Int, UnsafeMutablePointer<Float>) -> Void

    static func compare(n: Int, k: Int, tokens: Int, seed: UInt64,
                        fast: Forward, reference: Forward,
                        fastBackward: Backward, referenceBackward: Backward,
                        file: StaticString = #filePath, line: UInt = #line) {
        var rng = TestRNG(seed)
        let x = rng.floats(tokens * k)
        let y0 = rng.floats(tokens * n)
        for accumulate in [false, true] {
            var a = y0, b = y0
            fast(x, tokens, &a, accumulate)
            reference(x, tokens, &b, accumulate)
            XCTAssertLessThanOrEqual(maxRelativeError(a, b), fastVsReferenceRelTolerance,
                                     "forward N=\(n) K=\(k) T=\(tokens) accumulate=\(accumulate)", file: file, line: line)
            XCTAssertNotEqual(a, y0, file: file, line: line)
        }
        let dy = rng.floats(tokens * n)
        let dx0 = rng.floats(tokens * k)
        var a = dx0, b = dx0
        fastBackward(dy, tokens, &a)
        referenceBackward(dy, tokens, &b)
        XCTAssertLessThanOrEqual(maxRelativeError(a, b), fastVsReferenceRelTolerance,
                                 "backwardInput N=\(n) K=\(k) T=\(tokens)", file: file, line: line)
    }
}
