/// A token that is matched in the raw text before pre-tokenization (HF `AddedToken`).
struct AddedToken {
    var id: Int
    var content: String
    var special: Bool
    var singleWord: Bool = false
    var lstrip: Bool = false
    var rstrip: Bool = false
    /// Whether the token is matched in normalized text (true) or in the raw text (false).
    var normalized: Bool = false
}

/// A segment of the input: either text still to be tokenized or an added token's id.
enum Segment {
    case text(Piece)
    case token(Int)
}

/// Finds added tokens in text, leftmost first and longest at a given position (HF matches them with
/// Aho-Corasick in LeftmostLongest mode), honoring `lstrip`, `rstrip` and `single_word`.
struct AddedTokenMatcher {
    private struct Candidate {
        var scalars: [Unicode.Scalar]
        var token: AddedToken
    }
    /// First scalar -> candidates, longest first.
    private var byFirst: [UInt32: [Candidate]] = [:]
    var isEmpty: Bool { byFirst.isEmpty }

    init(_ tokens: [AddedToken]) {
        for t in tokens {
            let s = Array(t.content.unicodeScalars)
            guard let first = s.first else { continue }
            byFirst[first.value, default: []].append(Candidate(scalars: s, token: t))
        }
        for k in byFirst.keys { byFirst[k]!.sort { $0.scalars.count > $1.scalars.count } }
    }

    /// Splits `piece` into text and token segments.
    func split(_ piece: Piece, into out: inout [Segment]) {
        let s = piece.scalars
        guard !byFirst.isEmpty else {
            if !s.isEmpty { out.append(.text(piece)) }
            return
        }
        var textStart = 0  // start of pending text
        var i = 0
        while i < s.count {
            guard let cands = byFirst[s[i].value] else { i += 1; continue }
            var matched: Candidate?
            for c in cands where i + c.scalars.count <= s.count && s[i..<(i + c.scalars.count)].elementsEqual(c.scalars) {
                matched = c
                break
            }
            guard let m = matched else { i += 1; continue }
            var start = i, stop = i + m.scalars.count
            if m.token.singleWord {
                let startOK = start == 0 || !UnicodeClass.isWordChar(s[start - 1])
                let stopOK = stop == s.count || !UnicodeClass.isWordChar(s[stop])
                // HF's match iterator resumes after a rejected match, not inside it.
                if !(startOK && stopOK) { i = stop; continue }
            }
            if m.token.lstrip {
                while start > textStart && UnicodeClass.isWhitespace(s[start - 1]) { start -= 1 }
            }
            if m.token.rstrip {
                while stop < s.count && UnicodeClass.isWhitespace(s[stop]) { stop += 1 }
            }
            if start > textStart {
                out.append(.text(Piece(scalars: Array(s[textStart..<start]), atStart: piece.atStart && textStart == 0)))
            }
            out.append(.token(m.token.id))
            textStart = stop
            i = stop
        }
        if textStart < s.count {
            out.append(.text(Piece(scalars: Array(s[textStart...]), atStart: piece.atStart && textStart == 0)))
        }
    }
}
