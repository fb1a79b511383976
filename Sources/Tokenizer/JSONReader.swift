import Foundation

/// A JSON object. An object whose values are all integers (a vocabulary) keeps them typed.
final class JSONObject {
    let ints: [String: Int]?
    private let storage: [String: Any]?
    init(ints: [String: Int]) { self.ints = ints; storage = nil }
    init(fields: [String: Any]) { ints = nil; storage = fields }
    var fields: [String: Any] { storage ?? ints!.mapValues { $0 as Any } }
}

/// A JSON array. Arrays of strings, and arrays of arrays of strings (merges), keep them typed.
final class JSONArray {
    let strings: [String]?
    let stringArrays: [[String]]?
    private let storage: [Any]?
    init(strings: [String]) { self.strings = strings; stringArrays = nil; storage = nil }
    init(stringArrays: [[String]]) { strings = nil; self.stringArrays = stringArrays; storage = nil }
    init(items: [Any]) { strings = nil; stringArrays = nil; storage = items }
    var items: [Any] {
        if let storage { return storage }
        if let strings { return strings }
        return stringArrays!.map { JSONArray(strings: $0) }
    }
}

/// A small JSON parser. Scalars come out as `String`, `Int`, `Double`, `Bool` and `NSNull`;
/// containers as `JSONObject` / `JSONArray` boxes. It exists for speed: casting an `Any` to
/// `[String: Any]` or `[Any]` walks the container (and JSONSerialization's Foundation containers
/// bridge element by element on Linux), which for a 49k-token tokenizer.json costs far more than
/// parsing it; a class box casts in constant time, and typed vocabularies and merges need no casts.
struct JSONReader {
    struct Failure: Error, CustomStringConvertible {
        let offset: Int
        let reason: String
        var description: String { "\(reason) at byte \(offset)" }
    }

    static func parse(_ data: Data) throws -> Any {
        try data.withUnsafeBytes { raw -> Any in
            var r = JSONReader(bytes: raw.bindMemory(to: UInt8.self))
            r.skipWhitespace()
            let v = try r.value(depth: 0)
            r.skipWhitespace()
            guard r.pos == r.bytes.count else { throw Failure(offset: r.pos, reason: "trailing characters") }
            return v
        }
    }

    private let bytes: UnsafeBufferPointer<UInt8>
    private var pos = 0
    private static let maxDepth = 512

