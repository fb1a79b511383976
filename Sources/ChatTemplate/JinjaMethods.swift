/// Python methods that chat templates call on strings, dicts and lists (`s.strip()`, `d.get(k)`...).
/// Mutating list methods are absent: transformers renders in jinja2's ImmutableSandboxedEnvironment.
enum JinjaMethods {
    static func call(_ target: JinjaValue, _ name: String, _ args: [JinjaValue], _ kwargs: [(String, JinjaValue)]) throws -> JinjaValue {
        let a = JinjaFilters.Arguments(positional: args, keywords: kwargs)
        switch target {
        case let .string(s): return try stringMethod(s, name, a)
        case let .object(o): return try dictMethod(o, name, a)
        case let .array(items), let .tuple(items):
            switch name {
            case "index":
                guard let needle = args.first, let i = items.firstIndex(of: needle) else {
                    throw JinjaCallError(message: "value is not in list")
                }
                return .int(i)
            case "count":
                guard let needle = args.first else { throw JinjaCallError(message: "count() takes one argument") }
                return .int(items.filter { $0 == needle }.count)
            default: break
            }
        default: break
        }
        throw JinjaCallError(message: "'\(target.typeName)' object has no method '\(name)'")
    }

    private static func dictMethod(_ o: JinjaObject, _ name: String, _ a: JinjaFilters.Arguments) throws -> JinjaValue {
        switch name {
        case "get":
            guard case let .string(k)? = a.get(0, "key") else { return a.get(1, "default") ?? .none }
            return o[k] ?? a.get(1, "default") ?? .none
        case "items": return .array(o.pairs.map { .tuple([.string($0.0), $0.1]) })
        case "keys": return .array(o.keys.map { .string($0) })
        case "values": return .array(o.pairs.map(\.1))
        default: throw JinjaCallError(message: "'dict' object has no method '\(name)'")
        }
    }

    private static func stringMethod(_ s: String, _ name: String, _ a: JinjaFilters.Arguments) throws -> JinjaValue {
        func str(_ i: Int, _ n: String) throws -> String {
            guard case let .string(v)? = a.get(i, n) else { throw JinjaCallError(message: "str.\(name)() needs a string argument '\(n)'") }
            return v
        }
        switch name {
        case "strip": return .string(strip(s, chars: a.get(0, "chars"), left: true, right: true))
        case "lstrip": return .string(strip(s, chars: a.get(0, "chars"), left: true, right: false))
        case "rstrip": return .string(strip(s, chars: a.get(0, "chars"), left: false, right: true))
        case "upper": return .string(s.uppercased())
        case "lower": return .string(s.lowercased())
        case "title": return .string(title(s))
        case "capitalize": return .string(capitalize(s))
        case "startswith", "endswith":
            let candidates: [JinjaValue] = a.get(0, "prefix")?.sequence ?? [a.get(0, "prefix") ?? .none]
            for c in candidates {
                guard case let .string(p) = c else { throw JinjaCallError(message: "str.\(name)() needs a string or tuple of strings") }
                if name == "startswith" ? s.unicodeScalars.starts(with: p.unicodeScalars)
                    : s.unicodeScalars.reversed().starts(with: p.unicodeScalars.reversed()) { return .bool(true) }
            }
            return .bool(false)
        case "split", "rsplit":
            let sep = a.get(0, "sep")
            let maxsplit = a.get(1, "maxsplit")?.integer ?? -1
            let parts: [String]
            if sep == nil || sep!.isNone {
                parts = splitWhitespace(s, maxsplit: maxsplit, fromRight: name == "rsplit")
            } else {
                let separator = sep!.description
                if separator.isEmpty { throw JinjaCallError(message: "empty separator") }
                parts = split(s, separator, maxsplit: maxsplit, fromRight: name == "rsplit")
            }
            return .array(parts.map { .string($0) })
        case "splitlines":
            var lines = s.components(separatedBy: "\n")
            if lines.last == "" { lines.removeLast() }
            return .array(lines.map { .string($0) })
        case "replace":
            return .string(try replace(s, try str(0, "old"), try str(1, "new"), count: a.get(2, "count")?.integer))
        case "find", "index", "rfind":
            let needle = Array(try str(0, "sub").unicodeScalars)
            let hay = Array(s.unicodeScalars)
            var found = -1
            if needle.count <= hay.count {
                let range = Array(0...(hay.count - needle.count))
                for i in (name == "rfind" ? range.reversed() : range) where Array(hay[i..<(i + needle.count)]) == needle {
                    found = i
                    break
                }
            }
            if found < 0 && name == "index" { throw JinjaCallError(message: "substring not found") }
            return .int(found)
        case "count":
            let needle = try str(0, "sub")
            if needle.isEmpty { return .int(s.unicodeScalars.count + 1) }
            return .int(split(s, needle, maxsplit: -1, fromRight: false).count - 1)
        case "join":
            guard let items = a.get(0, "iterable") else { throw JinjaCallError(message: "join() takes one argument") }
            let sequence = try JinjaFilters.sequence(items)
            try JinjaLimits.checkJoin(sequence, separator: s)
            return .string(sequence.map(\.description).joined(separator: s))
        case "format":
            return .string(try format(s, a))
        case "isdigit": return .bool(!s.isEmpty && s.unicodeScalars.allSatisfy { $0.properties.numericType == .decimal })
        case "isspace": return .bool(!s.isEmpty && s.unicodeScalars.allSatisfy(JinjaLexer.isSpace))
        case "isalpha": return .bool(!s.isEmpty && s.unicodeScalars.allSatisfy(\.properties.isAlphabetic))
        case "islower": return .bool(s.contains { $0.isLetter } && s == s.lowercased())
        case "isupper": return .bool(s.contains { $0.isLetter } && s == s.uppercased())
        default: throw JinjaCallError(message: "'str' object has no method '\(name)'")
        }
    }

