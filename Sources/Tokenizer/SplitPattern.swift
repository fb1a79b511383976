/// The regular expressions that byte-level tokenizers split text with, implemented as hand-written
/// scanners over Unicode scalars (no regex engine: these are the only patterns the supported
/// families use, and a scanner is both faster and exact). Each scanner returns the matches of the
/// pattern, in order; the patterns match every scalar, so the matches tile the input.
///
/// Sources: GPT-2's encoder.py pattern (also HF `tokenizers` ByteLevel's built-in regex), Llama 3's
/// tokenizer.json Split pattern, Qwen2's tokenizer.json Split pattern; llama.cpp llama-vocab.cpp
/// lists the same strings per pre-tokenizer type.
enum SplitPattern: Equatable {
    /// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
    case gpt2
    /// `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
    /// with N = 3 (Llama 3) or N = 1 (Qwen2).
    case llama3(maxDigits: Int)

    static let gpt2Source = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#
    static let llama3Source = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    static let qwen2Source = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#

    /// The scanner for a regex source string from a tokenizer.json, or nil when it is not one of the known patterns.
    init?(regex: String) {
        switch regex {
        case SplitPattern.gpt2Source: self = .gpt2
        case SplitPattern.llama3Source: self = .llama3(maxDigits: 3)
        case SplitPattern.qwen2Source: self = .llama3(maxDigits: 1)
        default: return nil
        }
    }

    /// The matches of the pattern in `s[lo..<hi]`.
    func matches(_ s: [Unicode.Scalar], _ lo: Int, _ hi: Int) -> [Range<Int>] {
        var out: [Range<Int>] = []
        var i = lo
        while i < hi {
            let end: Int
            switch self {
            case .gpt2: end = SplitPattern.gpt2Match(s, i, hi)
            case let .llama3(maxDigits): end = SplitPattern.llama3Match(s, i, hi, maxDigits: maxDigits)
            }
            out.append(i..<end)
            i = end
        }
        return out
    }

    /// `'s|'t|'re|'ve|'m|'ll|'d` at i (case-insensitive when asked): the end of the match, or nil.
    @inline(__always)
    private static func contraction(_ s: [Unicode.Scalar], _ i: Int, _ hi: Int, ignoreCase: Bool) -> Int? {
        guard s[i] == "'", i + 1 < hi else { return nil }
        func lower(_ c: Unicode.Scalar) -> UInt32 {
            (ignoreCase && c.value >= 0x41 && c.value <= 0x5A) ? c.value + 0x20 : c.value
        }
        let a = lower(s[i + 1])
        switch a {
        case 0x73, 0x74, 0x6D, 0x64: return i + 2 // s t m d
        default: break
        }
        guard i + 2 < hi else { return nil }
        let b = lower(s[i + 2])
        if (a == 0x72 && b == 0x65) || (a == 0x76 && b == 0x65) || (a == 0x6C && b == 0x6C) { return i + 3 } // re ve ll
        return nil
    }

    @inline(__always)
    private static func run(_ s: [Unicode.Scalar], from j: Int, _ hi: Int, _ cls: ScalarClass) -> Int {
        var k = j
        while k < hi && UnicodeClass.of(s[k]) == cls { k += 1 }
        return k
    }

    /// `\s+(?!\S)|\s+` at a whitespace scalar i: the whole run when it ends the text, else the run
    /// minus its last scalar (which then prefixes the next word), else that single scalar.
    @inline(__always)
    private static func whitespaceMatch(_ s: [Unicode.Scalar], _ i: Int, _ hi: Int) -> Int {
        let j = run(s, from: i, hi, .whitespace)
        if j == hi { return hi }
        return j - i >= 2 ? j - 1 : i + 1
    }

    private static func gpt2Match(_ s: [Unicode.Scalar], _ i: Int, _ hi: Int) -> Int {
        if let e = contraction(s, i, hi, ignoreCase: false) { return e }
        let c = s[i]
        // ` ?X+` for X in letters, numbers, other: the optional prefix is the ASCII space only.
        if c == " ", i + 1 < hi {
            let k = UnicodeClass.of(s[i + 1])
            if k != .whitespace { return run(s, from: i + 1, hi, k) }
        }
        let k = UnicodeClass.of(c)
        if k != .whitespace { return run(s, from: i, hi, k) }
        return whitespaceMatch(s, i, hi)
    }

    @inline(__always)
    private static func isCRLF(_ c: Unicode.Scalar) -> Bool { c == "\r" || c == "\n" }

    private static func llama3Match(_ s: [Unicode.Scalar], _ i: Int, _ hi: Int, maxDigits: Int) -> Int {
        if let e = contraction(s, i, hi, ignoreCase: true) { return e }
        let c = s[i]
        let k = UnicodeClass.of(c)
        // `[^\r\n\p{L}\p{N}]?\p{L}+`
        if k == .letter { return run(s, from: i, hi, .letter) }
        if k != .number, !isCRLF(c), i + 1 < hi, UnicodeClass.of(s[i + 1]) == .letter {
            return run(s, from: i + 1, hi, .letter)
        }
        // `\p{N}{1,maxDigits}`
        if k == .number {
            var j = i + 1
            while j < hi && j - i < maxDigits && UnicodeClass.of(s[j]) == .number { j += 1 }
            return j
        }
        // ` ?[^\s\p{L}\p{N}]+[\r\n]*`
        var start = -1
        if k == .other { start = i } else if c == " ", i + 1 < hi, UnicodeClass.of(s[i + 1]) == .other { start = i + 1 }
        if start >= 0 {
            var j = run(s, from: start, hi, .other)
            while j < hi && isCRLF(s[j]) { j += 1 }
            return j
        }
        // Whitespace from here on. `\s*[\r\n]+`: up to and including the run's last CR/LF.
        let j = run(s, from: i, hi, .whitespace)
        var p = j - 1
        while p >= i && !isCRLF(s[p]) { p -= 1 }
        if p >= i { return p + 1 }
        // `\s+(?!\S)|\s+`
        if j == hi { return hi }
        return j - i >= 2 ? j - 1 : i + 1
    }
}
