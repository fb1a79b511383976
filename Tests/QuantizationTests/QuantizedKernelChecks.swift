import Kernels
import Quantization
import TestSupport
import XCTest

/// Shared checks for quantized LinearWeights: fast kernels vs their reference twins at odd sizes.
enum QuantizedKernelChecks {
    /// Fast and reference differ only in summation order (SIMD lanes, sgemm blocking) over the K
    /// terms of each output (N terms for backwardInput): FP32.randomProduct's bound on random inputs.
    static func fastVsReferenceRelTolerance(terms k: Int) -> Float { Float(FP32.randomProduct(terms: k)) }

    typealias Forward = (UnsafePointer<Float>, Int, UnsafeMutablePointer<Float>, Bool) -> Void
    typealias Backward = (UnsafePointer<Float>, Int, UnsafeMutablePointer<Float>) -> Void

    static func compare(n: Int, k: Int, tokens: Int, seed: UInt64,
                        fast: Forward, reference: Forward,
                        fastBackward: Backward, referenceBackward: Backward,
                        file: StaticString = #filePath, line: UInt = #line) {
        var rng = TestRNG(seed: seed)
        let x = rng.uniform(tokens * k)
        let y0 = rng.uniform(tokens * n)
        for accumulate in [false, true] {
            var a = y0, b = y0
            fast(x, tokens, &a, accumulate)
            reference(x, tokens, &b, accumulate)
            XCTAssertLessThanOrEqual(maxRelativeError(a, b), fastVsReferenceRelTolerance(terms: k),
                                     "forward N=\(n) K=\(k) T=\(tokens) accumulate=\(accumulate)", file: file, line: line)
            XCTAssertNotEqual(a, y0, file: file, line: line)
        }
        let dy = rng.uniform(tokens * n)
        let dx0 = rng.uniform(tokens * k)
        var a = dx0, b = dx0
        fastBackward(dy, tokens, &a)
        referenceBackward(dy, tokens, &b)
        XCTAssertLessThanOrEqual(maxRelativeError(a, b), fastVsReferenceRelTolerance(terms: n),
                                 "backwardInput N=\(n) K=\(k) T=\(tokens)", file: file, line: line)
    }
}