    // MARK: Python string helpers (code-point based, as Python's str)

    static func strip(_ s: String, chars: JinjaValue?, left: Bool, right: Bool) -> String {
        var scalars = Array(s.unicodeScalars)[...]
        let set: Set<Unicode.Scalar>? = {
            if case let .string(c)? = chars { return Set(c.unicodeScalars) }
            return nil
        }()
        func strippable(_ u: Unicode.Scalar) -> Bool { set?.contains(u) ?? JinjaLexer.isSpace(u) }
        if left { while let f = scalars.first, strippable(f) { scalars.removeFirst() } }
        if right { while let l = scalars.last, strippable(l) { scalars.removeLast() } }
        return String(String.UnicodeScalarView(scalars))
    }

    static func capitalize(_ s: String) -> String {
        guard let first = s.unicodeScalars.first else { return s }
        return String(first).uppercased() + String(String.UnicodeScalarView(s.unicodeScalars.dropFirst())).lowercased()
    }

    /// Python's `str.title()`: a letter after a non-letter is upper-cased, other letters lower-cased.
    static func title(_ s: String) -> String {
        var out = ""
        var previousIsLetter = false
        for u in s.unicodeScalars {
            let isLetter = u.properties.isAlphabetic
            out += isLetter ? (previousIsLetter ? String(u).lowercased() : String(u).uppercased()) : String(u)
            previousIsLetter = isLetter
        }
        return out
    }

    /// jinja2's `title` filter (not str.title): split before runs of `-`, whitespace, `(`, `{`, `[`, `<`,
    /// then upper-case each piece's first character and lower-case the rest.
    static func titleFilter(_ s: String) -> String {
        func isSeparator(_ u: Unicode.Scalar) -> Bool { JinjaLexer.isSpace(u) || "-({[<".unicodeScalars.contains(u) }
        var out = ""
        var piece = String.UnicodeScalarView()
        var pieceIsSeparator: Bool?
        func flush() {
            guard let first = piece.first else { return }
            out += String(first).uppercased() + String(String.UnicodeScalarView(piece.dropFirst())).lowercased()
            piece = String.UnicodeScalarView()
        }
        for u in s.unicodeScalars {
            let sep = isSeparator(u)
            if sep != pieceIsSeparator { flush(); pieceIsSeparator = sep }
            piece.append(u)
        }
        flush()
        return out
    }

