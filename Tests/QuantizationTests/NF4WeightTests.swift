import Foundation
import Kernels
import Quantization
import TestSupport
import XCTest

final class NF4WeightTests: XCTestCase {
    /// NF4Weight.forward against a plain fp32 matmul on bitsandbytes' dequantized weight: the weights
    /// may differ by the dequantization's roundings (NF4QuantizationTests.dequantRelTolerance), and
    /// the K-term products by their summation order.
    static func forwardVsDequantizedRelTolerance(terms k: Int) -> Float {
        NF4QuantizationTests.dequantRelTolerance + QuantizedKernelChecks.fastVsReferenceRelTolerance(terms: k)
    }

    func testFastKernelsMatchReferenceTwinsAtOddSizes() throws {
        // K = 192: block-aligned rows (fused GEMV at T = 1); K = 37 and 100: blocks and bytes straddle rows.
        for (n, k) in [(77, 192), (13, 37), (9, 100), (3, 64)] {
            var rng = TestRNG(seed: UInt64(n * 1000 + k))
            let w = try NF4Weight(outFeatures: n, inFeatures: k, data: rng.uniform(n * k, scale: 0.05))
            for t in [1, 3, 17] {
                QuantizedKernelChecks.compare(
                    n: n, k: k, tokens: t, seed: UInt64(t),
                    fast: { w.forward($0, tokens: $1, into: $2, accumulate: $3) },
                    reference: { w.forwardReference($0, tokens: $1, into: $2, accumulate: $3) },
                    fastBackward: { w.backwardInput($0, tokens: $1, into: $2) },
                    referenceBackward: { w.backwardInputReference($0, tokens: $1, into: $2) })
            }
        }
    }

    func testTileDequantizationEqualsWholeTensorDequantization() throws {
        var rng = TestRNG(seed: 5)
        for (n, k) in [(77, 192), (13, 37)] {
            let w = try NF4Weight(outFeatures: n, inFeatures: k, data: rng.uniform(n * k))
            var tile = [Float](repeating: .nan, count: (n - 2) * k)
            w.dequantizeRows(1, n - 1, into: &tile)
            XCTAssertEqual(tile, Array(w.tensor.dequantized()[k..<((n - 1) * k)]))
        }
    }

    func testForwardOnBitsandbytesStateMatchesMatmulWithItsDequantizedWeight() throws {
        for name in ["rand_64x192", "rand_96x256", "special_3x128", "tail_7x37", "zerotail_3x70"] {
            let c = try XCTUnwrap(try NF4Fixtures.cases()[name])
            let shape = try XCTUnwrap(c["shape"] as? [Int])
            let t = try NF4Tensor(shape: shape, packed: try NF4Fixtures.bytes(c["packed"] as! String),
                                  absmaxCodes: try NF4Fixtures.bytes(c["absmax_q"] as! String),
                                  nestedAbsmax: try NF4Fixtures.floats(c["nested_absmax"] as! String),
                                  offset: Float(bitPattern: UInt32(c["offset_bits"] as! Int)))
            let w = try NF4Weight(t)
            let bnb = try NF4Fixtures.floats(c["dequant"] as! String)
            let dense = DenseWeight(outFeatures: shape[0], inFeatures: shape[1], data: bnb)
            var rng = TestRNG(seed: 9)
            for tokens in [1, 5] {
                let x = rng.uniform(tokens * shape[1])
                var ours = [Float](repeating: 0, count: tokens * shape[0])
                var ref = ours
                w.forward(x, tokens: tokens, into: &ours, accumulate: false)
                dense.forward(x, tokens: tokens, into: &ref, accumulate: false)
                XCTAssertLessThanOrEqual(maxRelativeError(ours, ref), Self.forwardVsDequantizedRelTolerance(terms: shape[1]), "\(name) T=\(tokens)")
            }
        }
    }

    func testResidentBytesAreThePackedState() throws {
        let w = try NF4Weight(outFeatures: 576, inFeatures: 1536, data: [Float](repeating: 0.1, count: 576 * 1536))
        XCTAssertEqual(w.residentBytes, w.tensor.residentBytes)
        XCTAssertLessThanOrEqual(Double(w.residentBytes) / Double(576 * 1536), 0.52)
    }
}

extension NF4WeightTests {
    func testConcurrentCallersEachGetTheirOwnTileBuffer() throws {
        // Serving runs several requests over the same frozen weight: per-thread tiles must not be shared.
        var rng = TestRNG(seed: 21)
        let (n, k, t) = (300, 256, 9)
        let w = try NF4Weight(outFeatures: n, inFeatures: k, data: rng.uniform(n * k))
        let inputs = (0..<6).map { _ in rng.uniform(t * k) }
        let expected: [[Float]] = inputs.map { x in
            var y = [Float](repeating: 0, count: t * n)
            w.forwardReference(x, tokens: t, into: &y, accumulate: false)
            return y
        }
        let results = UnsafeMutablePointer<[Float]>.allocate(capacity: inputs.count)
        results.initialize(repeating: [], count: inputs.count)
        defer { results.deinitialize(count: inputs.count); results.deallocate() }
        DispatchQueue.concurrentPerform(iterations: inputs.count * 4) { i in
            let c = i % inputs.count
            var y = [Float](repeating: 0, count: t * n)
            w.forward(inputs[c], tokens: t, into: &y, accumulate: false)
            if i < inputs.count { results[c] = y }
        }
        for c in 0..<inputs.count {
            XCTAssertLessThanOrEqual(maxRelativeError(results[c], expected[c]), QuantizedKernelChecks.fastVsReferenceRelTolerance(terms: k))
        }
    }
}
