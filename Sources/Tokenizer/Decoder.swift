/// The decoders of HF `tokenizers` that the supported families use. Like HF's `decode_chain`, each
/// step maps a list of token strings to a list of strings; the final text is their concatenation.
indirect enum Decoder {
    /// Byte-level scalars back to bytes, then UTF-8 with U+FFFD for invalid sequences. A token with a
    /// scalar outside the mapping (an added token such as "<|im_end|>" maps fully; others may not)
    /// contributes its own UTF-8 bytes, as HF does.
    case byteLevel
    case replace(pattern: String, content: String)
    /// Runs of "<0xAB>" tokens become their bytes (U+FFFD per byte when they are not valid UTF-8).
    case byteFallback
    /// Joins everything into one string.
    case fuse
    /// Removes up to `start` leading and `stop` trailing copies of `content` from each token.
    /// (Token text is handled per Unicode scalar, as Rust's `chars()` does, not per grapheme.)
    case strip(content: Unicode.Scalar, start: Int, stop: Int)
    case metaspace(replacement: Unicode.Scalar, prependScheme: String)
    case sequence([Decoder])

    func decodeChain(_ tokens: [String]) -> [String] {
        switch self {
        case .byteLevel:
            var bytes: [UInt8] = []
            bytes.reserveCapacity(tokens.count * 4)
            for t in tokens {
                let start = bytes.count
                var mapped = true
                for s in t.unicodeScalars {
                    guard let b = ByteLevelMapping.byte(for: s) else { mapped = false; break }
                    bytes.append(b)
                }
                if !mapped {
                    bytes.removeSubrange(start...)
                    bytes.append(contentsOf: t.utf8)
                }
            }
            return [String(decoding: bytes, as: UTF8.self)]
        case let .replace(pattern, content):
            return tokens.map { $0.replacingAll(pattern, with: content) }
        case .byteFallback:
            var out: [String] = []
            var pending: [UInt8] = []
            func flush() {
                guard !pending.isEmpty else { return }
                if let s = String(validatingUTF8Bytes: pending) {
                    out.append(s)
                } else {
                    out.append(contentsOf: repeatElement("\u{FFFD}", count: pending.count))
                }
                pending.removeAll()
            }
            for t in tokens {
                if let b = Decoder.byteToken(t) {
                    pending.append(b)
                } else {
                    flush()
                    out.append(t)
                }
            }
            flush()
            return out
        case .fuse:
            return [tokens.joined()]
        case let .strip(content, start, stop):
            return tokens.map { t in
                let u = Array(t.unicodeScalars)
                var lo = 0, hi = u.count
                while lo < min(start, hi), u[lo] == content { lo += 1 }
                var removed = 0
                while removed < stop, hi > lo, u[hi - 1] == content { hi -= 1; removed += 1 }
                if lo == 0 && hi == u.count { return t }
                return String(String.UnicodeScalarView(u[lo..<hi]))
            }
        case let .metaspace(replacement, scheme):
            // HF metaspace.rs: in the first token every replacement is dropped (not only a leading
            // one) unless the scheme is "never"; elsewhere each becomes a space.
            return tokens.enumerated().map { i, t in
                let dropAll = i == 0 && scheme != "never"
                var out = String.UnicodeScalarView()
                for c in t.unicodeScalars {
                    if c == replacement {
                        if !dropAll { out.append(" ") }
                    } else {
                        out.append(c)
                    }
                }
                return String(out)
            }
        case let .sequence(steps):
            var t = tokens
            for step in steps { t = step.decodeChain(t) }
            return t
        }
    }

    func decode(_ tokens: [String]) -> String { decodeChain(tokens).joined() }

    /// The byte of a "<0xAB>" token, else nil.
    static func byteToken(_ t: String) -> UInt8? {
        let u = Array(t.utf8)
        guard u.count == 6, u[0] == 0x3C, u[1] == 0x30, u[2] == 0x78, u[5] == 0x3E else { return nil }
        guard let hi = hexValue(u[3]), let lo = hexValue(u[4]) else { return nil }
        return hi << 4 | lo
    }

    private static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: return c - 0x30
        case 0x41...0x46: return c - 0x41 + 10
        case 0x61...0x66: return c - 0x61 + 10
        default: return nil
        }
    }
}

extension String {
    /// `String(validating:)` without Foundation: nil unless the bytes are valid UTF-8.
    init?(validatingUTF8Bytes bytes: [UInt8]) {
        var it = bytes.makeIterator()
        var decoder = UTF8()
        var scalars = String.UnicodeScalarView()
        loop: while true {
            switch decoder.decode(&it) {
            case let .scalarValue(s): scalars.append(s)
            case .emptyInput: break loop
            case .error: return nil
            }
        }
        self = String(scalars)
    }

    /// Every occurrence of `pattern` replaced by `content` (literal, non-overlapping, left to right).
    func replacingAll(_ pattern: String, with content: String) -> String {
        guard !pattern.isEmpty else { return self }
        let s = Array(unicodeScalars), p = Array(pattern.unicodeScalars)
        let matches = SplitMatcher.literal(p).matches(s)
        guard !matches.isEmpty else { return self }
        var out = String.UnicodeScalarView()
        var pos = 0
        for m in matches {
            out.append(contentsOf: s[pos..<m.lowerBound])
            out.append(contentsOf: content.unicodeScalars)
            pos = m.upperBound
        }
        out.append(contentsOf: s[pos...])
        return String(out)
    }
}
