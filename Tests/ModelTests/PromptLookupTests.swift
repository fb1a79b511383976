import Model
import XCTest

/// The prompt-lookup drafter: which n-gram it matches, which occurrence it copies from, how much.
final class PromptLookupTests: XCTestCase {
    func lookup(_ k: Int, _ n: Int = 3, min: Int = 1) throws -> PromptLookup {
        try XCTUnwrap(PromptLookup.make(draftTokens: k, ngram: n, minNgram: min))
    }

    func testCopiesWhatFollowedTheLongestMatchingSuffix() throws {
        // Suffix [7, 8, 9] occurs at 1; its 2-gram [8, 9] also occurs later at 6 followed by 40: the
        // 3-gram wins over the later 2-gram.
        let ctx = [5, 7, 8, 9, 10, 11, 8, 9, 40, 7, 8, 9]
        XCTAssertEqual(try lookup(3).draft(ctx, limit: 10), [10, 11, 8])
        // N = 2: [8, 9]'s latest earlier occurrence (index 6) is followed by 40, 7, 8, 9.
        XCTAssertEqual(try lookup(4, 2).draft(ctx, limit: 10), [40, 7, 8, 9])
    }

    func testFallsBackToShorterNgramsDownToOne() throws {
        // Neither [2, 3, 4] nor [3, 4] occurs earlier; [4] does, at 1, followed by 6.
        XCTAssertEqual(try lookup(2).draft([1, 4, 6, 2, 3, 4], limit: 5), [6, 2])
        // Nothing matches at any length.
        XCTAssertEqual(try lookup(4).draft([1, 2, 3, 4], limit: 5), [])
        XCTAssertEqual(try lookup(4).draft([1], limit: 5), [])
    }

    func testNoDraftFromAMatchShorterThanTheMinimum() throws {
        // [4] matches at 1 but [3, 4] nowhere: with a minimum of 2 there is no draft.
        XCTAssertEqual(try lookup(2, 3, min: 2).draft([1, 4, 6, 2, 3, 4], limit: 5), [])
        // [3, 4] matches at 1 (then 9): long enough.
        XCTAssertEqual(try lookup(2, 3, min: 2).draft([1, 3, 4, 9, 2, 3, 4], limit: 5), [9, 2])
        // The minimum equal to N: only N-grams count ([2, 3, 4] nowhere; [3, 4] would match).
        XCTAssertEqual(try lookup(2, 3, min: 3).draft([1, 3, 4, 9, 2, 3, 4], limit: 5), [])
        // A context too short for the minimum n-gram plus the token after it.
        XCTAssertEqual(try lookup(2, 3, min: 2).draft([5, 5], limit: 5), [])
        XCTAssertEqual(try lookup(2, 3, min: 2).draft([5, 5, 5], limit: 5), [5])
    }

    func testTheDefaultMinimumIsTheDefaultButNeverAboveN() throws {
        XCTAssertEqual(try XCTUnwrap(PromptLookup.make(draftTokens: 4)).minNgram, PromptLookup.defaultMinNgram)
        XCTAssertEqual(try XCTUnwrap(PromptLookup.make(draftTokens: 4, ngram: 1)).minNgram, 1)
        XCTAssertThrowsError(try PromptLookup.make(draftTokens: 4, ngram: 2, minNgram: 3)) {
            XCTAssertEqual($0 as? SpeculationError, .minNgramOutOfRange(3, ngram: 2))
            XCTAssertTrue("\($0)".contains("got 3") && "\($0)".contains("1...2"), "\($0)")
        }
        XCTAssertThrowsError(try PromptLookup.make(draftTokens: 4, minNgram: 0)) {
            XCTAssertEqual($0 as? SpeculationError, .minNgramOutOfRange(0, ngram: 3))
        }
    }

    func testTheLatestOccurrenceIsPreferredAndTheDraftStopsAtTheContextEnd() throws {
        // [1, 2] at 0 (then 3) and at 3 (then 4): the later one; its continuation runs to the end.
        XCTAssertEqual(try lookup(8, 2).draft([1, 2, 3, 1, 2, 4, 1, 2], limit: 8), [4, 1, 2])
        // A run of one token: the match overlapping the suffix continues with the run.
        XCTAssertEqual(try lookup(5, 3).draft([9, 9, 9, 9, 9], limit: 8), [9])
    }

    func testTheLimitAndKCapTheDraft() throws {
        let ctx = [1, 2, 3, 4, 5, 6, 1, 2]
        XCTAssertEqual(try lookup(3, 2).draft(ctx, limit: 10), [3, 4, 5])
        XCTAssertEqual(try lookup(8, 2).draft(ctx, limit: 2), [3, 4])
        XCTAssertEqual(try lookup(8, 2).draft(ctx, limit: 0), [])
        XCTAssertEqual(try lookup(8, 2).draft(ctx, limit: -3), [])
    }

    func testZeroIsOffAndOutOfRangeValuesAreRefusedByValue() throws {
        XCTAssertNil(try PromptLookup.make(draftTokens: 0))
        XCTAssertThrowsError(try PromptLookup.make(draftTokens: -1)) {
            XCTAssertEqual($0 as? SpeculationError, .draftTokensOutOfRange(-1))
            XCTAssertTrue("\($0)".contains("got -1"), "\($0)")
        }
        XCTAssertThrowsError(try PromptLookup.make(draftTokens: PromptLookup.maxDraftTokens + 1)) {
            XCTAssertEqual($0 as? SpeculationError, .draftTokensOutOfRange(PromptLookup.maxDraftTokens + 1))
        }
        XCTAssertThrowsError(try PromptLookup.make(draftTokens: 4, ngram: 0)) {
            XCTAssertEqual($0 as? SpeculationError, .ngramOutOfRange(0))
            XCTAssertTrue("\($0)".contains("n-gram"), "\($0)")
        }
        // Out-of-range n-gram is refused even with speculation off (a typo is not silently ignored).
        XCTAssertThrowsError(try PromptLookup.make(draftTokens: 0, ngram: 0))
    }

    func testTheDraftLengthShrinksAfterARejectionAndGrowsBackWhenDraftsStand() throws {
        var length = DraftLength(try lookup(8))
        XCTAssertEqual(length.next, 8)
        length.record(drafted: 8, accepted: 2)
        XCTAssertEqual(length.next, 3, "one more than stood")
        length.record(drafted: 0, accepted: 0)
        XCTAssertEqual(length.next, 3, "a step without drafts changes nothing")
        length.record(drafted: 3, accepted: 0)
        XCTAssertEqual(length.next, 1)
        length.record(drafted: 1, accepted: 1)
        XCTAssertEqual(length.next, 2)
        length.record(drafted: 2, accepted: 2)
        XCTAssertEqual(length.next, 4)
        length.record(drafted: 4, accepted: 4)
        length.record(drafted: 8, accepted: 8)
        XCTAssertEqual(length.next, 8, "never beyond K")
    }
}
