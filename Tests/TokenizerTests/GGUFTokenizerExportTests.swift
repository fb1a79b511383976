import Foundation
import TestSupport
import Tokenizer
import XCTest

/// A GGUF tokenizer written as tokenizer.json + tokenizer_config.json (what `lora quantize` writes for a
/// GGUF source) reads back as the same tokenizer: identical ids, decodes and special tokens on the corpus.
final class GGUFTokenizerExportTests: XCTestCase {
    func roundTrip(_ g: GGUFTokenizerData) throws -> Tokenizer {
        let json = try JSONSerialization.data(withJSONObject: try g.tokenizerJSONObject())
        let config = try JSONSerialization.data(withJSONObject: g.tokenizerConfigObject(modelMaxLength: 8192))
        return try Tokenizer(tokenizerJSONData: json, tokenizerConfigData: config)
    }

    func testExportedByteLevelTokenizersEncodeAndDecodeLikeTheGGUFOnes() throws {
        for family in ["smollm2", "llama3", "qwen2"] {
            let g = try TokenizerFixtures.gguf("\(family)/gguf_tokenizer.json")
            let a = try Tokenizer(gguf: g), b = try roundTrip(g)
            XCTAssertEqual(b.vocabSize, a.vocabSize, family)
            try TokenizerFixtures.assertSameTokenization(b, as: a, family)
        }
    }

    func testBOSAddedByTheGGUFIsAddedByTheExport() throws {
        var g = try TokenizerFixtures.gguf("smollm2/gguf_tokenizer.json")
        g.addBosToken = true
        let ids = try roundTrip(g).encode("Hello world")
        XCTAssertEqual(ids.first, g.bosTokenId)
        XCTAssertEqual(ids, try Tokenizer(gguf: g).encode("Hello world"))
    }

    func testSentencePieceGGUFTokenizersAreRefusedNamingTheField() throws {
        let g = try TokenizerFixtures.gguf("metaspace/gguf_tokenizer.json")
        XCTAssertThrowsError(try g.tokenizerJSONObject()) { XCTAssertTrue("\($0)".contains("tokenizer.ggml.model"), "\($0)") }
    }
}
