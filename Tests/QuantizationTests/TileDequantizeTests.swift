import Kernels
import Quantization
import TestSupport
import XCTest

/// The AVX2 dequantize-into-tile kernels (`ck_dequant_q4_1`, `ck_dequant_q8_0`, `ck_dequant_nf4`) against
/// their portable Swift twins: the same bits at odd sizes, since both compute the same roundings.
final class TileDequantizeTests: XCTestCase {
    override func setUpWithError() throws {
        // The comparison needs the AVX2 path; on a CPU without it only the portable path exists.
        guard QuantizedKernelDispatch.cpuHasAVX2 else { throw XCTSkip("the CPU has no AVX2 + FMA + F16C") }
    }

    override func tearDown() { QuantizedKernelDispatch.useAVX2 = true }

    /// Blocks with random f16 scales over the whole finite range (normal, subnormal, negative, zero)
    /// and random quant bytes.
    func blocks(count: Int, blockBytes: Int, scales: Int, seed: UInt64) -> [UInt8] {
        var rng = TestRNG(seed: seed)
        var out: [UInt8] = []
        for _ in 0..<count {
            for _ in 0..<scales {
                var h = UInt16(truncatingIfNeeded: rng.next() >> 48)
                if h & 0x7C00 == 0x7C00 { h &= 0x83FF }  // inf / NaN exponent -> a subnormal
                out += [UInt8(h & 0xFF), UInt8(h >> 8)]
            }
            for _ in 0..<(blockBytes - 2 * scales) { out.append(UInt8(truncatingIfNeeded: rng.next() >> 40)) }
        }
        return out
    }

    func testQ4_1AndQ8_0KernelsEqualPortableTwinsBitForBitAtOddBlockCounts() {
        for count in [1, 3, 7, 37, 130] {
            for (bytes, scales) in [(Q4_1Weight.blockBytes, 2), (Q8_0Weight.blockBytes, 1)] {
                let raw = blocks(count: count, blockBytes: bytes, scales: scales, seed: UInt64(count * 100 + bytes))
                // A sentinel past the end: neither kernel may write beyond count * 32 floats.
                var fast = [Float](repeating: .nan, count: count * 32 + 1), portable = fast
                fast[count * 32] = 12345; portable[count * 32] = 12345
                raw.withUnsafeBytes { src in
                    if scales == 2 {
                        QuantizedKernelDispatch.useAVX2 = true
                        Q4_1Weight.dequantize(src.baseAddress!, blockCount: count, into: &fast)
                        Q4_1Weight.dequantizePortable(src.baseAddress!, blockCount: count, into: &portable)
                    } else {
                        QuantizedKernelDispatch.useAVX2 = true
                        Q8_0Weight.dequantize(src.baseAddress!, blockCount: count, into: &fast)
                        Q8_0Weight.dequantizePortable(src.baseAddress!, blockCount: count, into: &portable)
                    }
                }
                XCTAssertEqual(fast.map(\.bitPattern), portable.map(\.bitPattern), "\(bytes)-byte blocks, \(count) blocks")
                XCTAssertEqual(fast[count * 32], 12345)
                XCTAssertFalse(fast.contains { $0.isNaN }, "every element written")
            }
        }
    }

    func testNF4KernelEqualsPortableTwinBitForBitOnRowRanges() throws {
        // K = 64 and 192: whole blocks per row (the AVX2 path); K = 100: blocks straddle rows (portable only,
        // checked to take it). Row ranges start and end at odd rows; 70 blocks crosses the scale batch of 64.
        for (n, k) in [(37, 192), (70, 64), (9, 100)] {
            var rng = TestRNG(seed: UInt64(n * k))
            let w = try NF4Weight(outFeatures: n, inFeatures: k, data: rng.uniform(n * k, scale: 0.05))
            for (r0, r1) in [(0, n), (1, n - 2), (n - 1, n), (3, 4)] {
                let count = (r1 - r0) * k
                var fast = [Float](repeating: .nan, count: count + 1), portable = fast
                fast[count] = 12345
                QuantizedKernelDispatch.useAVX2 = true
                w.dequantizeRows(r0, r1, into: &fast)
                w.dequantizeRowsPortable(r0, r1, into: &portable)
                XCTAssertEqual(Array(fast[0..<count]).map(\.bitPattern), Array(portable[0..<count]).map(\.bitPattern),
                               "N=\(n) K=\(k) rows \(r0)..<\(r1)")
                XCTAssertEqual(fast[count], 12345)
            }
        }
    }

    func testPortableDispatchMatchesTheAVX2TilesInAForwardPass() throws {
        // The dispatch flag reaches the tile path: a T = 5 forward (tiles + sgemm) with either kernel gives
        // the same bits, because the tiles are identical and sgemm then sees the same inputs.
        let (n, k, t) = (45, 96, 5)
        let raw = blocks(count: n * k / 32, blockBytes: Q4_1Weight.blockBytes, scales: 2, seed: 9)
        let w = try Q4_1Weight(outFeatures: n, inFeatures: k, blocks: raw)
        var rng = TestRNG(seed: 10)
        let x = rng.uniform(t * k)
        var a = [Float](repeating: 0, count: t * n), b = a
        QuantizedKernelDispatch.useAVX2 = true
        w.forward(x, tokens: t, into: &a, accumulate: false)
        QuantizedKernelDispatch.useAVX2 = false
        w.forward(x, tokens: t, into: &b, accumulate: false)
        XCTAssertEqual(a.map(\.bitPattern), b.map(\.bitPattern))
    }
}
