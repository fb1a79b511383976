import Foundation

/// Jinja filters (`value | name(args)`) with jinja2/filters.py semantics; `tojson` is transformers'
/// override (json.dumps with ensure_ascii=False, no HTML escaping; chat_template_utils.py).
enum JinjaFilters {
    static let names: Set<String> = [
        "trim", "length", "count", "upper", "lower", "title", "capitalize", "tojson", "default", "d", "first", "last",
        "join", "replace", "string", "int", "float", "abs", "list", "items", "dictsort", "selectattr", "rejectattr",
        "select", "reject", "map", "unique", "sort", "reverse", "max", "min", "sum", "round", "indent", "safe",
    ]

    struct Arguments {
        let positional: [JinjaValue]
        let keywords: [(String, JinjaValue)]
        /// The argument named `name` at position `index` (after the filtered value), if given.
        func get(_ index: Int, _ name: String) -> JinjaValue? {
            if let kw = keywords.first(where: { $0.0 == name }) { return kw.1 }
            return index < positional.count ? positional[index] : nil
        }
    }

    static func apply(_ name: String, _ value: JinjaValue, _ args: [JinjaValue], _ kwargs: [(String, JinjaValue)],
                      _ interpreter: JinjaInterpreter) throws -> JinjaValue {
        let a = Arguments(positional: args, keywords: kwargs)
        switch name {
        case "trim":
            return .string(JinjaMethods.strip(value.description, chars: a.get(0, "chars"), left: true, right: true))
        case "length", "count":
            return .int(try length(value))
        case "upper": return .string(value.description.uppercased())
        case "lower": return .string(value.description.lowercased())
        case "title": return .string(JinjaMethods.titleFilter(value.description))
        case "capitalize": return .string(JinjaMethods.capitalize(value.description))
        case "string":
            try JinjaLimits.checkText(value, "the string filter")
            return .string(value.description)
        case "safe": return value
        case "tojson":
            // Upper estimate before encoding: \uXXXX escapes grow a character up to 6 times, and an indent
            // of w adds up to w bytes per element of the text.
            let indentWidth = a.get(1, "indent").map { $0.integer ?? $0.description.utf8.count } ?? 0
            let factor = (a.get(0, "ensure_ascii")?.truthy ?? false) ? 6 : 1
            try JinjaLimits.checkString(JinjaLimits.product(JinjaLimits.textSize(value) * factor, 1 + max(0, indentWidth)), "tojson")
            return .string(try JinjaJSON.encode(value, ensureASCII: a.get(0, "ensure_ascii")?.truthy ?? false,
                                                indent: a.get(1, "indent"), separators: a.get(2, "separators"),
                                                sortKeys: a.get(3, "sort_keys")?.truthy ?? false))
        case "default", "d":
            let fallback = a.get(0, "default_value") ?? .string("")
            let boolean = a.get(1, "boolean")?.truthy ?? false
            return value.isUndefined || (boolean && !value.truthy) ? fallback : value
        case "first":
            return try sequence(value).first ?? .undefined("first of an empty sequence")
        case "last":
            return try sequence(value).last ?? .undefined("last of an empty sequence")
        case "join":
            var items = try sequence(value)
            if let attribute = a.get(1, "attribute") { items = try items.map { try attributeOf($0, attribute) } }
            try JinjaLimits.checkJoin(items, separator: a.get(0, "d")?.description ?? "")
            return .string(items.map(\.description).joined(separator: a.get(0, "d")?.description ?? ""))
        case "replace":
            guard let old = a.get(0, "old"), let new = a.get(1, "new") else { throw JinjaCallError(message: "replace needs old and new") }
            return .string(try JinjaMethods.replace(value.description, old.description, new.description, count: a.get(2, "count")?.integer))
        case "int": return toInt(value, a.get(0, "default") ?? .int(0))
        case "float": return toFloat(value, a.get(0, "default") ?? .double(0))
        case "abs":
            if let i = value.integer { return .int(abs(i)) }
            if case let .double(d) = value { return .double(abs(d)) }
            throw JinjaCallError(message: "bad operand type for abs(): '\(value.typeName)'")
        case "list": return .array(try sequence(value))
        case "items":
            if value.isUndefined { return .array([]) }
            guard case let .object(o) = value else { throw JinjaCallError(message: "items filter needs a mapping, got \(value.typeName)") }
            return .array(o.pairs.map { .tuple([.string($0.0), $0.1]) })
        case "dictsort":
            guard case let .object(o) = value else { throw JinjaCallError(message: "dictsort needs a mapping, got \(value.typeName)") }
            let caseSensitive = a.get(0, "case_sensitive")?.truthy ?? false
            let byValue = a.get(1, "by")?.description == "value"
            let pairs: [JinjaValue] = o.pairs.map { .tuple([.string($0.0), $0.1]) }
            return .array(try sorted(pairs, reverse: a.get(2, "reverse")?.truthy ?? false, caseSensitive: caseSensitive) {
                $0.sequence![byValue ? 1 : 0]
            })
        case "selectattr", "rejectattr":
            guard let attribute = args.first else { throw JinjaCallError(message: "\(name) needs an attribute name") }
            return .array(try sequence(value).filter { item in
                let v = try attributeOf(item, attribute)
                let ok = args.count > 1 ? try JinjaTests.apply(args[1].description, v, Array(args.dropFirst(2))) : v.truthy
                return ok == (name == "selectattr")
            })
        case "select", "reject":
            return .array(try sequence(value).filter { item in
                let ok = args.isEmpty ? item.truthy : try JinjaTests.apply(args[0].description, item, Array(args.dropFirst()))
                return ok == (name == "select")
            })
        case "map":
            let items = try sequence(value)
            if let attribute = a.keywords.first(where: { $0.0 == "attribute" })?.1 {
                let fallback = a.keywords.first(where: { $0.0 == "default" })?.1
                return .array(try items.map { item in
                    let v = try attributeOf(item, attribute)
                    if v.isUndefined, let fallback { return fallback }
                    return v
                })
            }
            guard let filterName = args.first?.description, names.contains(filterName) else {
                throw JinjaCallError(message: "map needs attribute= or a known filter name")
            }
            return .array(try items.map { try apply(filterName, $0, Array(args.dropFirst()), [], interpreter) })
        case "unique":
            let caseSensitive = a.get(0, "case_sensitive")?.truthy ?? false
            var seen: [JinjaValue] = []
            var out: [JinjaValue] = []
            for item in try sequence(value) {
                var key = try a.get(1, "attribute").map { try attributeOf(item, $0) } ?? item
                if !caseSensitive, case let .string(s) = key { key = .string(s.lowercased()) }
                if !seen.contains(key) { seen.append(key); out.append(item) }
            }
            return .array(out)
        case "sort":
            let attribute = a.get(2, "attribute")
            return .array(try sorted(try sequence(value), reverse: a.get(0, "reverse")?.truthy ?? false,
                                     caseSensitive: a.get(1, "case_sensitive")?.truthy ?? false) {
                item in try attribute.map { try attributeOf(item, $0) } ?? item
            })
        case "reverse":
            if case let .string(s) = value { return .string(String(String.UnicodeScalarView(s.unicodeScalars.reversed()))) }
            return .array(try sequence(value).reversed())
        case "max", "min":
            let attribute = a.get(1, "attribute")
            let items = try sorted(try sequence(value), reverse: false, caseSensitive: a.get(0, "case_sensitive")?.truthy ?? false) {
                item in try attribute.map { try attributeOf(item, $0) } ?? item
            }
            return (name == "max" ? items.last : items.first) ?? .undefined("\(name) of an empty sequence")
        case "sum":
            var total = a.get(1, "start") ?? .int(0)
            for item in try sequence(value) {
                let v = try a.get(0, "attribute").map { try attributeOf(item, $0) } ?? item
                total = try rethrow { try JinjaOperators.binary("+", total, v, SourceLocation(line: 0, column: 0)) }
            }
            return total
        case "round":
            guard let x = value.number else { throw JinjaCallError(message: "round needs a number") }
            let precision = a.get(0, "precision")?.integer ?? 0
            let scale = pow(10.0, Double(precision))
            switch a.get(1, "method")?.description ?? "common" {
            case "ceil": return .double((x * scale).rounded(.up) / scale)
            case "floor": return .double((x * scale).rounded(.down) / scale)
            default: return .double((x * scale).rounded(.toNearestOrAwayFromZero) / scale)
            }
        case "indent":
            return .string(try indent(value.description, width: a.get(0, "width"), first: a.get(1, "first")?.truthy ?? false,
                                  blank: a.get(2, "blank")?.truthy ?? false))
        default:
            throw JinjaCallError(message: "unknown filter '\(name)'")
        }
    }

