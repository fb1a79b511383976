/// Prompt-lookup decoding's drafter: proposes the tokens that followed the latest earlier
/// occurrence of the context's last n tokens (n from `ngram` down to `minNgram`), up to
/// `draftTokens` of them. The context is the prompt and the output so far, so a completion that copies from its
/// input (an extraction, a quote, an edit) is drafted from the input.
///
/// Drafts are only proposals: each step verifies them in one forward pass of the sequence's
/// last token plus its drafts (decode-row kernels, so each row's logits are the bits a lone
/// decode step would compute) and keeps the longest prefix the sampler agrees with, plus the
/// model's own next token. See `LlamaModel.generate` and the serving engine's step.
public struct PromptLookup: Sendable, Equatable {
    /// Draft tokens per step at most (K).
    public let draftTokens: Int
    /// Longest suffix n-gram matched (N); shorter ones are tried down to `minNgram`.
    public let ngram: Int
    /// Shortest suffix n-gram a draft may come from: a match of fewer tokens proposes nothing (a
    /// one-token match is weak evidence, and a rejected draft row costs a verification row).
    public let minNgram: Int

    /// K beyond this is refused: the decode-row kernels are built for a few rows, and a longer
    /// draft is rarely accepted whole.
    public static let maxDraftTokens = 16
    public static let maxNgram = 16
    public static let defaultNgram = 3
    /// Chosen on `scripts/bench/speculate.sh` (README, "Speculative decoding").
    public static let defaultMinNgram = 2

    /// nil when `draftTokens` is 0 (speculation off). `minNgram` nil: `defaultMinNgram`, but never more
    /// than `ngram`. Throws `SpeculationError` naming the value out of range.
    public static func make(draftTokens: Int, ngram: Int = defaultNgram, minNgram: Int? = nil) throws -> PromptLookup? {
        guard (0...maxDraftTokens).contains(draftTokens) else {
            throw SpeculationError.draftTokensOutOfRange(draftTokens)
        }
        guard (1...maxNgram).contains(ngram) else { throw SpeculationError.ngramOutOfRange(ngram) }
        let least = minNgram ?? min(defaultMinNgram, ngram)
        guard (1...ngram).contains(least) else { throw SpeculationError.minNgramOutOfRange(least, ngram: ngram) }
        return draftTokens == 0 ? nil : PromptLookup(draftTokens: draftTokens, ngram: ngram, minNgram: least)
    }

    private init(draftTokens: Int, ngram: Int, minNgram: Int) {
        self.draftTokens = draftTokens; self.ngram = ngram; self.minNgram = minNgram
    }

    /// Up to min(`draftTokens`, `limit`) tokens that followed the latest earlier occurrence of the
    /// longest matching suffix of `context` (length `ngram` down to `minNgram`); empty when none matches.
    /// The latest occurrence is preferred: it is the one a copy in progress is reading from.
    public func draft(_ context: [Int], limit: Int) -> [Int] {
        let want = min(draftTokens, limit)
        let L = context.count
        guard want > 0, L >= minNgram + 1 else { return [] }
        return context.withUnsafeBufferPointer { c in
            for n in stride(from: min(ngram, L - 1), through: minNgram, by: -1) {
                // Candidate starts j with context[j..<j+n] == the last n tokens, j + n < L (so the
                // match is earlier than the suffix itself and is followed by at least one token).
                var j = L - n - 1
                while j >= 0 {
                    var same = true
                    for t in 0..<n where c[j + t] != c[L - n + t] { same = false; break }
                    if same {
                        let from = j + n
                        return Array(c[from..<min(from + want, L)])
                    }
                    j -= 1
                }
            }
            return []
        }
    }
}

extension PromptLookup {
    /// The verification rows (0..<rows: the last token and its drafts) whose LM head is computed next,
    /// once rows 0..<computed have been sampled and every draft among them stood: windows [0, 1),
    /// [1, 3), [3, 7), ... (each twice the last, within `rows`). Row i's logits matter only when the
    /// drafts before it stood, and a row's LM head is a 49,152 x 576 product of its own, so rows past
    /// a rejection are not computed; windows (rather than one row at a time) keep one read of the
    /// head's weights serving several rows when drafts keep standing. Each row's logits are the same
    /// bits however the rows are grouped (`logitsRows`), so only speed depends on the windows.
    public static func logitsWindow(computed: Int, rows: Int) -> Range<Int> {
        computed..<Swift.min(rows, 2 * computed + 1)
    }
}

/// How many drafts a sequence's next step proposes (at most K): a rejected draft costs a verification
/// row (with the LM head, most of a decode row's weight reads are shared, but not its arithmetic),
/// so after a rejection the next step drafts one more than stood this time, and after a step whose
/// drafts all stood, twice as many (up to K). Only speed depends on it: output never does.
public struct DraftLength: Sendable, Equatable {
    public private(set) var next: Int
    public let max: Int

    public init(_ lookup: PromptLookup) { next = lookup.draftTokens; max = lookup.draftTokens }

    public mutating func record(drafted: Int, accepted: Int) {
        guard drafted > 0 else { return }
        next = accepted == drafted ? Swift.min(max, 2 * Swift.max(next, drafted)) : Swift.min(max, accepted + 1)
    }
}

/// Speculation settings out of range; each case names the value (the CLI and server name the flag or field).
public enum SpeculationError: Error, Sendable, Equatable, CustomStringConvertible {
    case draftTokensOutOfRange(Int)
    case ngramOutOfRange(Int)
    case minNgramOutOfRange(Int, ngram: Int)

    public var description: String {
        switch self {
        case let .draftTokensOutOfRange(k): return "draft tokens per step must be in 0...\(PromptLookup.maxDraftTokens), got \(k)"
        case let .ngramOutOfRange(n): return "the lookup n-gram must be in 1...\(PromptLookup.maxNgram), got \(n)"
        case let .minNgramOutOfRange(m, ngram): return "the shortest lookup n-gram must be in 1...\(ngram) (the longest), got \(m)"
        }
    }
}
