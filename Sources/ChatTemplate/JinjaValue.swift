/// A value inside a Jinja template, with Python's semantics (what transformers' Jinja sees after
/// converting the chat to plain dicts, lists and strings).
public enum JinjaValue: Sendable {
    /// A name the template reads but nobody defined: falsy, renders as "", iterates as empty.
    case undefined(String)
    case none
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case array([JinjaValue])
    /// A Python tuple (from `dict.items()`, `(a, b)` literals): like an array, rendered with parentheses.
    case tuple([JinjaValue])
    case object(JinjaObject)
    /// A `namespace(...)` object: the only value whose attributes `{% set ns.x = ... %}` may assign.
    case namespace(JinjaNamespace)
    /// A macro, global function or bound method.
    case function(JinjaFunction)

    public static let undefinedValue = JinjaValue.undefined("")

    /// Builds a value from JSON-like Swift values (String, Bool, Int, Double, arrays, dictionaries, nil/NSNull).
    public init(any value: Any?) {
        switch value {
        case nil: self = .none
        case let v as JinjaValue: self = v
        case let s as String: self = .string(s)
        case let b as Bool: self = .bool(b)
        case let i as Int: self = .int(i)
        case let d as Double: self = .double(d)
        case let a as [Any?]: self = .array(a.map { JinjaValue(any: $0) })
        case let a as [Any]: self = .array(a.map { JinjaValue(any: $0) })
        case let d as [String: Any]:
            var o = JinjaObject()
            for k in d.keys.sorted() { o[k] = JinjaValue(any: d[k]) }
            self = .object(o)
        default: self = .none
        }
    }
}

/// An insertion-ordered dictionary with string keys (a Python dict as templates use it).
public struct JinjaObject: Sendable, Equatable {
    public private(set) var keys: [String] = []
    public private(set) var storage: [String: JinjaValue] = [:]

    public init() {}

    public init(_ pairs: [(String, JinjaValue)]) {
        for (k, v) in pairs { self[k] = v }
    }

    public subscript(key: String) -> JinjaValue? {
        get { storage[key] }
        set {
            if let newValue {
                if storage.updateValue(newValue, forKey: key) == nil { keys.append(key) }
            } else if storage.removeValue(forKey: key) != nil {
                keys.removeAll { $0 == key }
            }
        }
    }

    public var count: Int { keys.count }
    public var pairs: [(String, JinjaValue)] { keys.map { ($0, storage[$0]!) } }
}

/// Reference semantics: a namespace assigned inside a loop body is seen after the loop.
public final class JinjaNamespace: @unchecked Sendable {
    public var attributes: JinjaObject
    public init(_ attributes: JinjaObject = JinjaObject()) { self.attributes = attributes }
}

/// A callable value: positional and keyword arguments in, a value out.
public struct JinjaFunction: @unchecked Sendable {
    public let name: String
    public let call: ([JinjaValue], [(String, JinjaValue)]) throws -> JinjaValue
    public init(name: String, call: @escaping ([JinjaValue], [(String, JinjaValue)]) throws -> JinjaValue) {
        self.name = name
        self.call = call
    }
}

extension JinjaValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral,
    ExpressibleByFloatLiteral, ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral {
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int) { self = .int(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(floatLiteral value: Double) { self = .double(value) }
    public init(arrayLiteral elements: JinjaValue...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JinjaValue)...) { self = .object(JinjaObject(elements)) }
}

extension JinjaValue {
    public var isUndefined: Bool { if case .undefined = self { return true } else { return false } }
    public var isNone: Bool { if case .none = self { return true } else { return false } }

    /// Python truthiness.
    public var truthy: Bool {
        switch self {
        case .undefined, .none: return false
        case let .bool(b): return b
        case let .int(i): return i != 0
        case let .double(d): return d != 0
        case let .string(s): return !s.isEmpty
        case let .array(a), let .tuple(a): return !a.isEmpty
        case let .object(o): return o.count > 0
        case .namespace, .function: return true
        }
    }