    private static func rethrow<T>(_ body: () throws -> T) throws -> T {
        do { return try body() } catch let e as ChatTemplateError { throw JinjaCallError(message: e.message) }
    }

    static func length(_ v: JinjaValue) throws -> Int {
        switch v {
        case .undefined: return 0
        case let .string(s): return s.unicodeScalars.count
        case let .array(a), let .tuple(a): return a.count
        case let .object(o): return o.count
        case let .namespace(ns): return ns.attributes.count
        default: throw JinjaCallError(message: "object of type '\(v.typeName)' has no len()")
        }
    }

    /// Python `list(value)`.
    static func sequence(_ v: JinjaValue) throws -> [JinjaValue] {
        switch v {
        case .undefined: return []
        case let .array(a), let .tuple(a): return a
        case let .object(o): return o.keys.map { .string($0) }
        case let .string(s): return s.unicodeScalars.map { .string(String($0)) }
        default: throw JinjaCallError(message: "'\(v.typeName)' object is not iterable")
        }
    }

    /// jinja2's `make_attrgetter`: a dotted path of keys or integer indices.
    static func attributeOf(_ item: JinjaValue, _ path: JinjaValue) throws -> JinjaValue {
        let here = SourceLocation(line: 0, column: 0)
        if let i = path.integer { return try rethrow { try JinjaOperators.item(item, .int(i), here) } }
        var v = item
        for part in path.description.split(separator: ".", omittingEmptySubsequences: false) {
            let key: JinjaValue = Int(part).map { .int($0) } ?? .string(String(part))
            v = try rethrow { try JinjaOperators.item(v, key, here) }
        }
        return v
    }

