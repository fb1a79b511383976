import Foundation
import Model
import Quantization
import TestSupport
import XCTest

/// Builds GGUF bytes for tests, recording where each field was written.
struct GGUFTestBuilder {
    var magic: UInt32 = 0x4655_4747
    var version: UInt32 = 3
    var kvs: [(key: String, type: UInt32, payload: Data)] = []
    var tensors: [(name: String, ne: [UInt64], type: UInt32, offset: UInt64)] = []
    var tensorData = Data()
    var tensorCountOverride: UInt64?
    var kvCountOverride: UInt64?
    /// Byte offsets of fields, filled by `build()`: "tensor_count", "kv_count", "kv.<key>", "tensor.<name>.offset".
    var positions: [String: Int] = [:]

    static func le<T: FixedWidthInteger>(_ v: T) -> Data { withUnsafeBytes(of: v.littleEndian) { Data($0) } }
    static func str(_ s: String) -> Data { le(UInt64(s.utf8.count)) + Data(s.utf8) }

    mutating func add(_ key: String, string v: String) { kvs.append((key, 8, Self.str(v))) }
    mutating func add(_ key: String, u32 v: UInt32) { kvs.append((key, 4, Self.le(v))) }
    mutating func add(_ key: String, f32 v: Float) { kvs.append((key, 6, Self.le(v.bitPattern))) }
    mutating func add(_ key: String, strings: [String]) {
        kvs.append((key, 9, Self.le(UInt32(8)) + Self.le(UInt64(strings.count)) + strings.reduce(Data()) { $0 + Self.str($1) }))
    }

    /// Adds an F32 tensor of the given ggml dims (ne) filled with `values`.
    mutating func addF32(_ name: String, ne: [Int], values: [Float]) {
        while tensorData.count % 32 != 0 { tensorData.append(0) }
        tensors.append((name, ne.map(UInt64.init), 0, UInt64(tensorData.count)))
        for v in values { tensorData.append(Self.le(v.bitPattern)) }
    }

    mutating func build() -> Data {
        var d = Self.le(magic) + Self.le(version)
        positions["tensor_count"] = d.count
        d += Self.le(tensorCountOverride ?? UInt64(tensors.count))
        positions["kv_count"] = d.count
        d += Self.le(kvCountOverride ?? UInt64(kvs.count))
        for kv in kvs {
            positions["kv.\(kv.key)"] = d.count
            d += Self.str(kv.key) + Self.le(kv.type) + kv.payload
        }
        for t in tensors {
            d += Self.str(t.name) + Self.le(UInt32(t.ne.count))
            for n in t.ne { d += Self.le(n) }
            d += Self.le(t.type)
            positions["tensor.\(t.name).offset"] = d.count
            d += Self.le(t.offset)
        }
        while d.count % 32 != 0 { d.append(0) }
        positions["data"] = d.count
        return d + tensorData
    }
}

final class GGUFFileTests: TemporaryDirectoryTestCase {
    func write(_ data: Data, _ name: String = "m.gguf") throws -> URL {
        let url = dir.appendingPathComponent(name)
        try data.write(to: url)
        return url
    }

