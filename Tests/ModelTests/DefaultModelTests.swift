import Foundation
import Model
import TestSupport
import XCTest

/// The default base model (SmolLM2-135M-Instruct Q4_1 GGUF) against HF transformers loading
/// the same GGUF (Tests/Fixtures/default-model/reference.json). Without the file these tests
/// fail with instructions (scripts/fetch-default-model.sh); they are never skipped.
final class DefaultModelTests: XCTestCase {
    /// NLL difference allowed against transformers on the dequantized GGUF (issue 2).
    static let nllTolerance = 1e-3

    struct Reference: Decodable {
        struct Paragraph: Decodable { let input_ids: [Int]; let scored_from: Int; let nll: Double; let tokens: Int; let top5: [[[Double]]] }
        struct France: Decodable { let input_ids: [Int]; let tokens: [Int]; let top2_gaps: [Double] }
        let paragraph: Paragraph
        let france: France
    }

    static var shared: (LlamaModel, Reference)?

    func model() throws -> (LlamaModel, Reference) {
        if let s = Self.shared { return s }
        let loaded = try ModelLoader.load(try TestPaths.requireDefaultModel())
        let ref = try JSONDecoder().decode(Reference.self, from: Data(contentsOf: TestPaths.fixture("default-model/reference.json")))
        let s = (LlamaModel(config: loaded.config, weights: loaded.weights), ref)
        Self.shared = s
        return s
    }

    func testParagraphNLLMatchesTransformersWithin1e3() throws {
        let (m, ref) = try model()
        let p = ref.paragraph
        let rec = TokenizedRecord(tokens: p.input_ids, scored: p.input_ids.indices.map { $0 >= p.scored_from })
        let nll = try m.negativeLogLikelihood(rec)
        XCTAssertEqual(nll.count, p.tokens)
        XCTAssertEqual(nll.mean, p.nll, accuracy: Self.nllTolerance)
    }

    func testTopLogitsOfTheFirstPositionsMatchTransformers() throws {
        let (m, ref) = try model()
        let p = ref.paragraph
        let n = p.top5.count
        let logits = try m.logits(for: Array(p.input_ids.prefix(n)))
        let V = m.config.vocabSize
        for t in 0..<n {
            for pair in p.top5[t] {
                XCTAssertEqual(Double(logits[t * V + Int(pair[0])]), pair[1], accuracy: 1e-3, "position \(t) token \(Int(pair[0]))")
            }
        }
    }

    func testGreedyFranceContinuationBeginsWithParisAndEqualsTransformers() throws {
        let (m, ref) = try model()
        let f = ref.france
        let r = try m.generate(GenerationRequest(prompt: f.input_ids, maxTokens: f.tokens.count, eosTokenIds: []), decode: { _ in "" })
        XCTAssertEqual(r.tokens.first, 7042, "the first greedy token should be ' Paris' (7042)")
        for (i, (a, b)) in zip(r.tokens, f.tokens).enumerated() where a != b {
            XCTAssertLessThan(f.top2_gaps[i], 1e-4, "token \(i): ours \(a), HF \(b)")
            break
        }
    }
}
