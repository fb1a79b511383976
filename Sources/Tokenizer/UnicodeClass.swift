/// The character classes the pre-tokenizer split patterns use: `\p{L}`, `\p{N}` and `\s`.
///
/// HF `tokenizers` compiles its split patterns with Oniguruma, where `\p{L}` is General_Category
/// L (Lu Ll Lt Lm Lo), `\p{N}` is N (Nd Nl No), and `\s` in Unicode mode is U+0009..U+000D, U+0085
/// and the Zs/Zl/Zp categories, which is exactly the White_Space property. Swift's scalar
/// properties give the same categories (up to the Unicode version of each library).
enum ScalarClass: UInt8 {
    case letter, number, whitespace, other
}

enum UnicodeClass {
    /// Classes of the 128 ASCII scalars, so the common case is one table load.
    private static let ascii: [ScalarClass] = (0..<128).map { v in
        let s = Unicode.Scalar(UInt8(v))
        return slowClass(s)
    }

    @inline(__always)
    static func of(_ s: Unicode.Scalar) -> ScalarClass {
        let v = s.value
        if v < 128 { return ascii[Int(v)] }
        return slowClass(s)
    }

    private static func slowClass(_ s: Unicode.Scalar) -> ScalarClass {
        let p = s.properties
        if p.isWhitespace { return .whitespace }
        switch p.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter:
            return .letter
        case .decimalNumber, .letterNumber, .otherNumber:
            return .number
        default:
            return .other
        }
    }

    @inline(__always) static func isLetter(_ s: Unicode.Scalar) -> Bool { of(s) == .letter }
    @inline(__always) static func isNumber(_ s: Unicode.Scalar) -> Bool { of(s) == .number }
    @inline(__always) static func isWhitespace(_ s: Unicode.Scalar) -> Bool { of(s) == .whitespace }
    /// Rust's `char::is_alphanumeric`, used for added tokens' `single_word` boundaries.
    @inline(__always) static func isWordChar(_ s: Unicode.Scalar) -> Bool {
        let c = of(s)
        return c == .letter || c == .number || s == "_"
    }
}
