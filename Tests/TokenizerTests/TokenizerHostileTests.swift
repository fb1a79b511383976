import Foundation
import Tokenizer
import XCTest

/// Hostile tokenizer.json files: deep nesting, normalizers that grow text without bound, empty or
/// ambiguous vocabularies. Each is an error naming the file and field, never a crash or a runaway allocation.
final class TokenizerHostileTests: XCTestCase {
    private func error(_ json: String, file: StaticString = #filePath, line: UInt = #line) -> String {
        do {
            _ = try Tokenizer(tokenizerJSONData: Data(json.utf8), tokenizerConfigData: nil)
            XCTFail("accepted \(json.prefix(80))", file: file, line: line)
            return ""
        } catch let e as TokenizerError {
            XCTAssertTrue(e.description.contains("tokenizer.json"), "error does not name the file: \(e)", file: file, line: line)
            return e.description
        } catch {
            XCTFail("unexpected error type \(error)", file: file, line: line)
            return ""
        }
    }

    private let model = #""model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": []}"#

    /// Arrays of arrays take a branch of the JSON reader that skipped its depth check: 100k levels
    /// overflowed the stack before the check was made on every branch.
    func testDeeplyNestedArraysAndObjectsAreErrorsNotStackOverflows() {
        let n = 100_000
        for nested in [String(repeating: "[", count: n) + String(repeating: "]", count: n),
                       String(repeating: "[\"a\", ", count: n) + String(repeating: "]", count: n),
                       String(repeating: "{\"a\": [", count: n) + String(repeating: "]}", count: n)] {
            let message = error("{\"added_tokens\": \(nested), \(model)}")
            XCTAssertTrue(message.contains("nesting deeper than"), message)
        }
    }

    func testChainedReplaceNormalizersThatGrowTextAreRefusedAtLoad() {
        let step = #"{"type": "Replace", "pattern": {"String": "a"}, "content": "aa"}"#
        let chain = Array(repeating: step, count: 12).joined(separator: ", ")
        let message = error(#"{"normalizer": {"type": "Sequence", "normalizers": [\#(chain)]}, \#(model)}"#)
        XCTAssertTrue(message.contains("normalizer") && message.contains("4096"), message)
        let empty = error(#"{"normalizer": {"type": "Replace", "pattern": {"String": ""}, "content": "x"}, \#(model)}"#)
        XCTAssertTrue(empty.contains("normalizer.pattern") && empty.contains("empty"), empty)
    }

    func testRealNormalizersStillLoad() throws {
        let json = #"{"normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "b"}, "#
            + #"{"type": "Replace", "pattern": {"String": "b"}, "content": "ab"}]}, \#(model)}"#
        let tok = try Tokenizer(tokenizerJSONData: Data(json.utf8), tokenizerConfigData: nil)
        XCTAssertEqual(tok.encode("b"), [0, 1, 0, 1])
    }

    func testEmptyVocabularyIsRefused() {
        let message = error(#"{"model": {"type": "BPE", "vocab": {}, "merges": []}}"#)
        XCTAssertTrue(message.contains("model.vocab") && message.contains("empty"), message)
    }

    func testTwoTokensWithOneIdAreRefusedNamingBoth() {
        let message = error(#"{"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "c": 1}, "merges": []}}"#)
        XCTAssertTrue(message.contains("model.vocab") && message.contains("\"b\"") && message.contains("\"c\"")
            && message.contains("id 1"), message)
    }
}
