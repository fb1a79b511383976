import Foundation
import Tokenizer
import XCTest

/// Malformed tokenizers are refused with an error naming the file and the field, never a crash.
final class TokenizerErrorTests: XCTestCase {
    private func error(_ json: String, file: StaticString = #filePath, line: UInt = #line) -> TokenizerError? {
        do {
            _ = try Tokenizer(tokenizerJSONData: Data(json.utf8), tokenizerConfigData: nil)
            XCTFail("accepted \(json)", file: file, line: line)
            return nil
        } catch let e as TokenizerError {
            XCTAssertTrue(e.description.contains("tokenizer.json"), "error does not name the file: \(e)", file: file, line: line)
            return e
        } catch {
            XCTFail("unexpected error type \(error)", file: file, line: line)
            return nil
        }
    }

    private let vocab = #"{"a": 0, "b": 1, "ab": 2}"#

    func testMissingModelIsNamed() {
        XCTAssertEqual(error(#"{"added_tokens": []}"#), .missingField(file: "tokenizer.json", field: "model"))
    }

    func testUnknownModelTypeIsNamed() {
        XCTAssertEqual(error(#"{"model": {"type": "Unigram", "vocab": []}}"#),
                       .unsupported(file: "tokenizer.json", field: "model.type", value: "Unigram"))
    }

    func testMergeNamingAnUnknownTokenIsNamed() {
        XCTAssertEqual(error(#"{"model": {"type": "BPE", "vocab": \#(vocab), "merges": ["a b", "a c"]}}"#),
                       .unknownMergeToken(file: "tokenizer.json", field: "model.merges[1]", token: "c"))
    }

    func testMergeWhoseResultIsNotInTheVocabularyIsNamed() {
        XCTAssertEqual(error(#"{"model": {"type": "BPE", "vocab": \#(vocab), "merges": [["b", "a"]]}}"#),
                       .unknownMergeToken(file: "tokenizer.json", field: "model.merges[0]", token: "ba"))
    }

    func testNotJSONIsRefused() {
        guard case .invalidJSON? = error("{not json") else { return XCTFail("expected invalidJSON") }
        guard case .invalidJSON? = error("[1, 2]") else { return XCTFail("expected invalidJSON") }
    }

    func testWrongTypesAreNamed() {
        XCTAssertEqual(error(#"{"model": {"type": "BPE", "vocab": {"a": "zero"}, "merges": []}}"#),
                       .invalidField(file: "tokenizer.json", field: #"model.vocab["a"]"#, reason: "expected an integer"))
        guard case let .invalidField(_, field, _)? = error(#"{"model": {"type": "BPE", "vocab": \#(vocab), "merges": [42]}}"#) else {
            return XCTFail("expected invalidField")
        }
        XCTAssertEqual(field, "model.merges[0]")
    }

    func testUnknownComponentsAreNamedNotIgnored() {
        let model = #""model": {"type": "BPE", "vocab": \#(vocab), "merges": ["a b"]}"#
        XCTAssertEqual(error(#"{\#(model), "pre_tokenizer": {"type": "Whitespace"}}"#),
                       .unsupported(file: "tokenizer.json", field: "pre_tokenizer.type", value: "Whitespace"))
        XCTAssertEqual(error(#"{\#(model), "normalizer": {"type": "Sequence", "normalizers": [{"type": "BertNormalizer"}]}}"#),
                       .unsupported(file: "tokenizer.json", field: "normalizer.normalizers[0].type", value: "BertNormalizer"))
        XCTAssertEqual(error(#"{\#(model), "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "\\d+"}, "behavior": "Isolated"}}"#),
                       .unsupported(file: "tokenizer.json", field: "pre_tokenizer.pattern.Regex", value: #""\\d+""#))
        XCTAssertEqual(error(#"{\#(model), "decoder": {"type": "WordPiece"}}"#),
                       .unsupported(file: "tokenizer.json", field: "decoder.type", value: "WordPiece"))
    }

    func testMissingFileIsNamed() {
        let url = URL(fileURLWithPath: "/nonexistent/tokenizer.json")
        XCTAssertThrowsError(try Tokenizer(tokenizerJSON: url, tokenizerConfig: nil)) { e in
            XCTAssertTrue("\(e)".contains("/nonexistent/tokenizer.json"), "\(e)")
        }
    }

    func testGGUFWithUnknownPreTokenizerIsNamed() {
        let g = GGUFTokenizerData(model: "gpt2", pre: "martian", tokens: ["a", "b"], merges: [])
        XCTAssertThrowsError(try Tokenizer(gguf: g)) { e in
            XCTAssertEqual(e as? TokenizerError, .unsupported(file: "GGUF metadata", field: "tokenizer.ggml.pre", value: "martian"))
        }
        let bad = GGUFTokenizerData(model: "gpt2", tokens: ["a", "b"], merges: ["a c"])
        XCTAssertThrowsError(try Tokenizer(gguf: bad)) { e in
            XCTAssertEqual(e as? TokenizerError, .unknownMergeToken(file: "GGUF metadata", field: "tokenizer.ggml.merges[0]", token: "c"))
        }
    }
}
