import Kernels
import Quantization
import TestSupport
import XCTest

/// Q4_1 / Q8_0 weights over GGUF blocks kept as stored.
final class QuantizedGGUFBlockWeightTests: XCTestCase {
    /// gguf-py dequantizes in fp32 numpy (q * d + m); ours must give the same values.
    /// gguf-py dequantizes in numpy with the same formula (d·q + m for Q4_1, d·q for Q8_0, f16 scales
    /// widened exactly): two roundings each side; 16 roundings relative to the largest value leave room
    /// for numpy's float32 evaluation order.
    static let dequantRelTolerance = Float(FP32.roundings(16))

    /// Random but valid blocks: f16 scales in a sane range, random quant bytes.
    func randomBlocks(n: Int, k: Int, blockBytes: Int, scales: Int, seed: UInt64) -> [UInt8] {
        var rng = TestRNG(seed: seed)
        var out: [UInt8] = []
        for _ in 0..<(n * k / 32) {
            for _ in 0..<scales {
                let h = Half.fromFloat(rng.uniform() * 0.02)
                out += [UInt8(h & 0xFF), UInt8(h >> 8)]
            }
            for _ in 0..<(blockBytes - 2 * scales) { out.append(UInt8(truncatingIfNeeded: rng.next() >> 40)) }
        }
        return out
    }

    /// The fp32 kernels (`LORA_DECODE_ACTIVATIONS=f32`; the int8 ones against their bound: Q8ActivationTests).
    func testQ4_1FastKernelsMatchReferenceTwinsAtOddSizes() throws {
        try withDecodeActivations(.f32) { try checkQ4_1FastKernelsMatchReferenceTwinsAtOddSizesFP32() }
    }

