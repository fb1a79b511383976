/// A piece of text on its way through normalization and pre-tokenization.
struct Piece {
    var scalars: [Unicode.Scalar]
    /// Whether the piece begins at offset 0 of the original text (Metaspace's `prepend_scheme: first`).
    var atStart: Bool
}

/// How a split keeps the delimiters it finds (HF `SplitDelimiterBehavior`).
enum SplitBehavior: String {
    case removed = "Removed", isolated = "Isolated", mergedWithPrevious = "MergedWithPrevious"
    case mergedWithNext = "MergedWithNext", contiguous = "Contiguous"
}

/// What a Split pre-tokenizer looks for.
enum SplitMatcher {
    case pattern(SplitPattern)
    case literal([Unicode.Scalar])

    func matches(_ s: [Unicode.Scalar]) -> [Range<Int>] {
        switch self {
        case let .pattern(p):
            return p.matches(s, 0, s.count)
        case let .literal(lit):
            guard !lit.isEmpty, lit.count <= s.count else { return [] }
            var out: [Range<Int>] = []
            var i = 0
            while i + lit.count <= s.count {
                if s[i] == lit[0] && s[i..<(i + lit.count)].elementsEqual(lit) {
                    out.append(i..<(i + lit.count))
                    i += lit.count
                } else {
                    i += 1
                }
            }
            return out
        }
    }
}

/// The pre-tokenizers of HF `tokenizers` that the supported families use.
indirect enum PreTokenizer {
    /// GPT-2 byte-level: optional prefix space, optional GPT-2 regex split, then bytes mapped to scalars.
    case byteLevel(addPrefixSpace: Bool, useRegex: Bool)
    /// Every numeric scalar isolated (`individual_digits: true`), or runs of them.
    case digits(individual: Bool)
    case split(SplitMatcher, SplitBehavior, invert: Bool)
    /// SentencePiece's metaspace: spaces become `replacement`, which is prepended per `prependScheme`
    /// ("always", "first", "never"); with `split`, each piece starts at a `replacement`.
    case metaspace(replacement: Unicode.Scalar, prependScheme: String, split: Bool)
    case sequence([PreTokenizer])

    func apply(_ pieces: [Piece]) -> [Piece] {
        switch self {
        case let .sequence(steps):
            var p = pieces
            for step in steps { p = step.apply(p) }
            return p
        default:
            var out: [Piece] = []
            out.reserveCapacity(pieces.count * 4)
            for piece in pieces { applyOne(piece, into: &out) }
            return out
        }
    }

    private func applyOne(_ piece: Piece, into out: inout [Piece]) {
        switch self {
        case let .byteLevel(addPrefixSpace, useRegex):
            var s = piece.scalars
            if addPrefixSpace && s.first != " " { s.insert(" ", at: 0) }
            if useRegex {
                for r in SplitPattern.gpt2.matches(s, 0, s.count) {
                    out.append(Piece(scalars: ByteLevelMapping.encode(s[r]), atStart: piece.atStart && r.lowerBound == 0))
                }
            } else if !s.isEmpty {
                out.append(Piece(scalars: ByteLevelMapping.encode(s), atStart: piece.atStart))
            }
        case let .digits(individual):
            let s = piece.scalars
            var matches: [Range<Int>] = []
            var i = 0
            while i < s.count {
                if UnicodeClass.isNumber(s[i]) {
                    var j = i + 1
                    if !individual { while j < s.count && UnicodeClass.isNumber(s[j]) { j += 1 } }
                    matches.append(i..<j)
                    i = j
                } else {
                    i += 1
                }
            }
            PreTokenizer.emit(piece, matches: matches, behavior: individual ? .isolated : .contiguous, into: &out)
        case let .split(matcher, behavior, invert):
            let matches = matcher.matches(piece.scalars)
            PreTokenizer.emit(piece, matches: matches, behavior: behavior, invert: invert, into: &out)
        case let .metaspace(replacement, scheme, split):
            var s = piece.scalars.map { $0 == " " ? replacement : $0 }
            let prepend = scheme == "always" || (scheme == "first" && piece.atStart)
            if prepend && s.first != replacement { s.insert(replacement, at: 0) }
            let p = Piece(scalars: s, atStart: piece.atStart)
            if split {
                let matches = SplitMatcher.literal([replacement]).matches(s)
                PreTokenizer.emit(p, matches: matches, behavior: .mergedWithNext, into: &out)
            } else if !s.isEmpty {
                out.append(p)
            }
        case .sequence:
            out.append(contentsOf: apply([piece]))
        }
    }

    /// Cuts `piece` at the matches according to `behavior` (HF NormalizedString::split), dropping empty parts.
    static func emit(_ piece: Piece, matches: [Range<Int>], behavior: SplitBehavior, invert: Bool = false,
                     into out: inout [Piece]) {
        let s = piece.scalars
        // Tile the piece into (range, isMatch) parts.
        var parts: [(Range<Int>, Bool)] = []
        var pos = 0
        for m in matches {
            if m.lowerBound > pos { parts.append((pos..<m.lowerBound, invert)) }
            if !m.isEmpty { parts.append((m, !invert)) }
            pos = m.upperBound
        }
        if pos < s.count { parts.append((pos..<s.count, invert)) }

        var ranges: [Range<Int>] = []
        switch behavior {
        case .removed:
            ranges = parts.filter { !$0.1 }.map { $0.0 }
        case .isolated:
            ranges = parts.map { $0.0 }
        case .mergedWithPrevious:
            var previousWasMatch = false
            for (r, isMatch) in parts {
                if isMatch, !previousWasMatch, let last = ranges.last {
                    ranges[ranges.count - 1] = last.lowerBound..<r.upperBound
                } else {
                    ranges.append(r)
                }
                previousWasMatch = isMatch
            }
        case .mergedWithNext:
            var previousWasMatch = false
            for (r, isMatch) in parts {
                if previousWasMatch, !isMatch, let last = ranges.last {
                    ranges[ranges.count - 1] = last.lowerBound..<r.upperBound
                } else {
                    ranges.append(r)
                }
                previousWasMatch = isMatch
            }
        case .contiguous:
            var previousWasMatch = false
            for (r, isMatch) in parts {
                if isMatch, previousWasMatch, let last = ranges.last {
                    ranges[ranges.count - 1] = last.lowerBound..<r.upperBound
                } else {
                    ranges.append(r)
                }
                previousWasMatch = isMatch
            }
        }
        for r in ranges where !r.isEmpty {
            out.append(Piece(scalars: Array(s[r]), atStart: piece.atStart && r.lowerBound == 0))
        }
    }
}
