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
