import Quantization
import TestSupport
import XCTest

/// NF4 + double quantization against bitsandbytes 0.50.2's own outputs (Tests/Fixtures/nf4).
final class NF4QuantizationTests: XCTestCase {
    /// dequantize_4bit is fp32 code · absmax on both sides; absmax itself is recovered as dynamic code ·
    /// nested absmax + offset (three roundings, and the offset's addition may cancel a few bits when the
    /// offset exceeds a block's absmax): 16 roundings bound both, relative to the largest value.
    static let dequantRelTolerance = Float(FP32.roundings(16))

    func testQuantizeGivesBitsandbytesBytesAbsmaxAndNestedStateForEveryFixture() throws {
        let index = try NF4Fixtures.index()
        let threads = try XCTUnwrap(index["torch_threads"] as? Int)
        for (name, c) in try NF4Fixtures.cases() where c["weight"] != nil {
            let shape = try XCTUnwrap(c["shape"] as? [Int])
            let w = try NF4Fixtures.floats(try XCTUnwrap(c["weight"] as? String))
            let t = try w.withUnsafeBufferPointer { try NF4Tensor.quantize($0, shape: shape, meanThreads: threads) }
            XCTAssertEqual(t.packed, try NF4Fixtures.bytes(c["packed"] as! String), "\(name): packed bytes")
            XCTAssertEqual(t.absmaxCodes, try NF4Fixtures.bytes(c["absmax_q"] as! String), "\(name): 8-bit absmax")
            XCTAssertEqual(t.nestedAbsmax.map(\.bitPattern), try NF4Fixtures.floats(c["nested_absmax"] as! String).map(\.bitPattern), "\(name): nested absmax")
            XCTAssertEqual(t.offset.bitPattern, UInt32(try XCTUnwrap(c["offset_bits"] as? Int)), "\(name): offset")
        }
    }

    func testLargeWeightOffsetFollowsTorchsThreadedSummationOrder() throws {
        // 36,864 blocks > torch's GRAIN_SIZE: the mean is summed in per-thread chunks.
        let index = try NF4Fixtures.index()
        let threads = try XCTUnwrap(index["torch_threads"] as? Int)
        let c = try XCTUnwrap(try NF4Fixtures.cases()["lcg_768x3072"])
        let w = NF4Fixtures.lcgWeight(rows: 768, cols: 3072)
        let t = try w.withUnsafeBufferPointer { try NF4Tensor.quantize($0, shape: [768, 3072], meanThreads: threads) }
        XCTAssertEqual(t.offset.bitPattern, UInt32(try XCTUnwrap(c["offset_bits"] as? Int)))
        XCTAssertEqual(String(NF4Fixtures.fnv1a64(t.packed), radix: 16), try XCTUnwrap(c["packed_fnv1a64"] as? String).drop(while: { $0 == "0" }).description)
        XCTAssertEqual(t.absmaxCodes, try NF4Fixtures.bytes(c["absmax_q"] as! String))
        XCTAssertEqual(t.nestedAbsmax.map(\.bitPattern), try NF4Fixtures.floats(c["nested_absmax"] as! String).map(\.bitPattern))
    }

    func testRecoveredAbsmaxEqualsBitsandbytesDequantizeBlockwisePlusOffset() throws {
        for (name, c) in try NF4Fixtures.cases() {
            let shape = try XCTUnwrap(c["shape"] as? [Int])
            let n = shape.reduce(1, *)
            let t = try NF4Tensor(shape: shape, packed: [UInt8](repeating: 0, count: (n + 1) / 2),
                                  absmaxCodes: try NF4Fixtures.bytes(c["absmax_q"] as! String),
                                  nestedAbsmax: try NF4Fixtures.floats(c["nested_absmax"] as! String),
                                  offset: Float(bitPattern: UInt32(c["offset_bits"] as! Int)))
            XCTAssertEqual(t.absmaxValues().map(\.bitPattern), try NF4Fixtures.floats(c["absmax"] as! String).map(\.bitPattern), name)
        }
    }

    func testDequantizeMatchesBitsandbytesDequantize4bit() throws {
        for (name, c) in try NF4Fixtures.cases() where c["packed"] != nil {
            let shape = try XCTUnwrap(c["shape"] as? [Int])
            let t = try NF4Tensor(shape: shape, packed: try NF4Fixtures.bytes(c["packed"] as! String),
                                  absmaxCodes: try NF4Fixtures.bytes(c["absmax_q"] as! String),
                                  nestedAbsmax: try NF4Fixtures.floats(c["nested_absmax"] as! String),
                                  offset: Float(bitPattern: UInt32(c["offset_bits"] as! Int)))
            let ours = t.dequantized()
            let bnb = try NF4Fixtures.floats(c["dequant"] as! String)
            if c["dequant_matches_flat_blocks"] as? Bool == true {
                XCTAssertLessThanOrEqual(maxRelativeError(ours, bnb), Self.dequantRelTolerance, name)
            } else {
                // bitsandbytes' AVX-512 dequantize_4bit indexes absmax per row (K / 64 blocks a row), which
                // is wrong when K is not a multiple of 64 (rows80_2x80); quantize_4bit and the generic path
                // use flattened blocks, as we do. Here our output must match the flattened formula instead.
                let absmax = try NF4Fixtures.floats(c["absmax"] as! String)
                let flat = (0..<t.count).map { NF4Tensor.code[t.codeIndex($0)] * absmax[$0 / 64] }
                XCTAssertEqual(ours, flat, name)
                XCTAssertNotEqual(ours, bnb, "\(name): bitsandbytes' row-indexed AVX-512 dequant was expected to differ")
            }
        }
    }

