import Foundation
import Quantization
import TestSupport
import XCTest

/// GGUF block layouts and dequantization, checked against the `gguf` Python package
/// (fixture: scripts/fixtures/make_format_fixtures.py -> Tests/Fixtures/formats/gguf_blocks.json).
final class GGUFBlocksTests: XCTestCase {
    struct Case: Decodable {
        var type: String
        var type_id: UInt32
        var block_size: Int
        var bytes_per_block: Int
        var count: Int
        var bytes: String
        var values: [Double]
    }

    static let formats: [String: GGUFBlockFormat.Type] = [
        "Q8_0": BlockQ8_0.self, "Q4_0": BlockQ4_0.self, "Q4_1": BlockQ4_1.self,
        "Q5_0": BlockQ5_0.self, "Q4_K": BlockQ4_K.self, "Q6_K": BlockQ6_K.self,
    ]

    func loadCases() throws -> [Case] {
        let data = try Data(contentsOf: TestPaths.fixture("formats/gguf_blocks.json"))
        return try JSONDecoder().decode([Case].self, from: data)
    }

    static func bytes(hex: String) -> [UInt8] {
        var out: [UInt8] = []
        var it = hex.utf8.makeIterator()
        func nib(_ c: UInt8) -> UInt8 { c <= 57 ? c - 48 : c - 87 }
        while let a = it.next(), let b = it.next() { out.append(nib(a) << 4 | nib(b)) }
        return out
    }

    func testEveryFixtureTypeIsCovered() throws {
        let types = Set(try loadCases().map(\.type))
        XCTAssertEqual(types, Set(Self.formats.keys))
    }

    func testBlockSizesMatchTheGGUFPackage() throws {
        for c in try loadCases() {
            let f = try XCTUnwrap(Self.formats[c.type])
            XCTAssertEqual(f.type.rawValue, c.type_id, c.type)
            XCTAssertEqual(f.type.name, c.type)
            XCTAssertEqual(f.blockSize, c.block_size, c.type)
            XCTAssertEqual(f.bytesPerBlock, c.bytes_per_block, c.type)
            XCTAssertEqual(f.type.blockSize, c.block_size, c.type)
            XCTAssertEqual(f.type.bytesPerBlock, c.bytes_per_block, c.type)
            XCTAssertEqual(c.bytes.count / 2, c.count / c.block_size * c.bytes_per_block, c.type)
        }
    }

    func testDequantizationIsBitIdenticalToTheGGUFPackage() throws {
        for c in try loadCases() {
            let raw = Self.bytes(hex: c.bytes)
            let type = try XCTUnwrap(GGMLType(rawValue: c.type_id))
            var out = [Float](repeating: .nan, count: c.count)
            let ok = raw.withUnsafeBytes { src in
                out.withUnsafeMutableBufferPointer { GGUFDequantize.row(type, src.baseAddress!, count: c.count, into: $0.baseAddress!) }
            }
            XCTAssertTrue(ok, c.type)
            var mismatches = 0
            for i in 0..<c.count where out[i] != Float(c.values[i]) {
                if mismatches < 3 { XCTFail("\(c.type)[\(i)]: \(out[i]) != \(c.values[i])") }
                mismatches += 1
            }
            XCTAssertEqual(mismatches, 0, "\(c.type): \(mismatches) of \(c.count) values differ")
        }
    }

    /// Dequantizes one hand-built block.
    func dequant(_ f: GGUFBlockFormat.Type, _ block: [UInt8]) -> [Float] {
        XCTAssertEqual(block.count, f.bytesPerBlock)
        var out = [Float](repeating: .nan, count: f.blockSize)
        block.withUnsafeBytes { src in out.withUnsafeMutableBufferPointer { f.dequantizeRow(src.baseAddress!, count: f.blockSize, into: $0.baseAddress!) } }
        return out
    }

    func testQ8_0LayoutIsScaleThenSignedBytes() {
        var b = [UInt8](repeating: 0, count: 34)
        b[0] = 0x00; b[1] = 0x40          // d = 2.0 (fp16 0x4000, little-endian)
        b[2 + 3] = UInt8(bitPattern: -5)  // element 3
        b[2 + 31] = 127                   // element 31
        let w = dequant(BlockQ8_0.self, b)
        XCTAssertEqual(w[3], -10)
        XCTAssertEqual(w[31], 254)
        XCTAssertEqual(w[0], 0)
    }

    func testQ4_1LayoutLowNibblesAreElements0To15AndHighNibbles16To31() {
        var b = [UInt8](repeating: 0, count: 20)
        b[0] = 0x00; b[1] = 0x3C          // d = 1.0
        b[2] = 0x00; b[3] = 0x38          // m = 0.5
        b[4 + 0] = 0x21                   // element 0 = 1, element 16 = 2
        b[4 + 15] = 0xF7                  // element 15 = 7, element 31 = 15
        let w = dequant(BlockQ4_1.self, b)
        XCTAssertEqual(w[0], 1.5)
        XCTAssertEqual(w[16], 2.5)
        XCTAssertEqual(w[15], 7.5)
        XCTAssertEqual(w[31], 15.5)
        XCTAssertEqual(w[1], 0.5)
    }

    func testQ4_0SubtractsEight() {
        var b = [UInt8](repeating: 0x88, count: 18)
        b[0] = 0x00; b[1] = 0x3C          // d = 1.0
        b[2 + 2] = 0x0F                   // element 2 = 15 - 8, element 18 = 0 - 8
        let w = dequant(BlockQ4_0.self, b)
        XCTAssertEqual(w[2], 7)
        XCTAssertEqual(w[18], -8)
        XCTAssertEqual(w[0], 0)
    }

    func testQ5_0HighBitsComeFromTheLittleEndianMask() {
        var b = [UInt8](repeating: 0, count: 22)
        b[0] = 0x00; b[1] = 0x3C          // d = 1.0
        b[2 + 2] = 0x02                   // qh bit 17 -> element 17's fifth bit
        b[6 + 1] = 0x30                   // element 17 low nibble 3 (element 1 low nibble 0)
        let w = dequant(BlockQ5_0.self, b)
        XCTAssertEqual(w[17], 3)          // (16 | 3) - 16
        XCTAssertEqual(w[1], -16)
    }
}
