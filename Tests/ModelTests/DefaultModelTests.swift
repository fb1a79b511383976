import Foundation
import Model
import TestSupport
import XCTest

/// The default base model (SmolLM2-135M-Instruct Q4_1 GGUF) against HF transformers loading
/// the same GGUF (Tests/Fixtures/default-model/reference.json). Without the file these tests
/// fail with instructions (scripts/fetch-default-model.sh); they are never skipped.
final class DefaultModelTests: XCTestCase {
    /// Ours and transformers on the same dequantized weights differ only in summation order
    /// (FP32.defaultModelForward, relative to the logits' scale); an NLL (logsumexp − logit) moves by at
    /// most twice a logit's error.
    static let logitTolerance = FP32.defaultModelForward
    static func nllTolerance(logitScale: Double) -> Double { 2 * logitTolerance * logitScale }

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
        let scale = Double(try m.logits(for: p.input_ids).map(abs).max() ?? 1)
        XCTAssertEqual(nll.count, p.tokens)
        XCTAssertEqual(nll.mean, p.nll, accuracy: Self.nllTolerance(logitScale: scale))
    }

    func testTopLogitsOfTheFirstPositionsMatchTransformers() throws {
        let (m, ref) = try model()
        let p = ref.paragraph
        let n = p.top5.count
        let logits = try m.logits(for: Array(p.input_ids.prefix(n)))
        let V = m.config.vocabSize
        let scale = Double(logits.map(abs).max() ?? 1)
        for t in 0..<n {
            for pair in p.top5[t] {
                XCTAssertEqual(Double(logits[t * V + Int(pair[0])]), pair[1], accuracy: Self.logitTolerance * scale,
                               "position \(t) token \(Int(pair[0]))")
            }
        }
    }

    func testGreedyFranceContinuationBeginsWithParisAndEqualsTransformers() throws {
        let (m, ref) = try model()
        let f = ref.france
        let r = try m.generate(GenerationRequest(prompt: f.input_ids, maxTokens: f.tokens.count, eosTokenIds: []), decode: { _ in "" })
        XCTAssertEqual(r.tokens.first, 7042, "the first greedy token should be ' Paris' (7042)")
        for (i, (a, b)) in zip(r.tokens, f.tokens).enumerated() where a != b {
            // A legitimate divergence needs HF's top two within twice the logit error (scale ~ 30 here).
            XCTAssertLessThan(f.top2_gaps[i], 2 * Self.logitTolerance * 30, "token \(i): ours \(a), HF \(b)")
            break
        }
    }
}
