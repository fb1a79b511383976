import Foundation
import Model
import Service
import TestSupport
import XCTest

/// Verification rows' LM head in windows (`PromptLookup.logitsWindow`): computed only once the drafts
/// before them stood, the output unchanged.
final class SpeculationWindowTests: XCTestCase {
    func testWindowsDoubleWithinTheRows() {
        func windows(_ rows: Int) -> [Range<Int>] {
            var out: [Range<Int>] = [], computed = 0
            while computed < rows {
                let w = PromptLookup.logitsWindow(computed: computed, rows: rows)
                out.append(w); computed = w.upperBound
            }
            return out
        }
        XCTAssertEqual(windows(1), [0..<1])
        XCTAssertEqual(windows(2), [0..<1, 1..<2])
        XCTAssertEqual(windows(5), [0..<1, 1..<3, 3..<5])
        XCTAssertEqual(windows(17), [0..<1, 1..<3, 3..<7, 7..<15, 15..<17])
    }

    /// `generate` with drafts that are rejected: fewer rows get an LM head than were fed (a rejected
    /// draft's later rows none), every emitted token's row one, and the tokens are plain decoding's.
    func testGenerateComputesNoLMHeadPastARejectedDraft() throws {
        let lm = try ServingFixtures.model()
        var o = InferenceService.GenerateOptions()
        o.maxTokens = 24
        let plain = try InferenceService(model: lm).generate(prompt: SpeculativeDecodingTests.copyPrompt, options: o)
        o.speculation = try PromptLookup.make(draftTokens: 8, ngram: 3, minNgram: 1)
        let spec = try InferenceService(model: lm).generate(prompt: SpeculativeDecodingTests.copyPrompt, options: o)
        XCTAssertEqual(spec.tokens, plain.tokens)
        XCTAssertGreaterThan(spec.acceptedTokens, 0, "no draft stood")
        XCTAssertGreaterThan(spec.draftedTokens, spec.acceptedTokens, "no draft was rejected")
        XCTAssertEqual(spec.fedRows, spec.decodeSteps + 1 + spec.draftedTokens, "each step's row plus its drafts")
        XCTAssertLessThan(spec.headRows, spec.fedRows, "every verification row got its LM head")
        XCTAssertGreaterThanOrEqual(spec.headRows, spec.tokens.count, "a token was chosen without its row's logits")
        XCTAssertEqual(plain.headRows, plain.fedRows)
        // One row a token (the prompt's last, then each decode row), and the row that chose an EOS.
        XCTAssertEqual(plain.fedRows, plain.tokens.count + (plain.finishReason == .stop ? 1 : 0))
    }
}
