/// A token of a Jinja template.
struct JinjaToken: Equatable {
    enum Kind: Equatable {
        case text(String)
        case variableBegin, variableEnd, blockBegin, blockEnd
        case name(String)
        case string(String)
        case integer(Int)
        case float(Double)
        case op(String)
        case eof
    }
    var kind: Kind
    var location: SourceLocation
}

/// Splits a template into text and tag tokens with Jinja's whitespace rules as transformers configures
/// them (jinja2 Environment with `trim_blocks=True, lstrip_blocks=True`, `keep_trailing_newline=False`;
/// see transformers/utils/chat_template_utils.py `_cached_compile_jinja_template` and jinja2/lexer.py):
/// - `{%-` / `{{-` / `{#-` strip all whitespace before the tag, `-%}` / `-}}` / `-#}` all whitespace after;
/// - trim_blocks: the first newline after a block or comment tag is removed (`+%}` keeps it);
/// - lstrip_blocks: spaces and tabs from the start of a line up to a block or comment tag are removed
///   (`{%+` keeps them; never for `{{`);
/// - a single trailing newline of the template is dropped, and `\r\n` / `\r` become `\n`.
struct JinjaLexer {
    private let s: [Unicode.Scalar]
    private var i = 0
    private var line = 1
    private var column = 1
    private var tokens: [JinjaToken] = []

    init(_ source: String) {
        var text = source.replacingOccurrences(of: "\r\n", with: "\n").replacingOccurrences(of: "\r", with: "\n")
        if text.hasSuffix("\n") { text.removeLast() }
        s = Array(text.unicodeScalars)
    }

    static func tokenize(_ source: String) throws -> [JinjaToken] {
        var lexer = JinjaLexer(source)
        try lexer.run()
        return lexer.tokens
    }

    private var location: SourceLocation { SourceLocation(line: line, column: column) }

    private func peek(_ offset: Int = 0) -> Unicode.Scalar? {
        i + offset < s.count ? s[i + offset] : nil
    }

    private mutating func advance(_ n: Int = 1) {
        for _ in 0..<n where i < s.count {
            if s[i] == "\n" { line += 1; column = 1 } else { column += 1 }
            i += 1
        }
    }

    private func startsWith(_ p: String) -> Bool {
        var j = i
        for u in p.unicodeScalars {
            guard j < s.count, s[j] == u else { return false }
            j += 1
        }
        return true
    }

    static func isSpace(_ u: Unicode.Scalar) -> Bool {
        u.properties.isWhitespace || (0x1c...0x1f).contains(u.value)
    }

    private mutating func run() throws {
        var lineStarting = true
        while i < s.count {
            // Text up to the next tag opener.
            let textStart = i, textLocation = location
            var j = i
            var opener: String?
            while j + 1 < s.count {
                if s[j] == "{", s[j + 1] == "{" || s[j + 1] == "%" || s[j + 1] == "#" {
                    opener = "{" + String(s[j + 1])
                    break
                }
                j += 1
            }
            guard let opener else {
                let text = String(String.UnicodeScalarView(s[textStart...]))
                if !text.isEmpty { tokens.append(JinjaToken(kind: .text(text), location: textLocation)) }
                advance(s.count - i)
                break
            }
            var text = Array(s[textStart..<j])
            let sign: Unicode.Scalar? = j + 2 < s.count && (s[j + 2] == "-" || s[j + 2] == "+") ? s[j + 2] : nil
            if sign == "-" {
                while let last = text.last, Self.isSpace(last) { text.removeLast() }
            } else if sign != "+", opener != "{{" {
                // lstrip_blocks: only whitespace between the line start and the tag.
                let lineStart = (text.lastIndex(of: "\n").map { $0 + 1 }) ?? 0
                if lineStart > 0 || lineStarting {
                    let tail = text[lineStart...]
                    if !tail.isEmpty, tail.allSatisfy(Self.isSpace) { text.removeSubrange(lineStart...) }
                }
            }
            if !text.isEmpty {
                tokens.append(JinjaToken(kind: .text(String(String.UnicodeScalarView(text))), location: textLocation))
            }
            advance(j - i)
            let tagLocation = location
            advance(sign == nil ? 2 : 3)
            switch opener {
            case "{#":
                try skipComment(tagLocation)
            case "{{":
                tokens.append(JinjaToken(kind: .variableBegin, location: tagLocation))
                try lexTag(end: "}}", endKind: .variableEnd, opened: tagLocation, trimNewline: false)
            default:
                tokens.append(JinjaToken(kind: .blockBegin, location: tagLocation))
                try lexTag(end: "%}", endKind: .blockEnd, opened: tagLocation, trimNewline: true)
                try skipRawIfNeeded()
            }
            lineStarting = i > 0 && s[i - 1] == "\n"
        }
        tokens.append(JinjaToken(kind: .eof, location: location))
    }

    private mutating func skipComment(_ opened: SourceLocation) throws {
        while i < s.count {
            if startsWith("-#}") {
                advance(3)
                while let u = peek(), Self.isSpace(u) { advance() }
                return
            }
            if startsWith("+#}") { advance(3); return }
            if startsWith("#}") {
                advance(2)
                if peek() == "\n" { advance() }
                return
            }
            advance()
        }
        throw ChatTemplateError.syntax("unterminated comment", opened)
    }

    /// `{% raw %}` is not implemented: refuse it where it starts.
    private mutating func skipRawIfNeeded() throws {
        guard tokens.count >= 3 else { return }
        let n = tokens.count
        if case .blockBegin = tokens[n - 3].kind, case .name("raw") = tokens[n - 2].kind, case .blockEnd = tokens[n - 1].kind {
            throw ChatTemplateError.unsupported("{% raw %} blocks", tokens[n - 2].location)
        }
    }