    func checkQ4_1FastKernelsMatchReferenceTwinsAtOddSizesFP32() throws {
        for (n, k) in [(77, 192), (5, 96), (3, 32)] {
            let w = try Q4_1Weight(outFeatures: n, inFeatures: k, blocks: randomBlocks(n: n, k: k, blockBytes: 20, scales: 2, seed: UInt64(n + k)))
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

    /// Weights of several 1 MiB tiles, spread over 1, 2 and 3 threads (tiles taken whole by each pool
    /// task): the forward still matches the reference twin, runs again to the same bits, and each
    /// prefill chunk is its own forward bit for bit.
    func testTiledForwardOverThePoolMatchesTheReferenceWithAnyThreadCount() throws {
        let n = 700, k = 1024   // 2.9 MB of fp32: 3 or 4 tiles
        let w = try Q4_1Weight(outFeatures: n, inFeatures: k, blocks: randomBlocks(n: n, k: k, blockBytes: 20, scales: 2, seed: 41))
        var rng = TestRNG(seed: 42)
        let t = 37
        let x = rng.uniform(t * k)
        var reference = [Float](repeating: 0, count: t * n)
        w.forwardReference(x, tokens: t, into: &reference, accumulate: false)
        for threads in [1, 2, 3] {
            ComputeContext.run(ComputeContext(threads: threads)) {
                var a = [Float](repeating: 0, count: t * n), b = a, chunked = a
                w.forward(x, tokens: t, into: &a, accumulate: false)
                w.forward(x, tokens: t, into: &b, accumulate: false)
                XCTAssertLessThanOrEqual(maxRelativeError(a, reference), QuantizedKernelChecks.fastVsReferenceRelTolerance(terms: k),
                                         "threads \(threads)")
                XCTAssertEqual(a.map(\.bitPattern), b.map(\.bitPattern), "threads \(threads): the same input, other bits")
                let chunks = [0..<10, 10..<11, 11..<t]
                w.forwardChunks(x, chunks: chunks, into: &chunked, accumulate: false)
                for c in chunks {
                    var alone = [Float](repeating: 0, count: c.count * n)
                    w.forward(Array(x[(c.lowerBound * k)..<(c.upperBound * k)]), tokens: c.count, into: &alone, accumulate: false)
                    XCTAssertEqual(Array(chunked[(c.lowerBound * n)..<(c.upperBound * n)]).map(\.bitPattern), alone.map(\.bitPattern),
                                   "threads \(threads) chunk \(c)")
                }
            }
        }
    }

    /// The fp32 kernels (`LORA_DECODE_ACTIVATIONS=f32`; the int8 ones against their bound: Q8ActivationTests).
    func testQ8_0FastKernelsMatchReferenceTwinsAtOddSizes() throws {
        try withDecodeActivations(.f32) { try checkQ8_0FastKernelsMatchReferenceTwinsAtOddSizesFP32() }
    }

    func checkQ8_0FastKernelsMatchReferenceTwinsAtOddSizesFP32() throws {
        for (n, k) in [(77, 192), (5, 96), (3, 32)] {
            let w = try Q8_0Weight(outFeatures: n, inFeatures: k, blocks: randomBlocks(n: n, k: k, blockBytes: 34, scales: 1, seed: UInt64(n * k)))
            for t in [1, 3, 17] {
                QuantizedKernelChecks.compare(
                    n: n, k: k, tokens: t, seed: UInt64(t + 7),
                    fast: { w.forward($0, tokens: $1, into: $2, accumulate: $3) },
                    reference: { w.forwardReference($0, tokens: $1, into: $2, accumulate: $3) },
                    fastBackward: { w.backwardInput($0, tokens: $1, into: $2) },
                    referenceBackward: { w.backwardInputReference($0, tokens: $1, into: $2) })
            }
        }
    }

    func testBlockLayoutLowNibbleIsElementJHighNibbleIsElementJPlus16() throws {
        // Q4_1: d = 0.5 (f16 0x3800), m = -1 (0xBC00); qs[0] = 0x21 -> element 0: 1 * 0.5 - 1, element 16: 2 * 0.5 - 1.
        var q41: [UInt8] = [0x00, 0x38, 0x00, 0xBC] + [UInt8](repeating: 0, count: 16)
        q41[4] = 0x21
        q41[4 + 15] = 0xF0  // element 15: 0 -> -1; element 31: 15 -> 6.5
        XCTAssertEqual(q41.count, Q4_1Weight.blockBytes)
        var out = [Float](repeating: .nan, count: 32)
        try Q4_1Weight(outFeatures: 1, inFeatures: 32, blocks: q41).dequantizeRows(0, 1, into: &out)
        XCTAssertEqual(out[0], -0.5)
        XCTAssertEqual(out[16], 0)
        XCTAssertEqual(out[15], -1)
        XCTAssertEqual(out[31], 6.5)
        XCTAssertEqual(out[1], -1)
        // Q8_0: d = 0.25 (0x3400), q = -128, 127, 1, ...
        var q80: [UInt8] = [0x00, 0x34] + [UInt8](repeating: 0, count: 32)
        q80[2] = 0x80; q80[3] = 0x7F; q80[33] = 1
        XCTAssertEqual(q80.count, Q8_0Weight.blockBytes)
        try Q8_0Weight(outFeatures: 1, inFeatures: 32, blocks: q80).dequantizeRows(0, 1, into: &out)
        XCTAssertEqual(Array(out[0..<2]), [-32, 31.75])
        XCTAssertEqual(out[31], 0.25)
    }

    /// The fp32 kernels (`LORA_DECODE_ACTIVATIONS=f32`; the int8 ones against their bound: Q8ActivationTests).
    func testDequantizationMatchesGGUFPyOnItsOwnBlocks() throws {
        try withDecodeActivations(.f32) { try checkDequantizationMatchesGGUFPyOnItsOwnBlocksFP32() }
    }

    func checkDequantizationMatchesGGUFPyOnItsOwnBlocksFP32() throws {
        let gguf = try XCTUnwrap(try NF4Fixtures.index()["gguf"] as? [String: Any])
        let cases = try XCTUnwrap(gguf["cases"] as? [String: [String: Any]])
        for (name, c) in cases {
            let shape = try XCTUnwrap(c["shape"] as? [Int])
            let blocks = try NF4Fixtures.bytes(c["blocks"] as! String)
            let expected = try NF4Fixtures.floats(c["dequant"] as! String)
            var out = [Float](repeating: .nan, count: shape[0] * shape[1])
            let w: LinearWeight
            if name == "q4_1" {
                let q = try Q4_1Weight(outFeatures: shape[0], inFeatures: shape[1], blocks: blocks)
                q.dequantizeRows(0, shape[0], into: &out)
                w = q
            } else {
                let q = try Q8_0Weight(outFeatures: shape[0], inFeatures: shape[1], blocks: blocks)
                q.dequantizeRows(0, shape[0], into: &out)
                w = q
            }
            XCTAssertLessThanOrEqual(maxRelativeError(out, expected), Self.dequantRelTolerance, name)
            XCTAssertEqual(w.residentBytes, blocks.count)
            // And the GEMV on those blocks equals a dense product with gguf-py's dequantized weight.
            var rng = TestRNG(seed: 1)
            let x = rng.uniform(shape[1])
            var y = [Float](repeating: 0, count: shape[0]), yRef = y
            w.forward(x, tokens: 1, into: &y, accumulate: false)
            DenseWeight(outFeatures: shape[0], inFeatures: shape[1], data: expected).forward(x, tokens: 1, into: &yRef, accumulate: false)
            XCTAssertLessThanOrEqual(maxRelativeError(y, yRef), QuantizedKernelChecks.fastVsReferenceRelTolerance(terms: shape[1]), name)
        }
    }

    func testWrongBlockByteCountIsRefused() {
        XCTAssertThrowsError(try Q4_1Weight(outFeatures: 2, inFeatures: 64, blocks: [UInt8](repeating: 0, count: 79))) { error in
            XCTAssertEqual(error as? QuantizedError, .sizeMismatch(field: "q4_1.blocks (bytes)", expected: 80, actual: 79))
        }
        XCTAssertThrowsError(try Q8_0Weight(outFeatures: 2, inFeatures: 40, blocks: [])) { error in
            guard case .badShape = error as? QuantizedError else { return XCTFail("\(error)") }
        }
    }
}

extension QuantizedGGUFBlockWeightTests {
    func testInlinedHalfConversionEqualsHalfToFloatForEveryBitPattern() throws {
        // Through the public dequantizer: a Q8_0 block with d = h and q[0] = 1 yields exactly h as fp32.
        var block: [UInt8] = [0, 0, 1] + [UInt8](repeating: 0, count: 31)
        var out = [Float](repeating: 0, count: 32)
        for h in 0...UInt16.max {
            block[0] = UInt8(h & 0xFF); block[1] = UInt8(h >> 8)
            block.withUnsafeBytes { Q8_0Weight.dequantize($0.baseAddress!, blockCount: 1, into: &out) }
            let expected = Half.toFloat(h)
            if expected.isNaN { XCTAssertTrue(out[0].isNaN, "\(h)") } else if out[0].bitPattern != expected.bitPattern {
                XCTFail("fp16 0x\(String(h, radix: 16)): \(out[0]) != \(expected)"); return
            }
        }
    }
}

extension QuantizedGGUFBlockWeightTests {
    func testKernelDequantizationEqualsTheGGUFReaderDequantizersBitForBit() throws {
        // GGUFBlocks.swift (the GGUF reader's reference dequantizers) and these kernels must agree exactly,
        // so `keep` computes on the same weights the loader would dequantize.
        let (n, k) = (7, 96)
        let q41 = randomBlocks(n: n, k: k, blockBytes: 20, scales: 2, seed: 77)
        let q80 = randomBlocks(n: n, k: k, blockBytes: 34, scales: 1, seed: 78)
        var ours = [Float](repeating: .nan, count: n * k), theirs = ours
        try Q4_1Weight(outFeatures: n, inFeatures: k, blocks: q41).dequantizeRows(0, n, into: &ours)
        q41.withUnsafeBytes { BlockQ4_1.dequantizeRow($0.baseAddress!, count: n * k, into: &theirs) }
        XCTAssertEqual(ours.map(\.bitPattern), theirs.map(\.bitPattern))
        try Q8_0Weight(outFeatures: n, inFeatures: k, blocks: q80).dequantizeRows(0, n, into: &ours)
        q80.withUnsafeBytes { BlockQ8_0.dequantizeRow($0.baseAddress!, count: n * k, into: &theirs) }
        XCTAssertEqual(ours.map(\.bitPattern), theirs.map(\.bitPattern))
    }
}