    static func replace(_ s: String, _ old: String, _ new: String, count: Int?) throws -> String {
        let limit = count.flatMap { $0 < 0 ? nil : $0 } ?? Int.max
        if new.utf8.count > old.utf8.count {
            // The result's size, checked before it is built: each replacement grows the string by the difference.
            let occurrences = min(limit, old.isEmpty ? s.unicodeScalars.count + 1 : split(s, old, maxsplit: -1, fromRight: false).count - 1)
            let growth = JinjaLimits.product(occurrences, new.utf8.count - old.utf8.count)
            try JinjaLimits.checkString(growth.map { $0 + s.utf8.count }, "replace")
        }
        if old.isEmpty {
            // Python inserts `new` before every code point and at the end, up to `count` times.
            var out = "", n = 0
            for u in s.unicodeScalars {
                if n < limit { out += new; n += 1 }
                out.unicodeScalars.append(u)
            }
            if n < limit { out += new }
            return out
        }
        let parts = split(s, old, maxsplit: limit == Int.max ? -1 : limit, fromRight: false)
        return parts.joined(separator: new)
    }

    static func split(_ s: String, _ sep: String, maxsplit: Int, fromRight: Bool) -> [String] {
        var hay = Array(s.unicodeScalars)
        var needle = Array(sep.unicodeScalars)
        if fromRight { hay.reverse(); needle.reverse() }
        var parts: [[Unicode.Scalar]] = []
        var current: [Unicode.Scalar] = []
        var i = 0
        while i < hay.count {
            if (maxsplit < 0 || parts.count < maxsplit), i + needle.count <= hay.count, Array(hay[i..<(i + needle.count)]) == needle {
                parts.append(current)
                current = []
                i += needle.count
            } else {
                current.append(hay[i])
                i += 1
            }
        }
        parts.append(current)
        if fromRight { parts = parts.reversed().map { $0.reversed() } }
        return parts.map { String(String.UnicodeScalarView($0)) }
    }

    static func splitWhitespace(_ s: String, maxsplit: Int, fromRight: Bool) -> [String] {
        var scalars = Array(s.unicodeScalars)
        if fromRight { scalars.reverse() }
        var parts: [[Unicode.Scalar]] = []
        var i = 0
        while i < scalars.count {
            while i < scalars.count, JinjaLexer.isSpace(scalars[i]) { i += 1 }
            if i >= scalars.count { break }
            if maxsplit >= 0 && parts.count == maxsplit {
                var rest = Array(scalars[i...])
                while let l = rest.last, JinjaLexer.isSpace(l) { rest.removeLast() }
                parts.append(rest)
                break
            }
            var word: [Unicode.Scalar] = []
            while i < scalars.count, !JinjaLexer.isSpace(scalars[i]) { word.append(scalars[i]); i += 1 }
            parts.append(word)
        }
        if fromRight { parts = parts.reversed().map { $0.reversed() } }
        return parts.map { String(String.UnicodeScalarView($0)) }
    }

    /// `str.format` with `{}`, `{0}` and `{name}` fields (no format specs).
    private static func format(_ s: String, _ a: JinjaFilters.Arguments) throws -> String {
        var out = ""
        var auto = 0
        var chars = Array(s)[...]
        while let c = chars.popFirst() {
            if c == "{" && chars.first == "{" { chars.removeFirst(); out.append("{"); continue }
            if c == "}" && chars.first == "}" { chars.removeFirst(); out.append("}"); continue }
            guard c == "{" else { out.append(c); continue }
            var field = ""
            while let d = chars.popFirst(), d != "}" { field.append(d) }
            if field.contains(":") || field.contains("!") { throw JinjaCallError(message: "str.format specs are not supported") }
            let value: JinjaValue?
            if field.isEmpty { value = a.positional.count > auto ? a.positional[auto] : nil; auto += 1 }
            else if let i = Int(field) { value = i < a.positional.count ? a.positional[i] : nil }
            else { value = a.keywords.first { $0.0 == field }?.1 }
            guard let value else { throw JinjaCallError(message: "str.format: no argument for field {\(field)}") }
            try JinjaLimits.checkString(out.utf8.count + JinjaLimits.textSize(value), "str.format")
            out += value.description
        }
        return out
    }
}
