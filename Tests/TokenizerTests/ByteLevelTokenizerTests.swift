import Foundation
import TestSupport
import Tokenizer
import XCTest

/// The byte-level BPE tokenizer trained by the fixture script (vocab 500, GPT-2 pre-tokenizer,
/// special tokens <|bos|> <|eos|> <mask> (lstrip) <sep> (rstrip), non-special [[tool]] and zword (single_word),
/// template "<|bos|> $A <|eos|>").
final class ByteLevelTokenizerTests: XCTestCase {
    func load() throws -> Tokenizer {
        try Tokenizer(tokenizerJSON: TokenizerFixtures.url("bytelevel/tokenizer.json"),
                      tokenizerConfig: TokenizerFixtures.url("bytelevel/tokenizer_config.json"))
    }

    func testIdsEqualHFOnEveryCorpusLine() throws {
        TokenizerFixtures.assertEncodes(try load(), try TokenizerFixtures.expected("bytelevel/expected.json", variant: "default"), "bytelevel")
    }

    func testDecodingAndStreamingEqualHF() throws {
        TokenizerFixtures.assertDecodes(try load(), try TokenizerFixtures.expected("bytelevel/expected.json", variant: "default"), "bytelevel")
    }

    func testAddPrefixSpaceIdsEqualHF() throws {
        let url = TokenizerFixtures.url("bytelevel/tokenizer.json")
        var root = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
        var pre = root["pre_tokenizer"] as! [String: Any]
        pre["add_prefix_space"] = true
        root["pre_tokenizer"] = pre
        let tok = try Tokenizer(tokenizerJSONData: JSONSerialization.data(withJSONObject: root), tokenizerConfigData: nil)
        let cases = try TokenizerFixtures.expected("bytelevel/expected.json", variant: "prefix_space")
        TokenizerFixtures.assertEncodes(tok, cases, "prefix space")
        TokenizerFixtures.assertDecodes(tok, cases, "prefix space")
    }

    func testDecodeOfEncodeGivesTheTextBack() throws {
        let tok = try load()
        for c in try TokenizerFixtures.expected("bytelevel/expected.json", variant: "default") {
            // lstrip / rstrip tokens swallow the whitespace beside them: everything else comes back.
            guard !c.text.contains("<mask>"), !c.text.contains("<sep>") else { continue }
            XCTAssertEqual(tok.decode(tok.encode(c.text, addSpecialTokens: false)), c.text, "round trip of \(c.text.debugDescription)")
        }
    }

    func testConfigNamesBosEosAndTemplate() throws {
        let tok = try load()
        XCTAssertEqual(tok.bosTokenId, tok.id(forToken: "<|bos|>"))
        XCTAssertEqual(tok.eosTokenId, tok.id(forToken: "<|eos|>"))
        XCTAssertNotNil(tok.bosTokenId)
        XCTAssertEqual(tok.chatTemplate?.hasPrefix("{% for m in messages %}"), true)
        XCTAssertTrue(tok.isSpecial(tok.id(forToken: "<mask>")!))
        XCTAssertFalse(tok.isSpecial(tok.id(forToken: "[[tool]]")!))
        XCTAssertEqual(tok.vocabSize, 504)
    }

    func testWithoutConfigBosAndEosComeFromThePostProcessor() throws {
        let data = try Data(contentsOf: TokenizerFixtures.url("bytelevel/tokenizer.json"))
        let tok = try Tokenizer(tokenizerJSONData: data, tokenizerConfigData: nil)
        XCTAssertEqual(tok.bosTokenId, tok.id(forToken: "<|bos|>"))
        XCTAssertEqual(tok.eosTokenId, tok.id(forToken: "<|eos|>"))
        XCTAssertNil(tok.chatTemplate)
    }

    func testAddBosTokenFalseInConfigRemovesTheTemplatesSpecialTokens() throws {
        let data = try Data(contentsOf: TokenizerFixtures.url("bytelevel/tokenizer.json"))
        let config = Data(#"{"bos_token": "<|bos|>", "eos_token": "<|eos|>", "add_bos_token": false}"#.utf8)
        let tok = try Tokenizer(tokenizerJSONData: data, tokenizerConfigData: config)
        XCTAssertEqual(tok.encode("hello"), tok.encode("hello", addSpecialTokens: false))
        let withBos = try Tokenizer(tokenizerJSONData: data, tokenizerConfigData: Data(#"{"bos_token": "<|bos|>", "add_bos_token": true}"#.utf8))
        XCTAssertEqual(withBos.encode("hello"), [withBos.bosTokenId!] + tok.encode("hello", addSpecialTokens: false))
    }
}