    /// The elements of a list or tuple.
    var sequence: [JinjaValue]? {
        switch self {
        case let .array(a), let .tuple(a): return a
        default: return nil
        }
    }

    /// Python's type name, for error messages.
    var typeName: String {
        switch self {
        case .undefined: return "Undefined"
        case .none: return "NoneType"
        case .bool: return "bool"
        case .int: return "int"
        case .double: return "float"
        case .string: return "str"
        case .array: return "list"
        case .tuple: return "tuple"
        case .object: return "dict"
        case .namespace: return "Namespace"
        case .function: return "function"
        }
    }

    /// A numeric view (bool counts as int, as in Python).
    var number: Double? {
        switch self {
        case let .int(i): return Double(i)
        case let .double(d): return d
        case let .bool(b): return b ? 1 : 0
        default: return nil
        }
    }

    var integer: Int? {
        switch self {
        case let .int(i): return i
        case let .bool(b): return b ? 1 : 0
        default: return nil
        }
    }
}

// MARK: Python equality and rendering

extension JinjaValue: Equatable {
    /// Python `==`: 1 == 1.0 == True, lists and dicts compare element-wise, Undefined equals only Undefined.
    public static func == (a: JinjaValue, b: JinjaValue) -> Bool {
        switch (a, b) {
        case (.undefined, .undefined), (.none, .none): return true
        case let (.string(x), .string(y)): return x == y
        case let (.array(x), .array(y)), let (.tuple(x), .tuple(y)): return x == y
        case let (.object(x), .object(y)): return x == y
        case let (.namespace(x), .namespace(y)): return x === y
        case (.function, .function): return false
        default:
            if let x = a.number, let y = b.number { return x == y }
            return false
        }
    }
}

extension JinjaValue: CustomStringConvertible {
    /// Python `str(value)`: what `{{ value }}` renders.
    public var description: String {
        switch self {
        case .undefined: return ""
        case let .string(s): return s
        default: return repr
        }
    }

    /// Python `repr(value)`: how values render inside lists and dicts.
    public var repr: String {
        switch self {
        case .undefined: return ""
        case .none: return "None"
        case let .bool(b): return b ? "True" : "False"
        case let .int(i): return String(i)
        case let .double(d): return JinjaValue.pythonFloat(d)
        case let .string(s): return JinjaValue.pythonStringRepr(s)
        case let .array(a): return "[" + a.map(\.repr).joined(separator: ", ") + "]"
        case let .tuple(a): return a.count == 1 ? "(" + a[0].repr + ",)" : "(" + a.map(\.repr).joined(separator: ", ") + ")"
        case let .object(o): return "{" + o.pairs.map { JinjaValue.pythonStringRepr($0.0) + ": " + $0.1.repr }.joined(separator: ", ") + "}"
        case let .namespace(n): return "<Namespace " + JinjaValue.object(n.attributes).repr + ">"
        case let .function(f): return "<function " + f.name + ">"
        }
    }

    /// Python's `repr(float)`; Swift's shortest round-trip description uses the same digits and exponent form.
    static func pythonFloat(_ d: Double) -> String {
        if d.isNaN { return "nan" }
        if d.isInfinite { return d < 0 ? "-inf" : "inf" }
        return d.description
    }

    /// Python's `repr(str)`: single quotes unless the string holds a single quote and no double quote.
    static func pythonStringRepr(_ s: String) -> String {
        let quote: Character = (s.contains("'") && !s.contains("\"")) ? "\"" : "'"
        var out = String(quote)
        for u in s.unicodeScalars {
            switch u {
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if Character(u) == quote { out += "\\" + String(quote) }
                else if u.value < 0x20 || u.value == 0x7f { out += "\\x" + hex(u.value, 2) }
                else { out.unicodeScalars.append(u) }
            }
        }
        out.append(quote)
        return out
    }

    static func hex(_ v: UInt32, _ width: Int) -> String {
        let s = String(v, radix: 16)
        return String(repeating: "0", count: max(0, width - s.count)) + s
    }
}
