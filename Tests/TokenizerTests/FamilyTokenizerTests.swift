import Foundation
import TestSupport
import Tokenizer
import XCTest

/// Per-family tokenizers the fixture script trains with each family's configuration: ids, decoding
/// and streaming equal HF `tokenizers` from tokenizer.json, and from GGUF metadata.
final class FamilyTokenizerTests: XCTestCase {
    private func fromJSON(_ family: String) throws -> Tokenizer {
        try Tokenizer(tokenizerJSON: TokenizerFixtures.url("\(family)/tokenizer.json"),
                      tokenizerConfig: TokenizerFixtures.url("\(family)/tokenizer_config.json"))
    }

    private func check(_ family: String, variant: String = "default", gguf: Bool = false) throws {
        let tok = gguf ? try Tokenizer(gguf: try TokenizerFixtures.gguf("\(family)/gguf_tokenizer.json")) : try fromJSON(family)
        let cases = try TokenizerFixtures.expected("\(family)/expected.json", variant: variant)
        let label = "\(family)\(gguf ? " (GGUF)" : "")"
        TokenizerFixtures.assertEncodes(tok, cases, label)
        TokenizerFixtures.assertDecodes(tok, cases, label)
    }

    // SentencePiece-style BPE with byte fallback: Llama 2's legacy normalizer (Prepend + Replace).
    func testLlama2LegacyNormalizerIdsEqualHF() throws { try check("llama2") }

    // The same model with the Metaspace pre-tokenizer (prepend_scheme "first") transformers 5 builds.
    func testMetaspaceIdsEqualHF() throws { try check("metaspace") }

    func testMetaspaceDecoderEqualsHF() throws {
        let url = TokenizerFixtures.url("metaspace/tokenizer.json")
        var root = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
        root["decoder"] = ["type": "Metaspace", "replacement": "\u{2581}", "prepend_scheme": "first", "split": false]
        let tok = try Tokenizer(tokenizerJSONData: JSONSerialization.data(withJSONObject: root),
                                tokenizerConfigData: Data(contentsOf: TokenizerFixtures.url("metaspace/tokenizer_config.json")))
        let cases = try TokenizerFixtures.expected("metaspace/expected.json", variant: "metaspace_decoder")
        TokenizerFixtures.assertEncodes(tok, cases, "metaspace decoder")
        TokenizerFixtures.assertDecodes(tok, cases, "metaspace decoder")
    }

    // From GGUF: tokens + scores, no merges: merges derived as transformers derives them.
    func testSentencePieceFromGGUFScoresEqualsTransformersReadingTheGGUF() throws {
        try check("metaspace", variant: "gguf", gguf: true)
    }

    func testLlama3SplitPatternIdsEqualHF() throws { try check("llama3") }

    func testQwen2SplitPatternAndNFCIdsEqualHF() throws { try check("qwen2") }

    // GGUF "llama-bpe" / "qwen2": the family's own tokenizer.json behaviour (ignore_merges, NFC).
    func testLlama3FromGGUFEqualsItsTokenizerJSON() throws { try check("llama3", gguf: true) }

    func testQwen2FromGGUFEqualsItsTokenizerJSON() throws { try check("qwen2", gguf: true) }

    func testByteFallbackCoversCharactersOutsideTheVocabulary() throws {
        let tok = try fromJSON("llama2")
        let ids = tok.encode("界", addSpecialTokens: false)
        let bytes = ids.compactMap { tok.token(forId: $0) }.filter { $0.hasPrefix("<0x") }
        XCTAssertEqual(bytes, ["<0xE7>", "<0x95>", "<0x8C>"])
        XCTAssertEqual(tok.decode(ids), "界")
    }

    func testSentencePieceGGUFAddsBosByDefault() throws {
        var g = try TokenizerFixtures.gguf("metaspace/gguf_tokenizer.json")
        g.addBosToken = nil
        XCTAssertEqual(try Tokenizer(gguf: g).encode("hi").first, g.bosTokenId)
        g.addBosToken = false
        XCTAssertNotEqual(try Tokenizer(gguf: g).encode("hi").first, g.bosTokenId)
    }
}
