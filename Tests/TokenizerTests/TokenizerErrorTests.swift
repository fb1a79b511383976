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

    func testEmptyMergesAndNoMergesAreAccepted() throws {
        for merges in [#""merges": [],"#, ""] {
            let tok = try Tokenizer(tokenizerJSONData: Data(#"{"model": {"type": "BPE", \#(merges) "vocab": {"a": 0, "b": 1}}}"#.utf8),
                                    tokenizerConfigData: nil)
            XCTAssertEqual(tok.encode("ab"), [0, 1])
        }
    }

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

    func testAbsurdIdsAreRefusedNotAllocated() {
        guard case let .invalidField(_, field, _)? = error(#"{"model": {"type": "BPE", "vocab": {"a": 1099511627776}, "merges": []}}"#) else {
            return XCTFail("expected invalidField")
        }
        XCTAssertEqual(field, "model.vocab")
        guard case let .invalidField(_, addedField, _)? = error(#"{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "added_tokens": [{"id": -3, "content": "<x>"}]}"#) else {
            return XCTFail("expected invalidField")
        }
        XCTAssertEqual(addedField, "added_tokens[0].id")
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

    func testEveryTruncationOfATokenizerJSONIsAnErrorNotACrash() throws {
        let data = try Data(contentsOf: TokenizerFixtures.url("bytelevel/tokenizer.json"))
        for cut in stride(from: 0, to: data.count - 1, by: 97) {
            XCTAssertThrowsError(try Tokenizer(tokenizerJSONData: data.prefix(cut), tokenizerConfigData: nil), "cut at \(cut)")
        }
    }

    func testInconsistentGGUFMetadataIsNamed() {
        let bad: [(GGUFTokenizerData, String)] = [
            (GGUFTokenizerData(model: "gpt2", tokens: ["a", "b"], tokenTypes: [1]), "tokenizer.ggml.token_type"),
            (GGUFTokenizerData(model: "gpt2", tokens: ["a", "b"], bosTokenId: 7), "tokenizer.ggml.bos_token_id"),
            (GGUFTokenizerData(model: "llama", tokens: ["a", "b"], scores: [0]), "tokenizer.ggml.scores"),
            (GGUFTokenizerData(model: "gpt2", tokens: ["a", "b"], merges: ["ab"]), "tokenizer.ggml.merges[0]"),
            (GGUFTokenizerData(model: "bert", tokens: ["a"]), "tokenizer.ggml.model"),
        ]
        for (g, field) in bad {
            XCTAssertThrowsError(try Tokenizer(gguf: g)) { e in
                XCTAssertTrue("\(e)".contains(field) && "\(e)".contains("GGUF metadata"), "\(e) does not name \(field)")
            }
        }
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

/// The JSON reader behind tokenizer.json loading: escapes as JSON defines them.
final class TokenizerJSONEscapeTests: XCTestCase {
    func testEscapedTokensAreReadAsTheirCharacters() throws {
        let json = #"""
        {"model": {"type": "BPE", "vocab": {"\u0120": 0, "a": 1, "\u0120a": 2, "\ud83d\ude00": 3, "\"\\\/\t": 4, "1e3": 5},
                   "merges": [["\u0120", "a"]], "dropout": null, "unk_token": null},
         "added_tokens": [{"id": 6, "content": "<|x|>", "special": true, "lstrip": false, "rstrip": false,
                           "normalized": false, "single_word": false}],
         "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true},
         "decoder": {"type": "ByteLevel"}, "normalizer": null, "post_processor": null, "truncation": null,
         "padding": null, "version": "1.0", "extra": [1.5, -2, true, false, null, {"k": [[], {}]}]}
        """#
        let tok = try Tokenizer(tokenizerJSONData: Data(json.utf8), tokenizerConfigData: nil)
        XCTAssertEqual(tok.id(forToken: "Ġ"), 0)
        XCTAssertEqual(tok.id(forToken: "😀"), 3)
        XCTAssertEqual(tok.id(forToken: "\"\\/\t"), 4)
        XCTAssertEqual(tok.encode(" a<|x|>"), [2, 6])
        XCTAssertEqual(tok.decode([2, 6]), " a<|x|>")
        XCTAssertEqual(tok.vocabSize, 7)
    }

    func testTruncatedJSONNamesTheByteOffset() {
        XCTAssertThrowsError(try Tokenizer(tokenizerJSONData: Data(#"{"model": {"type": "BPE", "vocab": {"a": 0"#.utf8),
                                           tokenizerConfigData: nil)) { e in
            XCTAssertTrue("\(e)".contains("tokenizer.json") && "\(e)".contains("byte"), "\(e)")
        }
    }
}
