import Foundation
import TestSupport
import Tokenizer
import XCTest

/// One corpus line and what HF `tokenizers` made of it (scripts/fixtures/make_tokenizer_fixtures.py).
struct ExpectedCase: Decodable {
    let text: String
    let ids: [Int]
    let ids_no_special: [Int]
    let decoded: String
    let decoded_skip_special: String
    /// HF decode of each id alone.
    let decoded_each: [String]
    /// HF DecodeStream.step results for `ids` (nil: nothing emitted for that id).
    let stream: [String?]
    let stream_skip_special: [String?]
}

enum TokenizerFixtures {
    /// The fixture corpus (corpus.json).
    static func corpus() throws -> [String] {
        try JSONSerialization.jsonObject(with: Data(contentsOf: url("corpus.json"))) as! [String]
    }

    /// `b` tokenizes as `a` does: ids with and without special tokens, decodes, bos / eos and the
    /// special ids, on every corpus line.
    static func assertSameTokenization(_ b: Tokenizer, as a: Tokenizer, _ label: String,
                                       file: StaticString = #filePath, line: UInt = #line) throws {
        let corpus = try corpus()
        XCTAssertGreaterThan(corpus.count, 30, file: file, line: line)
        XCTAssertEqual(b.bosTokenId, a.bosTokenId, label, file: file, line: line)
        XCTAssertEqual(b.eosTokenId, a.eosTokenId, label, file: file, line: line)
        for text in corpus {
            let ids = a.encode(text)
            XCTAssertEqual(b.encode(text), ids, "\(label): \(text.debugDescription)", file: file, line: line)
            XCTAssertEqual(b.encode(text, addSpecialTokens: false), a.encode(text, addSpecialTokens: false), label, file: file, line: line)
            XCTAssertEqual(b.decode(ids), a.decode(ids), label, file: file, line: line)
            XCTAssertEqual(b.decode(ids, skipSpecialTokens: true), a.decode(ids, skipSpecialTokens: true), label, file: file, line: line)
        }
        for id in 0..<a.vocabSize where a.isSpecial(id) { XCTAssertTrue(b.isSpecial(id), "\(label): id \(id)", file: file, line: line) }
    }

    static func url(_ relative: String) -> URL { TestPaths.fixture("tokenizers/" + relative) }

    static func expected(_ relative: String, variant: String) throws -> [ExpectedCase] {
        let data = try Data(contentsOf: url(relative))
        let all = try JSONDecoder().decode([String: [ExpectedCase]].self, from: data)
        guard let cases = all[variant] else { throw NSError(domain: "fixture \(relative) has no variant \(variant)", code: 1) }
        return cases
    }

    static func gguf(_ relative: String) throws -> GGUFTokenizerData {
        let data = try Data(contentsOf: url(relative))
        let o = try JSONSerialization.jsonObject(with: data) as! [String: Any]
        return GGUFTokenizerData(
            model: o["model"] as! String, pre: o["pre"] as? String, tokens: o["tokens"] as! [String],
            tokenTypes: (o["token_type"] as? [Int])?.map { Int32($0) }, merges: o["merges"] as? [String] ?? [],
            scores: (o["scores"] as? [Double])?.map { Float($0) },
            bosTokenId: o["bos_token_id"] as? Int, eosTokenId: o["eos_token_id"] as? Int,
            unknownTokenId: o["unknown_token_id"] as? Int, paddingTokenId: o["padding_token_id"] as? Int,
            addBosToken: o["add_bos_token"] as? Bool, addEosToken: o["add_eos_token"] as? Bool,
            chatTemplate: o["chat_template"] as? String)
    }

    /// Ids equal HF's for every case, with and without special tokens.
    static func assertEncodes(_ tok: Tokenizer, _ cases: [ExpectedCase], _ label: String,
                              file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertGreaterThan(cases.count, 30, "\(label): corpus too small", file: file, line: line)
        for c in cases {
            XCTAssertEqual(tok.encode(c.text, addSpecialTokens: true), c.ids,
                           "\(label) ids with special tokens for \(c.text.debugDescription)", file: file, line: line)
            XCTAssertEqual(tok.encode(c.text, addSpecialTokens: false), c.ids_no_special,
                           "\(label) ids without special tokens for \(c.text.debugDescription)", file: file, line: line)
        }
    }

    /// Decoding equals HF's, with and without skipping special tokens, and streaming equals DecodeStream.
    static func assertDecodes(_ tok: Tokenizer, _ cases: [ExpectedCase], _ label: String,
                              file: StaticString = #filePath, line: UInt = #line) {
        for c in cases {
            XCTAssertEqual(tok.decode(c.ids), c.decoded, "\(label) decode of \(c.text.debugDescription)", file: file, line: line)
            XCTAssertEqual(tok.decode(c.ids, skipSpecialTokens: true), c.decoded_skip_special,
                           "\(label) decode skipping special tokens of \(c.text.debugDescription)", file: file, line: line)
            XCTAssertEqual(c.ids.map { tok.decode([$0]) }, c.decoded_each,
                           "\(label) decode of each id alone of \(c.text.debugDescription)", file: file, line: line)
            for (skip, expected) in [(false, c.stream), (true, c.stream_skip_special)] {
                var s = StreamingDecoder(tokenizer: tok, skipSpecialTokens: skip)
                let got = c.ids.map { s.push($0) }
                XCTAssertEqual(got, expected.map { $0 ?? "" },
                               "\(label) streaming (skip \(skip)) of \(c.text.debugDescription)", file: file, line: line)
                let flushed = got.joined() + s.finish()
                XCTAssertEqual(flushed, skip ? c.decoded_skip_special : c.decoded,
                               "\(label) streamed text (skip \(skip)) of \(c.text.debugDescription)", file: file, line: line)
            }
        }
    }
}