    func testBlockwise8MatchesBitsandbytesNativeKernelAtEveryCodeMidpoint() throws {
        let b = try XCTUnwrap(try NF4Fixtures.index()["blockwise8"] as? [String: Any])
        let x = try NF4Fixtures.floats(b["input"] as! String)
        let bs = try XCTUnwrap(b["blocksize"] as? Int)
        var codes = [UInt8](repeating: 0, count: x.count)
        var absmax = [Float](repeating: 0, count: (x.count + bs - 1) / bs)
        x.withUnsafeBufferPointer { xb in
            BlockwiseDynamic.quantize(xb, blocksize: bs, codes: &codes, absmax: &absmax)
        }
        XCTAssertEqual(codes, try NF4Fixtures.bytes(b["codes"] as! String))
        XCTAssertEqual(absmax, try NF4Fixtures.floats(b["absmax"] as! String))
        // Nearest-code rounding would disagree somewhere in this set: the table is what makes it exact.
        let map = BlockwiseDynamic.signedMap
        let nearest = x.prefix(255 * 4).map { v in UInt8(map.indices.min(by: { abs(map[$0] - v) < abs(map[$1] - v) })!) }
        XCTAssertNotEqual(Array(nearest), Array(codes.prefix(255 * 4)))
    }

    func testCodeMapsEqualBitsandbytes() throws {
        XCTAssertEqual(NF4Tensor.code, try NF4Fixtures.floats("nf4_code.f32.bin"))
        XCTAssertEqual(BlockwiseDynamic.signedMap.map(\.bitPattern), try NF4Fixtures.floats("dynamic_map.f32.bin").map(\.bitPattern))
    }

    func testFirstElementGoesInTheHighNibbleAndMidpointsTakeTheLowerCode() throws {
        // REFERENCE.md: [1.0, -1.0, 0.5, 0.0] packs to 0xF0, 0xC7.
        var w: [Float] = [1.0, -1.0, 0.5, 0.0]
        var t = try w.withUnsafeBufferPointer { try NF4Tensor.quantize($0, shape: [4]) }
        XCTAssertEqual(t.packed, [0xF0, 0xC7])
        // Exactly on the midpoint between codes 8 and 9 with absmax 1: lower code (8); one ulp above: 9.
        let mid = NF4Tensor.midpoints[8]
        w = [1.0, mid, mid.nextUp, 0]
        t = try w.withUnsafeBufferPointer { try NF4Tensor.quantize($0, shape: [4]) }
        XCTAssertEqual(t.packed, [0xF8, 0x97])
    }

    func testBytesPerParameterWithStateStayUnderQLoRABudget() throws {
        for (n, k) in [(576, 1536), (1536, 576), (576, 576), (192, 576)] {
            let w = [Float](repeating: 0.5, count: n * k)
            let t = try w.withUnsafeBufferPointer { try NF4Tensor.quantize($0, shape: [n, k]) }
            let blocks = n * k / 64
            XCTAssertEqual(t.packed.count, n * k / 2)
            XCTAssertEqual(t.absmaxCodes.count, blocks)
            XCTAssertEqual(t.nestedAbsmax.count, (blocks + 255) / 256)
            XCTAssertEqual(t.residentBytes, n * k / 2 + blocks + 4 * ((blocks + 255) / 256) + 4)
            XCTAssertFalse(t.ownsNestedCode)
            XCTAssertLessThanOrEqual(Double(t.residentBytes) / Double(n * k), 0.52, "\(n)x\(k)")
        }
    }

    func testStoredStateWithWrongSizesIsRefusedWithTheField() {
        XCTAssertThrowsError(try NF4Tensor(shape: [2, 64], packed: [UInt8](repeating: 0, count: 63), absmaxCodes: [0, 0],
                                           nestedAbsmax: [1], offset: 0)) { error in
            XCTAssertEqual(error as? QuantizedError, .sizeMismatch(field: "nf4.packed", expected: 64, actual: 63))
        }
        XCTAssertThrowsError(try NF4Tensor(shape: [2, 64], packed: [UInt8](repeating: 0, count: 64), absmaxCodes: [0],
                                           nestedAbsmax: [1], offset: 0)) { error in
            XCTAssertEqual(error as? QuantizedError, .sizeMismatch(field: "nf4.absmax", expected: 2, actual: 1))
        }
    }
}

extension NF4QuantizationTests {
    func testStoredQuantMapMustBeNF4() throws {
        XCTAssertNoThrow(try NF4Tensor.validateQuantMap(try NF4Fixtures.floats("nf4_code.f32.bin")))
        var fp4like = NF4Tensor.code
        fp4like[3] = 0.25
        XCTAssertThrowsError(try NF4Tensor.validateQuantMap(fp4like)) { error in
            guard case let .badValue(field, _, _)? = error as? QuantizedError else { return XCTFail("\(error)") }
            XCTAssertEqual(field, "nf4.quant_map[3]")
        }
        XCTAssertThrowsError(try NF4Tensor.validateQuantMap([1, 2]))
    }
}