    private static func sorted(_ items: [JinjaValue], reverse: Bool, caseSensitive: Bool,
                               key: (JinjaValue) throws -> JinjaValue) throws -> [JinjaValue] {
        var keyed = try items.map { item -> (JinjaValue, JinjaValue) in
            var k = try key(item)
            if !caseSensitive, case let .string(s) = k { k = .string(s.lowercased()) }
            return (k, item)
        }
        var failure: Error?
        // Python's sort is stable; reverse=True keeps equal items in their original order too.
        let indexed = keyed.enumerated().map { ($0.offset, $0.element) }
        let ordered = indexed.sorted { x, y in
            do {
                let o = try JinjaOperators.ordering(x.1.0, y.1.0, "<", SourceLocation(line: 0, column: 0)) ?? 0
                if o == 0 { return x.0 < y.0 }
                return reverse ? o > 0 : o < 0
            } catch {
                failure = error
                return false
            }
        }
        if let failure { throw JinjaCallError(message: (failure as? ChatTemplateError)?.message ?? "\(failure)") }
        keyed = ordered.map(\.1)
        return keyed.map(\.1)
    }

    private static func toInt(_ v: JinjaValue, _ fallback: JinjaValue) -> JinjaValue {
        switch v {
        case let .int(i): return .int(i)
        case let .bool(b): return .int(b ? 1 : 0)
        case let .double(d): return d.isFinite && abs(d) < 9e18 ? .int(Int(d)) : fallback
        case let .string(s):
            let t = s.trimmingCharacters(in: .whitespaces).replacingOccurrences(of: "_", with: "")
            if let i = Int(t) { return .int(i) }
            if let d = Double(t), d.isFinite, abs(d) < 9e18 { return .int(Int(d)) }
            return fallback
        default: return fallback
        }
    }

    private static func toFloat(_ v: JinjaValue, _ fallback: JinjaValue) -> JinjaValue {
        if let n = v.number { return .double(n) }
        if case let .string(s) = v, let d = Double(s.trimmingCharacters(in: .whitespaces)) { return .double(d) }
        return fallback
    }

    private static func indent(_ s: String, width: JinjaValue?, first: Bool, blank: Bool) throws -> String {
        var padBytes = 4
        if case let .string(w)? = width { padBytes = w.utf8.count } else if let n = width?.integer { padBytes = max(0, n) }
        var lineCount = 1
        for b in s.utf8 where b == UInt8(ascii: "\n") { lineCount += 1 }
        try JinjaLimits.checkString(JinjaLimits.product(padBytes, lineCount).map { $0 + s.utf8.count }, "indent")
        let pad: String
        if case let .string(w)? = width { pad = w } else { pad = String(repeating: " ", count: padBytes) }
        var lines = s.components(separatedBy: "\n")
        // jinja2's indent: later lines get the pad unless empty (or always with blank=True); first=True pads line 1.
        for i in lines.indices.dropFirst() where blank || !lines[i].isEmpty { lines[i] = pad + lines[i] }
        return (first ? pad : "") + lines.joined(separator: "\n")
    }
}
