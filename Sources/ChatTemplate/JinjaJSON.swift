/// Python's `json.dumps` as transformers' `tojson` filter calls it (chat_template_utils.py):
/// ensure_ascii (default False there), indent, separators, sort_keys.
enum JinjaJSON {
    static func encode(_ v: JinjaValue, ensureASCII: Bool, indent: JinjaValue?, separators: JinjaValue?, sortKeys: Bool) throws -> String {
        var pad: String?
        switch indent {
        case let .int(n)?: pad = String(repeating: " ", count: max(0, n))
        case let .string(s)?: pad = s
        default: pad = nil
        }
        // json.dumps: separators default to (", ", ": "), or (",", ": ") when indent is given.
        var itemSeparator = pad == nil ? ", " : ","
        var keySeparator = ": "
        if let seps = separators?.sequence, seps.count == 2 {
            itemSeparator = seps[0].description
            keySeparator = seps[1].description
        }
        var out = ""
        try write(v, &out, level: 0, pad: pad, itemSeparator: itemSeparator, keySeparator: keySeparator,
                  sortKeys: sortKeys, ensureASCII: ensureASCII)
        return out
    }

    private static func write(_ v: JinjaValue, _ out: inout String, level: Int, pad: String?, itemSeparator: String,
                              keySeparator: String, sortKeys: Bool, ensureASCII: Bool) throws {
        func newline(_ depth: Int) {
            if let pad { out += "\n" + String(repeating: pad, count: depth) }
        }
        switch v {
        case .none: out += "null"
        case let .bool(b): out += b ? "true" : "false"
        case let .int(i): out += String(i)
        case let .double(d):
            if d.isNaN { out += "NaN" } else if d.isInfinite { out += d < 0 ? "-Infinity" : "Infinity" } else { out += JinjaValue.pythonFloat(d) }
        case let .string(s): out += quote(s, ensureASCII: ensureASCII)
        case let .array(items), let .tuple(items):
            if items.isEmpty { out += "[]"; return }
            out += "["
            for (i, item) in items.enumerated() {
                if i > 0 { out += itemSeparator }
                newline(level + 1)
                try write(item, &out, level: level + 1, pad: pad, itemSeparator: itemSeparator, keySeparator: keySeparator,
                          sortKeys: sortKeys, ensureASCII: ensureASCII)
            }
            newline(level)
            out += "]"
        case .object, .namespace:
            var o: JinjaObject
            if case let .object(x) = v { o = x } else if case let .namespace(ns) = v { o = ns.attributes } else { o = JinjaObject() }
            if o.count == 0 { out += "{}"; return }
            let keys = sortKeys ? o.keys.sorted { Array($0.unicodeScalars.map(\.value)).lexicographicallyPrecedes(Array($1.unicodeScalars.map(\.value))) } : o.keys
            out += "{"
            for (i, key) in keys.enumerated() {
                if i > 0 { out += itemSeparator }
                newline(level + 1)
                out += quote(key, ensureASCII: ensureASCII) + keySeparator
                try write(o[key]!, &out, level: level + 1, pad: pad, itemSeparator: itemSeparator, keySeparator: keySeparator,
                          sortKeys: sortKeys, ensureASCII: ensureASCII)
            }
            newline(level)
            out += "}"
        case .undefined, .function:
            throw JinjaCallError(message: "Object of type \(v.typeName) is not JSON serializable")
        }
    }

    static func quote(_ s: String, ensureASCII: Bool) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            default:
                if u.value < 0x20 {
                    out += "\\u" + JinjaValue.hex(u.value, 4)
                } else if ensureASCII && u.value > 0x7e {
                    for unit in String(u).utf16 { out += "\\u" + JinjaValue.hex(UInt32(unit), 4) }
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        return out + "\""
    }
}
