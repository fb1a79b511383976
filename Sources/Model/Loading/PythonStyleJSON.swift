import Foundation

/// JSON text the way Python's `json.dumps(obj, indent=2, sort_keys=True)` spells it, as transformers writes
/// config.json: floats keep their fraction (`6.0`, `1e-06`: transformers refuses an integer
/// `llm_int8_threshold`), integers and booleans stay what they are, keys are sorted, non-ASCII is written
/// as UTF-8. JSONSerialization on Linux writes 6.0 as `6`, hence this.
enum PythonStyleJSON {
    static func data(_ value: Any) throws -> Data {
        var out = ""
        try write(value, indent: 0, into: &out)
        out += "\n"
        return Data(out.utf8)
    }

    private static func write(_ value: Any, indent: Int, into out: inout String) throws {
        let pad = String(repeating: " ", count: indent + 2), close = String(repeating: " ", count: indent)
        switch value {
        case is NSNull:
            out += "null"
        case let b as Bool where !(value is NSNumber):
            out += b ? "true" : "false"
        case let i as Int where !(value is NSNumber):
            out += String(i)
        case let d as Double where !(value is NSNumber):
            out += try double(d)
        case let n as NSNumber:
            switch String(cString: n.objCType) {
            case "c", "B": out += n.boolValue ? "true" : "false"
            case "f", "d": out += try double(n.doubleValue)
            default: out += n.stringValue
            }
        case let s as String:
            out += string(s)
        case let list as [Any]:
            if list.isEmpty { out += "[]"; return }
            out += "[\n"
            for (i, item) in list.enumerated() {
                out += pad
                try write(item, indent: indent + 2, into: &out)
                out += i + 1 < list.count ? ",\n" : "\n"
            }
            out += close + "]"
        case let dict as [String: Any]:
            if dict.isEmpty { out += "{}"; return }
            out += "{\n"
            let keys = dict.keys.sorted()
            for (i, k) in keys.enumerated() {
                out += pad + string(k) + ": "
                try write(dict[k]!, indent: indent + 2, into: &out)
                out += i + 1 < keys.count ? ",\n" : "\n"
            }
            out += close + "}"
        default:
            throw ModelError.invalidArgument("cannot write \(type(of: value)) as JSON")
        }
    }

    /// Python's float repr (shortest round trip, always with a fraction or exponent).
    private static func double(_ d: Double) throws -> String {
        guard d.isFinite else { throw ModelError.invalidArgument("cannot write \(d) as JSON") }
        return d.description
    }

    private static func string(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where u.value < 0x20: out += String(format: "\\u%04x", u.value)
            default: out.unicodeScalars.append(u)
            }
        }
        return out + "\""
    }
}