    private init(bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

    private func fail(_ reason: String) -> Failure { Failure(offset: pos, reason: reason) }

    private mutating func skipWhitespace() {
        while pos < bytes.count {
            switch bytes[pos] {
            case 0x20, 0x0A, 0x0D, 0x09: pos += 1
            default: return
            }
        }
    }

    private mutating func value(depth: Int) throws -> Any {
        guard depth < JSONReader.maxDepth else { throw fail("nesting deeper than \(JSONReader.maxDepth) levels") }
        guard pos < bytes.count else { throw fail("unexpected end of input") }
        switch bytes[pos] {
        case UInt8(ascii: "{"): return try object(depth: depth)
        case UInt8(ascii: "["): return try array(depth: depth)
        case UInt8(ascii: "\""): return try string()
        case UInt8(ascii: "t"): try literal("true"); return true
        case UInt8(ascii: "f"): try literal("false"); return false
        case UInt8(ascii: "n"): try literal("null"); return NSNull()
        default: return try number().boxed
        }
    }

    private mutating func literal(_ word: String) throws {
        for b in word.utf8 {
            guard pos < bytes.count, bytes[pos] == b else { throw fail("invalid literal") }
            pos += 1
        }
    }

    private mutating func peekIsNumber() -> Bool {
        guard pos < bytes.count else { return false }
        let c = bytes[pos]
        return c == UInt8(ascii: "-") || (c >= 0x30 && c <= 0x39)
    }

    private mutating func object(depth: Int) throws -> JSONObject {
        // Checked here and in `array`, not only in `value`: arrays of arrays recurse into `array` directly.
        guard depth < JSONReader.maxDepth else { throw fail("nesting deeper than \(JSONReader.maxDepth) levels") }
        pos += 1
        var ints: [String: Int] = [:]
        var mixed: [String: Any]?
        skipWhitespace()
        if pos < bytes.count, bytes[pos] == UInt8(ascii: "}") { pos += 1; return JSONObject(fields: [:]) }
        while true {
            skipWhitespace()
            guard pos < bytes.count, bytes[pos] == UInt8(ascii: "\"") else { throw fail("expected a string key") }
            let key = try string()
            skipWhitespace()
            guard pos < bytes.count, bytes[pos] == UInt8(ascii: ":") else { throw fail("expected ':'") }
            pos += 1
            skipWhitespace()
            if peekIsNumber() {
                let n = try number()
                if mixed == nil, case let .int(i) = n {
                    ints[key] = i
                } else {
                    if mixed == nil { mixed = ints.mapValues { $0 as Any } }
                    mixed![key] = n.boxed
                }
            } else {
                if mixed == nil { mixed = ints.mapValues { $0 as Any } }
                mixed![key] = try value(depth: depth + 1)
            }
            skipWhitespace()
            guard pos < bytes.count else { throw fail("unexpected end of input") }
            if bytes[pos] == UInt8(ascii: ",") { pos += 1; continue }
            if bytes[pos] == UInt8(ascii: "}") {
                pos += 1
                return mixed.map { JSONObject(fields: $0) } ?? JSONObject(ints: ints)
            }
            throw fail("expected ',' or '}'")
        }
    }

    private enum ArrayKind { case strings, stringArrays, mixed }

    private mutating func array(depth: Int) throws -> JSONArray {
        guard depth < JSONReader.maxDepth else { throw fail("nesting deeper than \(JSONReader.maxDepth) levels") }
        pos += 1
        var kind: ArrayKind?
        var strings: [String] = []
        var stringArrays: [[String]] = []
        var mixed: [Any] = []
        skipWhitespace()
        if pos < bytes.count, bytes[pos] == UInt8(ascii: "]") { pos += 1; return JSONArray(items: []) }
        while true {
            skipWhitespace()
            guard pos < bytes.count else { throw fail("unexpected end of input") }
            let c = bytes[pos]
            if kind == nil { kind = c == UInt8(ascii: "\"") ? .strings : c == UInt8(ascii: "[") ? .stringArrays : .mixed }
            switch kind! {
            case .strings where c == UInt8(ascii: "\""):
                strings.append(try string())
            case .stringArrays where c == UInt8(ascii: "["):
                let sub = try array(depth: depth + 1)
                if let s = sub.strings {
                    stringArrays.append(s)
                } else {
                    mixed = stringArrays.map { JSONArray(strings: $0) }
                    mixed.append(sub)
                    kind = .mixed
                }
            case .strings:
                mixed = strings
                kind = .mixed
                mixed.append(try value(depth: depth + 1))
            case .stringArrays:
                mixed = stringArrays.map { JSONArray(strings: $0) }
                kind = .mixed
                mixed.append(try value(depth: depth + 1))
            case .mixed:
                mixed.append(try value(depth: depth + 1))
            }
            skipWhitespace()
            guard pos < bytes.count else { throw fail("unexpected end of input") }
            if bytes[pos] == UInt8(ascii: ",") { pos += 1; continue }
            if bytes[pos] == UInt8(ascii: "]") {
                pos += 1
                switch kind! {
                case .strings: return JSONArray(strings: strings)
                case .stringArrays: return JSONArray(stringArrays: stringArrays)
                case .mixed: return JSONArray(items: mixed)
                }
            }
            throw fail("expected ',' or ']'")
        }
    }

    private mutating func string() throws -> String {
        pos += 1
        let start = pos
        // Fast path: no escapes.
        while pos < bytes.count {
            let b = bytes[pos]
            if b == UInt8(ascii: "\"") {
                let s = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<pos]), as: UTF8.self)
                pos += 1
                return s
            }
            if b == UInt8(ascii: "\\") { break }
            if b < 0x20 { throw fail("control character in string") }
            pos += 1
        }
        var buf = [UInt8](UnsafeBufferPointer(rebasing: bytes[start..<pos]))
        while pos < bytes.count {
            let b = bytes[pos]
            if b == UInt8(ascii: "\"") {
                pos += 1
                return String(decoding: buf, as: UTF8.self)
            }
            if b < 0x20 { throw fail("control character in string") }
            if b != UInt8(ascii: "\\") { buf.append(b); pos += 1; continue }
            pos += 1
            guard pos < bytes.count else { break }
            let e = bytes[pos]
            pos += 1
            switch e {
            case UInt8(ascii: "\""): buf.append(0x22)
            case UInt8(ascii: "\\"): buf.append(0x5C)
            case UInt8(ascii: "/"): buf.append(0x2F)
            case UInt8(ascii: "b"): buf.append(0x08)
            case UInt8(ascii: "f"): buf.append(0x0C)
            case UInt8(ascii: "n"): buf.append(0x0A)
            case UInt8(ascii: "r"): buf.append(0x0D)
            case UInt8(ascii: "t"): buf.append(0x09)
            case UInt8(ascii: "u"):
                var code = try hex4()
                if (0xD800..<0xDC00).contains(code), pos + 6 <= bytes.count,
                   bytes[pos] == UInt8(ascii: "\\"), bytes[pos + 1] == UInt8(ascii: "u") {
                    let save = pos
                    pos += 2
                    let low = try hex4()
                    if (0xDC00..<0xE000).contains(low) {
                        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                    } else {
                        pos = save
                    }
                }
                // A lone surrogate becomes U+FFFD, as Python's and Rust's decoders do when they must.
                let scalar = Unicode.Scalar(code) ?? "\u{FFFD}"
                UTF8.encode(scalar) { buf.append($0) }
            default:
                throw fail("invalid escape")
            }
        }
        throw fail("unterminated string")
    }

    private mutating func hex4() throws -> UInt32 {
        guard pos + 4 <= bytes.count else { throw fail("truncated \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = bytes[pos]
            let d: UInt32
            switch c {
            case 0x30...0x39: d = UInt32(c - 0x30)
            case 0x41...0x46: d = UInt32(c - 0x41 + 10)
            case 0x61...0x66: d = UInt32(c - 0x61 + 10)
            default: throw fail("invalid \\u escape")
            }
            v = v << 4 | d
            pos += 1
        }
        return v
    }

    private enum Number {
        case int(Int), double(Double)
        var boxed: Any {
            switch self {
            case let .int(i): return i
            case let .double(d): return d
            }
        }
    }

    private mutating func number() throws -> Number {
        let start = pos
        var isInteger = true
        if pos < bytes.count, bytes[pos] == UInt8(ascii: "-") { pos += 1 }
        while pos < bytes.count {
            let c = bytes[pos]
            if c >= 0x30 && c <= 0x39 { pos += 1; continue }
            if c == UInt8(ascii: ".") || c == UInt8(ascii: "e") || c == UInt8(ascii: "E")
                || c == UInt8(ascii: "+") || c == UInt8(ascii: "-") {
                isInteger = false
                pos += 1
                continue
            }
            break
        }
        guard pos > start else { throw fail("unexpected character") }
        let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<pos]), as: UTF8.self)
        if isInteger, let i = Int(text) { return .int(i) }
        guard let d = Double(text) else { pos = start; throw fail("invalid number") }
        return .double(d)
    }
}
