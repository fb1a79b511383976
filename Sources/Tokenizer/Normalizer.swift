import Foundation

/// The normalizers of HF `tokenizers` that the supported families use. HF applies the normalizer to
/// each piece of text between added tokens, separately.
indirect enum Normalizer {
    case nfc, nfd, nfkc, nfkd, lowercase
    /// Prepends the string to a non-empty piece (Llama 2's legacy "▁").
    case prepend([Unicode.Scalar])
    /// Replaces every occurrence of a literal string.
    case replace(pattern: [Unicode.Scalar], content: [Unicode.Scalar])
    /// Removes leading / trailing whitespace.
    case strip(left: Bool, right: Bool)
    case sequence([Normalizer])

    /// Largest factor by which a normalizer may grow a piece of text. Real tokenizers replace a
    /// scalar by one or two (" " -> "▁") and prepend one; a chain of Replace steps whose content is
    /// longer than its pattern compounds (ten "a" -> "aa" steps grow text 1024 times), so such
    /// files are refused when loaded instead of exhausting memory when encoding.
    static let maxGrowthFactor = 64.0
    /// Largest number of scalars Prepend steps may add to a piece in all.
    static let maxAddedScalars = 1 << 16

    /// A bound `factor * n + added` on the output length for an input of n scalars. Unicode
    /// normalization forms grow text by a small bounded factor and are idempotent, so they are
    /// not counted; Replace grows by at most content/pattern per occurrence.
    var growth: (factor: Double, added: Double) {
        switch self {
        case .nfc, .nfd, .nfkc, .nfkd, .lowercase, .strip: return (1, 0)
        case let .prepend(p): return (1, Double(p.count))
        case let .replace(pattern, content):
            return (max(1, Double(content.count) / Double(max(1, pattern.count))), 0)
        case let .sequence(steps):
            var g = (factor: 1.0, added: 0.0)
            for step in steps {
                let s = step.growth
                g = (g.factor * s.factor, g.added * s.factor + s.added)
            }
            return g
        }
    }

    func apply(_ s: [Unicode.Scalar]) -> [Unicode.Scalar] {
        switch self {
        case .nfc: return Normalizer.foundation(s) { $0.precomposedStringWithCanonicalMapping }
        case .nfd: return Normalizer.foundation(s) { $0.decomposedStringWithCanonicalMapping }
        case .nfkc: return Normalizer.foundation(s) { $0.precomposedStringWithCompatibilityMapping }
        case .nfkd: return Normalizer.foundation(s) { $0.decomposedStringWithCompatibilityMapping }
        case .lowercase:
            return Array(String(String.UnicodeScalarView(s)).lowercased().unicodeScalars)
        case let .prepend(p):
            return s.isEmpty ? s : p + s
        case let .replace(pattern, content):
            let matches = SplitMatcher.literal(pattern).matches(s)
            guard !matches.isEmpty else { return s }
            var out: [Unicode.Scalar] = []
            out.reserveCapacity(s.count)
            var pos = 0
            for m in matches {
                out.append(contentsOf: s[pos..<m.lowerBound])
                out.append(contentsOf: content)
                pos = m.upperBound
            }
            out.append(contentsOf: s[pos...])
            return out
        case let .strip(left, right):
            var lo = 0, hi = s.count
            if left { while lo < hi && UnicodeClass.isWhitespace(s[lo]) { lo += 1 } }
            if right { while hi > lo && UnicodeClass.isWhitespace(s[hi - 1]) { hi -= 1 } }
            return Array(s[lo..<hi])
        case let .sequence(steps):
            var out = s
            for step in steps { out = step.apply(out) }
            return out
        }
    }

    private static func foundation(_ s: [Unicode.Scalar], _ f: (NSString) -> String) -> [Unicode.Scalar] {
        // ASCII is invariant under every normalization form.
        if s.allSatisfy({ $0.isASCII }) { return s }
        let str = String(String.UnicodeScalarView(s))
        return Array(f(str as NSString).unicodeScalars)
    }
}
