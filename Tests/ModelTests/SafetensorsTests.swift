import Foundation
import Model
import TestSupport
import XCTest

final class SafetensorsTests: TemporaryDirectoryTestCase {
    static func le<T: FixedWidthInteger>(_ values: [T]) -> Data {
        var d = Data()
        for v in values { withUnsafeBytes(of: v.littleEndian) { d.append(contentsOf: $0) } }
        return d
    }

    /// A file made of an 8-byte header length, the header text and `data`.
    func rawFile(_ name: String, header: String, data: Data = Data(), declaredLength: UInt64? = nil) throws -> URL {
        var out = Self.le([declaredLength ?? UInt64(header.utf8.count)])
        out.append(header.data(using: .utf8)!)
        out.append(data)
        let url = dir.appendingPathComponent(name)
        try out.write(to: url)
        return url
    }

    func assertMalformed(_ url: URL, offset: Int, _ reasonContains: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try SafetensorsFile(url), file: file, line: line) { error in
            guard case let ModelError.malformedFile(path, o, reason) = error else {
                return XCTFail("expected malformedFile, got \(error)", file: file, line: line)
            }
            XCTAssertEqual(path, url.path, file: file, line: line)
            XCTAssertEqual(o, offset, "reason: \(reason)", file: file, line: line)
            XCTAssertTrue(reason.contains(reasonContains), "\(reason) should mention \(reasonContains)", file: file, line: line)
            XCTAssertTrue("\(error)".contains(url.path), file: file, line: line)
            XCTAssertTrue("\(error)".contains("offset \(offset)"), file: file, line: line)
        }
    }

    func testWriterThenReaderRoundTripsEveryDtypeAndMetadata() throws {
        let url = dir.appendingPathComponent("adapter.safetensors")
        let f32: [Float] = [1.5, -2.25, 0, 3e-8, .infinity, -0.0]
        let f16 = Self.le([UInt16(0x3C00), 0xC000, 0x7BFF, 0x0001])        // 1, -2, 65504, 2^-24
        let bf16 = Self.le([UInt16(0x3F80), 0xC0A0])                          // 1, -5
        let u8 = Data([0, 1, 254, 255, 7, 8])
        try SafetensorsWriter.write(tensors: [
            (name: "w.f32", dtype: "F32", shape: [2, 3], bytes: Self.le(f32.map(\.bitPattern))),
            (name: "w.f16", dtype: "F16", shape: [4], bytes: f16),
            (name: "w.bf16", dtype: "BF16", shape: [1, 2], bytes: bf16),
            (name: "w.u8", dtype: "U8", shape: [3, 2], bytes: u8),
            (name: "empty", dtype: "F32", shape: [0, 4], bytes: Data()),
        ], metadata: ["format": "pt", "note": "round trip"], to: url)

        let r = try SafetensorsFile(url)
        XCTAssertEqual(Set(r.names), ["w.f32", "w.f16", "w.bf16", "w.u8", "empty"])
        XCTAssertEqual(r.metadata, ["format": "pt", "note": "round trip"])
        XCTAssertEqual(r.info("w.f32")?.dtype, "F32")
        XCTAssertEqual(r.info("w.f32")?.shape, [2, 3])
        XCTAssertEqual(r.info("w.u8")?.shape, [3, 2])
        let back = try r.floats("w.f32")
        XCTAssertEqual(back.map(\.bitPattern), f32.map(\.bitPattern))
        XCTAssertEqual(try r.floats("w.f16"), [1, -2, 65504, Float(5.9604645e-08)])
        XCTAssertEqual(try r.floats("w.bf16"), [1, -5])
        XCTAssertEqual(try r.data("w.u8"), u8)
        XCTAssertEqual(Array(try r.rawBytes("w.u8")), Array(u8))
        XCTAssertEqual(try r.floats("empty"), [])
        // Written under a temporary name and renamed: nothing else is left in the directory.
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), ["adapter.safetensors"])
        // The data section starts 8-byte aligned, as the safetensors library writes it.
        let headerLength = try Data(contentsOf: url).prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
        XCTAssertEqual(headerLength % 8, 0)
    }

    func testFloatsOfAnIntegerTensorIsAnErrorNamingTheTensor() throws {
        let url = dir.appendingPathComponent("q.safetensors")
        try SafetensorsWriter.write(tensors: [(name: "layer.weight.absmax", dtype: "U8", shape: [2], bytes: Data([1, 2]))], to: url)
        XCTAssertThrowsError(try SafetensorsFile(url).floats("layer.weight.absmax")) { error in
            XCTAssertEqual(error as? ModelError, .unsupportedTensorType(path: url.path, name: "layer.weight.absmax", type: "U8"))
        }
    }

    func testReadsAFileWrittenByTheSafetensorsLibrary() throws {
        let r = try SafetensorsFile(TestPaths.fixture("formats/tiny_llama_hf/model.safetensors"))
        XCTAssertEqual(r.metadata["format"], "pt")
        XCTAssertEqual(r.info("model.embed_tokens.weight")?.shape, [48, 32])
        XCTAssertEqual(r.info("model.layers.1.mlp.down_proj.weight")?.dtype, "F32")
        XCTAssertEqual(try r.floats("model.norm.weight").count, 32)
    }

    // MARK: Bad input: each names the file and the byte offset.

    func testTruncatedHeaderLengthIsMalformedAtOffset0() throws {
        let url = dir.appendingPathComponent("short.safetensors")
        try Data([1, 2, 3]).write(to: url)
        assertMalformed(url, offset: 0, "truncated")
    }

    func testEmptyFileIsMalformedAtOffset0() throws {
        let url = dir.appendingPathComponent("empty.safetensors")
        try Data().write(to: url)
        assertMalformed(url, offset: 0, "truncated")
    }

    func testAbsurdHeaderLengthIsRefusedBeforeAllocating() throws {
        let url = try rawFile("absurd.safetensors", header: "{}", declaredLength: 1 << 60)
        assertMalformed(url, offset: 0, "absurd")
    }

    func testHeaderLengthPastTheEndOfTheFileIsMalformed() throws {
        let url = try rawFile("past.safetensors", header: "{}", declaredLength: 1000)
        assertMalformed(url, offset: 0, "past the end")
    }

    func testHeaderThatIsNotJSONIsMalformedAtOffset8() throws {
        let url = try rawFile("notjson.safetensors", header: "{\"a\": [1, 2")
        assertMalformed(url, offset: 8, "JSON")
    }

    func testDataOffsetsOutsideTheFileAreMalformedNamingTheTensor() throws {
        let header = #"{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#
        let url = try rawFile("outside.safetensors", header: header, data: Data(count: 8))
        assertMalformed(url, offset: 8 + header.utf8.count, "'w'")
        let far = #"{"w":{"dtype":"F32","shape":[1],"data_offsets":[4096,4100]}}"#
        let url2 = try rawFile("far.safetensors", header: far, data: Data(count: 8))
        assertMalformed(url2, offset: 8 + far.utf8.count + 4096, "outside the file")
    }

    func testTruncatedDataSectionIsMalformedAtTheTensorsOffset() throws {
        let url = dir.appendingPathComponent("t.safetensors")
        try SafetensorsWriter.write([.init(name: "a", shape: [4], floats: [1, 2, 3, 4]),
                                     .init(name: "b", shape: [4], floats: [5, 6, 7, 8])], to: url)
        let full = try Data(contentsOf: url)
        try full.prefix(full.count - 3).write(to: url)
        let r = full.prefix(8).withUnsafeBytes { Int($0.loadUnaligned(as: UInt64.self)) }
        assertMalformed(url, offset: 8 + r + 16, "'b'")
    }

    func testDataSizeInconsistentWithShapeIsMalformed() throws {
        let header = #"{"w":{"dtype":"F16","shape":[3],"data_offsets":[0,8]}}"#
        let url = try rawFile("size.safetensors", header: header, data: Data(count: 8))
        assertMalformed(url, offset: 8 + header.utf8.count, "6 expected")
    }

    func testOverlappingTensorsAreMalformed() throws {
        let header = #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#
        let url = try rawFile("overlap.safetensors", header: header, data: Data(count: 12))
        assertMalformed(url, offset: 8 + header.utf8.count + 4, "overlaps")
    }

    func testUnknownDtypeAndBadShapeAreMalformed() throws {
        let url = try rawFile("dtype.safetensors", header: #"{"w":{"dtype":"Q7","shape":[1],"data_offsets":[0,1]}}"#, data: Data(count: 1))
        assertMalformed(url, offset: 8, "unknown dtype Q7")
        let url2 = try rawFile("shape.safetensors", header: #"{"w":{"dtype":"U8","shape":[-1],"data_offsets":[0,1]}}"#, data: Data(count: 1))
        assertMalformed(url2, offset: 8, "bad shape")
        let url3 = try rawFile("huge.safetensors", header: #"{"w":{"dtype":"U8","shape":[4294967296,4294967296],"data_offsets":[0,1]}}"#, data: Data(count: 1))
        assertMalformed(url3, offset: 8, "larger than the file")
    }

    /// Every prefix of a real file is refused with an error naming the file and an offset: never a crash.
    func testEveryTruncationOfARealFileIsAnErrorNamingTheFileAndOffset() throws {
        let full = try Data(contentsOf: TestPaths.fixture("formats/tiny_llama_hf/model.safetensors"))
        let url = dir.appendingPathComponent("cut.safetensors")
        for cut in Array(stride(from: 0, to: full.count, by: 509)) + [7, 8, 9, full.count - 1] {
            try full.prefix(cut).write(to: url)
            XCTAssertThrowsError(try SafetensorsFile(url), "cut at \(cut)") { error in
                guard case let ModelError.malformedFile(path, offset, _) = error else { return XCTFail("cut \(cut): \(error)") }
                XCTAssertEqual(path, url.path)
                XCTAssertNotNil(offset, "cut \(cut)")
            }
        }
    }

    // MARK: Sharded checkpoints

    func testShardedCheckpointReadsTensorsFromEveryShard() throws {
        try SafetensorsWriter.write([.init(name: "a", shape: [2], floats: [1, 2])],
                                    to: dir.appendingPathComponent("model-00001-of-00002.safetensors"))
        try SafetensorsWriter.write([.init(name: "b", shape: [1, 3], floats: [3, 4, 5])],
                                    to: dir.appendingPathComponent("model-00002-of-00002.safetensors"))
        let index = #"{"metadata":{"total_size":20},"weight_map":{"a":"model-00001-of-00002.safetensors","b":"model-00002-of-00002.safetensors"}}"#
        try index.data(using: .utf8)!.write(to: dir.appendingPathComponent("model.safetensors.index.json"))
        let c = try SafetensorsCollection(directory: dir)
        XCTAssertEqual(c.files.count, 2)
        XCTAssertEqual(Set(c.names), ["a", "b"])
        XCTAssertEqual(try c.floats("a"), [1, 2])
        XCTAssertEqual(try c.floats("b"), [3, 4, 5])
        XCTAssertEqual(c.info("b")?.shape, [1, 3])
        XCTAssertEqual(c.file(for: "b")?.url.lastPathComponent, "model-00002-of-00002.safetensors")
    }

    func testShardIndexNamingATensorItsShardLacksIsAnError() throws {
        try SafetensorsWriter.write([.init(name: "a", shape: [1], floats: [1])],
                                    to: dir.appendingPathComponent("s1.safetensors"))
        let index = #"{"weight_map":{"a":"s1.safetensors","lost":"s1.safetensors"}}"#
        try index.data(using: .utf8)!.write(to: dir.appendingPathComponent("model.safetensors.index.json"))
        XCTAssertThrowsError(try SafetensorsCollection(directory: dir)) { error in
            guard case let ModelError.missingTensor(path, name, _) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(name, "lost")
            XCTAssertEqual(path, self.dir.appendingPathComponent("s1.safetensors").path)
        }
    }
}