    private mutating func lexTag(end: String, endKind: JinjaToken.Kind, opened: SourceLocation, trimNewline: Bool) throws {
        var depth = 0
        while true {
            while let u = peek(), Self.isSpace(u) { advance() }
            guard let u = peek() else {
                throw ChatTemplateError.syntax("unterminated tag (expected '\(end)')", opened)
            }
            let loc = location
            if depth == 0 {
                if startsWith("-" + end) {
                    advance(3)
                    tokens.append(JinjaToken(kind: endKind, location: loc))
                    while let w = peek(), Self.isSpace(w) { advance() }
                    return
                }
                if startsWith("+" + end), trimNewline {
                    advance(3)
                    tokens.append(JinjaToken(kind: endKind, location: loc))
                    return
                }
                if startsWith(end) {
                    advance(2)
                    tokens.append(JinjaToken(kind: endKind, location: loc))
                    if trimNewline, peek() == "\n" { advance() }
                    return
                }
            }
            if u == "_" || u.properties.isAlphabetic && u.isASCII {
                var name = ""
                while let c = peek(), c == "_" || (c.isASCII && (c.properties.isAlphabetic || ("0"..."9").contains(c))) {
                    name.unicodeScalars.append(c)
                    advance()
                }
                tokens.append(JinjaToken(kind: .name(name), location: loc))
            } else if ("0"..."9").contains(u) {
                tokens.append(JinjaToken(kind: try lexNumber(loc), location: loc))
            } else if u == "'" || u == "\"" {
                tokens.append(JinjaToken(kind: .string(try lexString(quote: u, loc)), location: loc))
            } else {
                let ops = ["//", "**", "==", "!=", "<=", ">=", "+", "-", "/", "*", "%", "~", "[", "]", "(", ")", "{", "}",
                           "<", ">", "=", ".", ":", "|", ",", ";"]
                guard let op = ops.first(where: { startsWith($0) }) else {
                    throw ChatTemplateError.syntax("unexpected character '\(u)'", loc)
                }
                if op == "(" || op == "[" || op == "{" { depth += 1 }
                if op == ")" || op == "]" || op == "}" { depth = max(0, depth - 1) }
                advance(op.unicodeScalars.count)
                tokens.append(JinjaToken(kind: .op(op), location: loc))
            }
        }
    }

    private mutating func lexNumber(_ loc: SourceLocation) throws -> JinjaToken.Kind {
        var digits = ""
        var isFloat = false
        func takeDigits() {
            while let c = peek(), ("0"..."9").contains(c) || (c == "_" && digits.last?.isNumber == true) {
                if c != "_" { digits.unicodeScalars.append(c) }
                advance()
            }
        }
        takeDigits()
        if peek() == ".", let next = peek(1), ("0"..."9").contains(next) {
            isFloat = true
            digits += "."
            advance()
            takeDigits()
        }
        if let e = peek(), e == "e" || e == "E" {
            var k = 1
            if let sgn = peek(1), sgn == "+" || sgn == "-" { k = 2 }
            if let d = peek(k), ("0"..."9").contains(d) {
                isFloat = true
                digits += "e"
                if k == 2 { digits.unicodeScalars.append(peek(1)!) }
                advance(k)
                takeDigits()
            }
        }
        if isFloat {
            guard let d = Double(digits) else { throw ChatTemplateError.syntax("bad number '\(digits)'", loc) }
            return .float(d)
        }
        guard let n = Int(digits) else { throw ChatTemplateError.unsupported("integer literal too large: \(digits)", loc) }
        return .integer(n)
    }

    /// A string literal, decoded as Python's `unicode-escape` codec does (what jinja2's lexer applies).
    private mutating func lexString(quote: Unicode.Scalar, _ loc: SourceLocation) throws -> String {
        advance()
        var out = String.UnicodeScalarView()
        while true {
            guard let c = peek() else { throw ChatTemplateError.syntax("unterminated string literal", loc) }
            advance()
            if c == quote { return String(out) }
            guard c == "\\" else { out.append(c); continue }
            guard let e = peek() else { throw ChatTemplateError.syntax("unterminated string literal", loc) }
            advance()
            switch e {
            case "n": out.append("\n")
            case "t": out.append("\t")
            case "r": out.append("\r")
            case "\\": out.append("\\")
            case "'": out.append("'")
            case "\"": out.append("\"")
            case "a": out.append(Unicode.Scalar(7))
            case "b": out.append(Unicode.Scalar(8))
            case "f": out.append(Unicode.Scalar(12))
            case "v": out.append(Unicode.Scalar(11))
            case "\n": break
            case "x", "u", "U":
                let width = e == "x" ? 2 : (e == "u" ? 4 : 8)
                var hex = ""
                for _ in 0..<width {
                    guard let h = peek(), h.properties.isASCIIHexDigit else {
                        throw ChatTemplateError.syntax("truncated \\\(e) escape in string literal", loc)
                    }
                    hex.unicodeScalars.append(h)
                    advance()
                }
                guard let v = UInt32(hex, radix: 16), let scalar = Unicode.Scalar(v) else {
                    throw ChatTemplateError.syntax("invalid \\\(e)\(hex) escape in string literal", loc)
                }
                out.append(scalar)
            case "0"..."7":
                var oct = String(e)
                while oct.count < 3, let d = peek(), ("0"..."7").contains(d) { oct.unicodeScalars.append(d); advance() }
                out.append(Unicode.Scalar(UInt32(oct, radix: 8)!) ?? "?")
            default:
                out.append("\\")
                out.append(e)
            }
        }
    }
}
