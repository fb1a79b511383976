import Foundation
import Model
import TestSupport
import XCTest

/// Configs and GGUF headers that claim sizes the file does not hold are refused naming the field and
/// the value, before any memory is reserved from the claim (2^30 layers used to abort in an allocation).
final class HostileModelTests: TemporaryDirectoryTestCase {
    /// A copy of the tiny HF checkpoint with `field` of config.json set to `value`.
    private func hfCopy(_ field: String, _ value: Int) throws -> URL {
        let copy = dir.appendingPathComponent("hf-\(field)-\(value)")
        try FileManager.default.copyItem(at: TestPaths.fixture("formats/tiny_llama_hf"), to: copy)
        let configURL = copy.appendingPathComponent("config.json")
        var config = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: configURL)) as? [String: Any])
        config[field] = value
        try JSONSerialization.data(withJSONObject: config).write(to: configURL)
        return copy
    }

    private func assertRefused(_ url: URL, field: String, value: Int, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try ModelLoader.load(url), file: file, line: line) { error in
            guard case let ModelError.unsupportedConfig(_, f, reason) = error else {
                return XCTFail("expected unsupportedConfig, got \(error)", file: file, line: line)
            }
            XCTAssertEqual(f, field, "\(error)", file: file, line: line)
            XCTAssertTrue(reason.contains("\(value)"), "\(error)", file: file, line: line)
        }
    }

    func testHFConfigSizesTheFileDoesNotHoldAreRefusedNamingTheField() throws {
        let cases: [(String, Int)] = [("num_hidden_layers", 1 << 30), ("hidden_size", 1 << 40), ("vocab_size", 1 << 40),
                                      ("intermediate_size", 1 << 50), ("num_attention_heads", 1 << 61), ("head_dim", 1 << 20),
                                      ("num_hidden_layers", 3), ("vocab_size", 47)]
        for (field, value) in cases {
            assertRefused(try hfCopy(field, value), field: field == "head_dim" ? "num_attention_heads" : field, value: value)
        }
        XCTAssertNoThrow(try ModelLoader.load(try hfCopy("max_position_embeddings", 256)))
    }

    func testGGUFBlockCountOfTwoToTheThirtyIsRefusedNamingTheKey() throws {
        var bytes = try Data(contentsOf: TestPaths.fixture("formats/tiny_llama.gguf"))
        let key = Data("llama.block_count".utf8)
        let at = try XCTUnwrap(bytes.range(of: key)).upperBound
        XCTAssertEqual(bytes[at..<at + 4], Data([4, 0, 0, 0]), "expected a u32 value")
        withUnsafeBytes(of: UInt32(1 << 30).littleEndian) { bytes.replaceSubrange(at + 4..<at + 8, with: $0) }
        let url = dir.appendingPathComponent("layers.gguf")
        try bytes.write(to: url)
        assertRefused(url, field: "llama.block_count", value: 1 << 30)
    }

    func testOverlappingGGUFTensorsAreMalformed() throws {
        var b = GGUFTestBuilder()
        b.addF32("a.weight", ne: [16], values: Array(repeating: 1, count: 16))
        b.addF32("b.weight", ne: [16], values: Array(repeating: 2, count: 16))
        b.tensors[1].offset = 32  // b starts inside a's 64 bytes
        let url = dir.appendingPathComponent("overlap.gguf")
        try b.build().write(to: url)
        XCTAssertThrowsError(try GGUFFile(url)) { error in
            guard case let ModelError.malformedFile(path, _, reason) = error else { return XCTFail("got \(error)") }
            XCTAssertEqual(path, url.path)
            XCTAssertTrue(reason.contains("'b.weight'") && reason.contains("overlaps") && reason.contains("'a.weight'"), reason)
        }
        // Adjacent tensors are fine.
        b.tensors[1].offset = 64
        try b.build().write(to: url)
        XCTAssertNoThrow(try GGUFFile(url))
    }
}

/// A JSONL line longer than the limit is refused before it is parsed or tokenized.
final class JSONLLineLimitTests: XCTestCase {
    func testAnOverlongLineIsRefusedNamingTheLineBeforeParsing() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("long-\(UUID().uuidString).jsonl")
        defer { try? FileManager.default.removeItem(at: url) }
        var data = Data(#"{"text": "short"}"#.utf8) + Data("\n".utf8)
        // 5 MB of text in one record (the limit is 4 MiB): not even valid JSON, so only the length check can name it.
        data += Data(#"{"text": ""#.utf8) + Data(repeating: UInt8(ascii: "x"), count: 5_000_000)
        try data.write(to: url)
        XCTAssertThrowsError(try JSONLReader.readTextRecords(url)) { error in
            guard case let ModelError.badInput(path, line, reason) = error else { return XCTFail("got \(error)") }
            XCTAssertEqual(path, url.path)
            XCTAssertEqual(line, 2)
            XCTAssertTrue(reason.contains("5000010 bytes") && reason.contains("\(JSONLReader.defaultMaxLineBytes)"), reason)
        }
        // With a higher limit the line is parsed (and found to be invalid JSON).
        XCTAssertThrowsError(try JSONLReader.readTextRecords(url, maxLineBytes: 6_000_000)) { error in
            XCTAssertTrue("\(error)".contains("not valid JSON"), "\(error)")
        }
    }
}