    func assertMalformed(_ url: URL, offset: Int?, _ reasonContains: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try GGUFFile(url), file: file, line: line) { error in
            guard case let ModelError.malformedFile(path, o, reason) = error else {
                return XCTFail("expected malformedFile, got \(error)", file: file, line: line)
            }
            XCTAssertEqual(path, url.path, file: file, line: line)
            XCTAssertEqual(o, offset, "reason: \(reason)", file: file, line: line)
            XCTAssertTrue(reason.contains(reasonContains), "'\(reason)' should mention '\(reasonContains)'", file: file, line: line)
        }
    }

    func validBuilder() -> GGUFTestBuilder {
        var b = GGUFTestBuilder()
        b.add("general.architecture", string: "llama")
        b.add("general.name", string: "test")
        b.addF32("a.weight", ne: [4, 2], values: [0, 1, 2, 3, 4, 5, 6, 7])
        b.addF32("b.weight", ne: [3], values: [9, 8, 7])
        return b
    }

    func testReadsHeaderMetadataAndTensorsOfABuiltFile() throws {
        var b = validBuilder()
        let f = try GGUFFile(write(b.build()))
        XCTAssertEqual(f.version, 3)
        XCTAssertEqual(f.alignment, 32)
        XCTAssertEqual(f.metadata["general.name"], .string("test"))
        XCTAssertEqual(f.tensors.map(\.name), ["a.weight", "b.weight"])
        XCTAssertEqual(f.tensor(named: "a.weight")?.shape, [2, 4])   // PyTorch order: ne reversed
        XCTAssertEqual(f.tensor(named: "a.weight")?.ne, [4, 2])
        XCTAssertEqual(f.dataOffset, b.positions["data"])
        XCTAssertEqual(try f.floats("a.weight"), [0, 1, 2, 3, 4, 5, 6, 7])
        XCTAssertEqual(try f.floats("b.weight"), [9, 8, 7])
        XCTAssertEqual(try f.rawBytes("b.weight").count, 12)
    }

    func testReadsEveryMetadataTypeOfTheFixtureWrittenByTheGGUFPackage() throws {
        let f = try GGUFFile(TestPaths.fixture("formats/tiny_llama.gguf"))
        XCTAssertEqual(f.version, 3)
        let m = f.metadata
        XCTAssertEqual(m["test.u8"], .uint8(200))
        XCTAssertEqual(m["test.i8"], .int8(-100))
        XCTAssertEqual(m["test.u16"], .uint16(60000))
        XCTAssertEqual(m["test.i16"], .int16(-30000))
        XCTAssertEqual(m["test.i32"], .int32(-2_000_000_000))
        XCTAssertEqual(m["test.u64"], .uint64(1 << 40 + 3))
        XCTAssertEqual(m["test.i64"], .int64(-(1 << 40) - 5))
        XCTAssertEqual(m["test.f64"], .float64(0.1))
        XCTAssertEqual(m["test.bool"], .bool(true))
        XCTAssertEqual(m["test.nested"], .array([.array([.int32(1), .int32(2), .int32(3)]), .array([.int32(4)])]))
        XCTAssertEqual(m["test.strings"]?.strings, ["a", "ü", ""])
        XCTAssertEqual(m["llama.block_count"]?.int, 2)
        XCTAssertEqual(m["llama.rope.freq_base"]?.float, 10000)
        XCTAssertEqual(f.metadataKeys.first, "general.architecture")
        XCTAssertEqual(f.tensors.count, 1 + 2 * 9 + 1)
        let embd = try XCTUnwrap(f.tensor(named: "token_embd.weight"))
        XCTAssertEqual(embd.shape, [48, 32])
        XCTAssertEqual(embd.type, .q8_0)
        XCTAssertEqual(embd.byteCount, 48 * 32 / 32 * 34)
        XCTAssertEqual(f.tensor(named: "blk.0.attn_q.weight")?.type, .q4_1)
        XCTAssertEqual(f.tensor(named: "blk.0.ffn_up.weight")?.type, .bf16)
        for t in f.tensors { XCTAssertEqual(t.offset % f.alignment, 0, t.name) }
    }

    // MARK: Bad input: each names the file and the byte offset.

    func testBadMagicIsMalformedAtOffset0() throws {
        var b = validBuilder()
        b.magic = 0x1234_5678
        assertMalformed(try write(b.build()), offset: 0, "bad magic")
    }

    func testUnsupportedVersionIsMalformedAtOffset4() throws {
        var b = validBuilder()
        b.version = 1
        assertMalformed(try write(b.build()), offset: 4, "version 1")
        b.version = UInt32(3).byteSwapped
        assertMalformed(try write(b.build(), "be.gguf"), offset: 4, "big-endian")
    }

    func testAbsurdTensorCountIsRefusedBeforeAllocating() throws {
        var b = validBuilder()
        b.tensorCountOverride = 1 << 62
        let data = b.build()
        assertMalformed(try write(data), offset: b.positions["tensor_count"]!, "tensor count")
    }

    func testAbsurdKeyValueCountIsRefused() throws {
        var b = validBuilder()
        b.kvCountOverride = UInt64.max
        let data = b.build()
        assertMalformed(try write(data), offset: b.positions["kv_count"]!, "key/value count")
    }

    func testAbsurdStringLengthIsRefused() throws {
        var b = GGUFTestBuilder()
        b.kvs.append(("general.name", 8, GGUFTestBuilder.le(UInt64(1) << 50) + Data("x".utf8)))
        let data = b.build()
        // The value's length field follows the key string and the 4-byte type.
        let at = b.positions["kv.general.name"]! + 8 + "general.name".utf8.count + 4
        assertMalformed(try write(data), offset: at, "absurd")
    }

    func testAbsurdArrayLengthIsRefused() throws {
        var b = GGUFTestBuilder()
        b.kvs.append(("tokenizer.ggml.tokens", 9, GGUFTestBuilder.le(UInt32(8)) + GGUFTestBuilder.le(UInt64(1) << 40)))
        let data = b.build()
        let at = b.positions["kv.tokenizer.ggml.tokens"]! + 8 + "tokenizer.ggml.tokens".utf8.count + 4 + 4
        assertMalformed(try write(data), offset: at, "array 'tokenizer.ggml.tokens' length")
    }

    func testTensorOffsetOutsideTheFileIsMalformedAtTheOffsetField() throws {
        var b = validBuilder()
        b.tensors[1].offset = 1 << 40
        let data = b.build()
        assertMalformed(try write(data), offset: b.positions["tensor.b.weight.offset"]!, "outside")
    }

    func testTensorDataPastTheEndIsMalformedAtTheTensorsData() throws {
        var b = validBuilder()
        b.tensors[1].offset = 64   // aligned, inside the file, but 12 bytes from there run past the end
        let data = b.build()
        assertMalformed(try write(data), offset: b.positions["data"]! + 64, "'b.weight'")
    }

    func testMisalignedTensorOffsetIsMalformed() throws {
        var b = validBuilder()
        b.tensors[1].offset = 4
        let data = b.build()
        assertMalformed(try write(data), offset: b.positions["tensor.b.weight.offset"]!, "alignment")
    }

    func testUnknownTensorTypeAndTooManyDimensionsAreMalformed() throws {
        var b = validBuilder()
        b.tensors[0].type = 99
        assertMalformed(try write(b.build()), offset: b.positions["tensor.a.weight.offset"]! - 4, "unknown ggml type 99")
        var c = validBuilder()
        c.tensors[0].ne = [1, 1, 1, 1, 8]
        let data = c.build()
        XCTAssertThrowsError(try GGUFFile(write(data, "dims.gguf"))) { error in
            XCTAssertTrue("\(error)".contains("5 dimensions"), "\(error)")
        }
    }

    func testUnsupportedTensorTypeForFloatsNamesTheTensor() throws {
        var b = GGUFTestBuilder()
        b.tensors = [("a.weight", [256, 1], GGMLType.iq2_XXS.rawValue, 0)]
        b.tensorData = Data(count: GGMLType.iq2_XXS.bytesPerBlock)
        let url = try write(b.build())
        let f = try GGUFFile(url)
        XCTAssertThrowsError(try f.floats("a.weight")) { error in
            XCTAssertEqual(error as? ModelError, .unsupportedTensorType(path: url.path, name: "a.weight", type: "IQ2_XXS"))
        }
    }

    /// Every prefix of a real file is either read or refused with an error naming the file: never a crash.
    func testEveryTruncationOfTheFixtureIsAnErrorNamingTheFileAndOffset() throws {
        let full = try Data(contentsOf: TestPaths.fixture("formats/tiny_llama.gguf"))
        var cuts = Array(stride(from: 0, to: full.count, by: 61))
        cuts += [full.count - 1, 23, 24, 25]
        for cut in cuts {
            let url = try write(full.prefix(cut), "cut.gguf")
            XCTAssertThrowsError(try GGUFFile(url), "cut at \(cut)") { error in
                guard case let ModelError.malformedFile(path, offset, _) = error else { return XCTFail("cut \(cut): \(error)") }
                XCTAssertEqual(path, url.path)
                XCTAssertNotNil(offset, "cut \(cut)")
                if let offset { XCTAssertLessThanOrEqual(offset, full.count) }
            }
        }
    }
}
