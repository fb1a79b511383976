import Foundation
import TestSupport
import Tokenizer
import XCTest

/// An HF tokenizer written as GGUF metadata (what `lora merge --format gguf` writes for an HF source)
/// reads back as the same tokenizer, and the GGUF metadata of the fixtures survives the trip
/// GGUF -> tokenizer.json -> GGUF field by field.
final class GGUFTokenizerFromHFTests: XCTestCase {
    /// A fixture's tokenizer.json, changed by `edit`, in a temporary file.
    func edited(_ family: String, _ edit: (inout [String: Any]) -> Void) throws -> URL {
        var root = try JSONSerialization.jsonObject(with: Data(contentsOf: TokenizerFixtures.url("\(family)/tokenizer.json"))) as! [String: Any]
        edit(&root)
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("\(family)-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).json")
        try JSONSerialization.data(withJSONObject: root).write(to: file)
        addTeardownBlock { try? FileManager.default.removeItem(at: file) }
        return file
    }

    func fromFiles(_ family: String, json: URL? = nil) throws -> (Tokenizer, GGUFTokenizerData) {
        let json = json ?? TokenizerFixtures.url("\(family)/tokenizer.json"), config = TokenizerFixtures.url("\(family)/tokenizer_config.json")
        let tok = try Tokenizer(tokenizerJSON: json, tokenizerConfig: config)
        return (tok, try GGUFTokenizerData(tokenizerJSON: json, tokenizerConfig: config, vocabularySize: tok.vocabSize, chatTemplate: nil))
    }

    func testHFByteLevelTokenizersBecomeGGUFMetadataThatTokenizesTheSame() throws {
        // The Qwen2 fixture sets ignore_merges, which llama.cpp's qwen2 does not do (refused below).
        let qwen2 = try edited("qwen2") { root in
            var model = root["model"] as! [String: Any]
            model["ignore_merges"] = false
            root["model"] = model
        }
        for (family, pre, json) in [("smollm2", "gpt-2", nil), ("llama3", "llama-bpe", nil), ("qwen2", "qwen2", qwen2)] {
            let (a, g) = try fromFiles(family, json: json)
            XCTAssertEqual(g.model, "gpt2", family)
            XCTAssertEqual(g.pre, pre, family)
            XCTAssertEqual(g.tokens.count, a.vocabSize, family)
            try TokenizerFixtures.assertSameTokenization(try Tokenizer(gguf: g), as: a, family)
            for id in 0..<a.vocabSize where a.isSpecial(id) {
                XCTAssertEqual(g.tokenTypes?[id], 3, "\(family): id \(id) is a control token")
            }
        }
    }

    /// The fixtures' GGUF metadata (SmolLM2's from the default model's file) -> tokenizer.json +
    /// tokenizer_config.json -> GGUF metadata: every field as it was.
    func testGGUFMetadataSurvivesTheTripThroughTokenizerJSON() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gguf-tok-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        for family in ["smollm2", "llama3", "qwen2"] {
            let g = try TokenizerFixtures.gguf("\(family)/gguf_tokenizer.json")
            let json = dir.appendingPathComponent("\(family)-tokenizer.json"), config = dir.appendingPathComponent("\(family)-config.json")
            try JSONSerialization.data(withJSONObject: try g.tokenizerJSONObject()).write(to: json)
            try JSONSerialization.data(withJSONObject: g.tokenizerConfigObject(modelMaxLength: 8192)).write(to: config)
            let back = try GGUFTokenizerData(tokenizerJSON: json, tokenizerConfig: config, vocabularySize: g.tokens.count,
                                             chatTemplate: g.chatTemplate)
            XCTAssertEqual(back.model, g.model, family)
            XCTAssertEqual(back.pre, g.pre, family)
            XCTAssertEqual(back.tokens, g.tokens, family)
            XCTAssertEqual(back.tokenTypes, g.tokenTypes, family)
            XCTAssertEqual(back.merges, g.merges, family)
            XCTAssertEqual(back.bosTokenId, g.bosTokenId, family)
            XCTAssertEqual(back.eosTokenId, g.eosTokenId, family)
            XCTAssertEqual(back.unknownTokenId, g.unknownTokenId, family)
            XCTAssertEqual(back.paddingTokenId, g.paddingTokenId, family)
            XCTAssertEqual(back.addBosToken ?? false, g.addBosToken ?? false, family)
            XCTAssertEqual(back.addEosToken ?? false, g.addEosToken ?? false, family)
            XCTAssertEqual(back.chatTemplate, g.chatTemplate, family)
        }
    }

    func testTokenizersGGUFCannotDescribeAreRefusedNamingTheField() throws {
        // SentencePiece-style BPE (byte fallback, Metaspace): not byte-level.
        for family in ["llama2", "metaspace"] {
            XCTAssertThrowsError(try fromFiles(family)) { XCTAssertTrue("\($0)".contains("decoder"), "\(family): \($0)") }
        }
        // Added tokens with lstrip / rstrip / single_word.
        XCTAssertThrowsError(try fromFiles("bytelevel")) { XCTAssertTrue("\($0)".contains("added_tokens"), "\($0)") }
        // A ByteLevel pre-tokenizer that adds a prefix space has no llama.cpp pre-tokenizer.
        let prefixSpace = try edited("smollm2") {
            $0["pre_tokenizer"] = ["type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true]
        }
        XCTAssertThrowsError(try GGUFTokenizerData(tokenizerJSON: prefixSpace, tokenizerConfig: nil, vocabularySize: 49152, chatTemplate: nil)) {
            XCTAssertTrue("\($0)".contains("pre_tokenizer"), "\($0)")
        }
        // Merges ignored where llama.cpp would apply them.
        XCTAssertThrowsError(try fromFiles("qwen2")) { XCTAssertTrue("\($0)".contains("model.ignore_merges"), "\($0)") }
        // A token id beyond the model's vocab_size.
        let json = TokenizerFixtures.url("smollm2/tokenizer.json")
        XCTAssertThrowsError(try GGUFTokenizerData(tokenizerJSON: json, tokenizerConfig: nil, vocabularySize: 49151, chatTemplate: nil)) {
            XCTAssertTrue("\($0)".contains("vocab_size 49151"), "\($0)")
        }
    }
}
