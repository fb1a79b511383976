import Foundation
import TestSupport
import Tokenizer
import XCTest

/// The default model's tokenizer (SmolLM2-135M-Instruct, 49,152 tokens), from the tokenizer.json
/// transformers writes for the GGUF, from the same file with the hub's digit-isolating
/// pre-tokenizer, and from the GGUF's own tokenizer metadata.
final class SmolLM2TokenizerTests: XCTestCase {
    static let jsonURL = TokenizerFixtures.url("smollm2/tokenizer.json")
    static let configURL = TokenizerFixtures.url("smollm2/tokenizer_config.json")

    /// The saved tokenizer.json with its pre-tokenizer replaced by SmolLM2's own (hub) one.
    static func digitsVariant() throws -> Tokenizer {
        var root = try JSONSerialization.jsonObject(with: Data(contentsOf: jsonURL)) as! [String: Any]
        root["pre_tokenizer"] = ["type": "Sequence", "pretokenizers": [
            ["type": "Digits", "individual_digits": true],
            ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true],
        ]]
        return try Tokenizer(tokenizerJSONData: JSONSerialization.data(withJSONObject: root),
                             tokenizerConfigData: Data(contentsOf: configURL))
    }

    func testIdsEqualHFForTheTokenizerJSONTransformersWritesFromTheGGUF() throws {
        let tok = try Tokenizer(tokenizerJSON: Self.jsonURL, tokenizerConfig: Self.configURL)
        TokenizerFixtures.assertEncodes(tok, try TokenizerFixtures.expected("smollm2/expected.json", variant: "gguf_converted"), "converted")
    }

    func testIdsEqualHFWithTheHubsDigitIsolatingPreTokenizer() throws {
        TokenizerFixtures.assertEncodes(try Self.digitsVariant(),
                                        try TokenizerFixtures.expected("smollm2/expected.json", variant: "digits"), "digits")
    }

    func testTheTwoPreTokenizersDifferOnWhitespaceBeforeDigits() throws {
        let converted = try Tokenizer(tokenizerJSON: Self.jsonURL, tokenizerConfig: Self.configURL)
        let digits = try Self.digitsVariant()
        XCTAssertEqual(converted.encode("a 1"), digits.encode("a 1"))
        XCTAssertNotEqual(converted.encode("\n\n1."), digits.encode("\n\n1."))
    }

    func testIdsFromGGUFMetadataEqualHFWithTheSmollmPreTokenizer() throws {
        let g = try TokenizerFixtures.gguf("smollm2/gguf_tokenizer.json")
        XCTAssertEqual(g.pre, "smollm")
        let tok = try Tokenizer(gguf: g)
        TokenizerFixtures.assertEncodes(tok, try TokenizerFixtures.expected("smollm2/expected.json", variant: "digits"), "gguf")
        TokenizerFixtures.assertDecodes(tok, try TokenizerFixtures.expected("smollm2/expected.json", variant: "digits"), "gguf")
        XCTAssertEqual(tok.bosTokenId, 1)
        XCTAssertEqual(tok.eosTokenId, 2)
        XCTAssertEqual(tok.vocabSize, 49_152)
        XCTAssertEqual(tok.chatTemplate, g.chatTemplate)
        XCTAssertNotNil(tok.chatTemplate)
    }

    func testDecodingAndStreamingEqualHF() throws {
        let tok = try Tokenizer(tokenizerJSON: Self.jsonURL, tokenizerConfig: Self.configURL)
        TokenizerFixtures.assertDecodes(tok, try TokenizerFixtures.expected("smollm2/expected.json", variant: "gguf_converted"), "converted")
    }

    func testVocabularyLookupsAndSpecialTokens() throws {
        let tok = try Tokenizer(directory: TokenizerFixtures.url("smollm2"))
        XCTAssertEqual(tok.vocabSize, 49_152)
        XCTAssertEqual(tok.bosTokenId, tok.id(forToken: "<|im_start|>"))
        XCTAssertEqual(tok.eosTokenId, tok.id(forToken: "<|im_end|>"))
        XCTAssertEqual(tok.token(forId: 2), "<|im_end|>")
        XCTAssertEqual(tok.id(forToken: "Ġthe").flatMap { tok.token(forId: $0) }, "Ġthe")
        XCTAssertTrue(tok.isSpecial(0))
        XCTAssertFalse(tok.isSpecial(tok.id(forToken: "Ġthe")!))
        XCTAssertNil(tok.token(forId: 49_152))
        XCTAssertNil(tok.token(forId: -1))
        XCTAssertTrue(tok.chatTemplate?.contains("<|im_start|>") ?? false, "chat_template.jinja is read from the directory")
        // Unknown ids are dropped by decode, as in HF.
        XCTAssertEqual(tok.decode([tok.id(forToken: "Ġthe")!, 1_000_000]), " the")
    }

    func testStreamingHoldsBackAnEmojiSplitAcrossTokens() throws {
        let tok = try Tokenizer(tokenizerJSON: Self.jsonURL, tokenizerConfig: Self.configURL)
        let ids = tok.encode("ok 👍🏽", addSpecialTokens: false)
        XCTAssertGreaterThan(ids.count, 3, "the emoji spans several tokens")
        var s = StreamingDecoder(tokenizer: tok)
        let pieces = ids.map { s.push($0) }
        XCTAssertEqual(pieces.joined() + s.finish(), "ok 👍🏽")
        for p in pieces { XCTAssertFalse(p.unicodeScalars.contains("\u{FFFD}"), "a partial character was emitted: \(pieces)") }
        XCTAssertTrue(pieces.contains(""), "some tokens must be held back")
    }

    func testStreamingFlushesAnIncompleteCharacterAsReplacement() throws {
        let tok = try Tokenizer(tokenizerJSON: Self.jsonURL, tokenizerConfig: Self.configURL)
        let ids = tok.encode("界", addSpecialTokens: false)
        XCTAssertGreaterThan(ids.count, 1)
        var s = StreamingDecoder(tokenizer: tok)
        XCTAssertEqual(s.push(ids[0]), "")
        XCTAssertEqual(s.finish(), tok.decode([ids[0]]))
        XCTAssertTrue(tok.decode([ids[0]]).hasSuffix("\u{FFFD}"))
    }

    func testConcurrentEncodingGivesTheSameIds() throws {
        let tok = try Tokenizer(tokenizerJSON: Self.jsonURL, tokenizerConfig: Self.configURL)
        let cases = try TokenizerFixtures.expected("smollm2/expected.json", variant: "gguf_converted")
        let results = UnsafeMutableBufferPointer<[Int]>.allocate(capacity: cases.count * 4)
        results.initialize(repeating: [])
        // Deinitialized before it is freed: the arrays it holds are released (LeakSanitizer found them leaked).
        defer { _ = results.deinitialize(); results.deallocate() }
        DispatchQueue.concurrentPerform(iterations: cases.count * 4) { i in
            results[i] = tok.encode(cases[i % cases.count].text)
        }
        for i in 0..<(cases.count * 4) {
            XCTAssertEqual(results[i], cases[i % cases.count].ids, "concurrent encode of \(cases[i % cases.count].text.debugDescription)")
        }
    }

    func testEncodingALongTextRoundTrips() throws {
        let tok = try Tokenizer(tokenizerJSON: Self.jsonURL, tokenizerConfig: Self.configURL)
        let corpus = try JSONDecoder().decode([String].self, from: Data(contentsOf: TokenizerFixtures.url("corpus.json")))
        let text = String(repeating: corpus.last! + "\n", count: 50)  // ~150 KB
        let ids = tok.encode(text)
        XCTAssertEqual(tok.decode(ids), text)
    }
}
