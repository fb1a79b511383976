import Foundation

/// Reads a request's JSON object field by field, with every error naming the field and the value,
/// and remembers which fields were read so anything left over is refused rather than ignored.
struct FieldReader {
    private let fields: [String: JSON]
    /// The path of this object in the request (`messages[2]`), prefixed to field names in errors.
    let path: String
    private(set) var read: Set<String> = []

    init(_ value: JSON, path: String = "") throws {
        guard case let .object(pairs) = value else {
            if path.isEmpty {
                throw APIError.badRequest("The request body must be a JSON object, got \(value.typeName)", param: nil)
            }
            throw APIError.invalid(path, value, expected: "an object")
        }
        var fields: [String: JSON] = [:]
        for (k, v) in pairs { fields[k] = v }
        self.fields = fields
        self.path = path
    }

    func name(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    /// The field's value; nil when it is missing or null (OpenAI treats an explicit null as absent).
    mutating func value(_ key: String) -> JSON? {
        read.insert(key)
        guard let v = fields[key], v != .null else { return nil }
        return v
    }

    mutating func string(_ key: String) throws -> String? {
        guard let v = value(key) else { return nil }
        guard case let .string(s) = v else { throw APIError.invalid(name(key), v, expected: "a string") }
        return s
    }

    mutating func requiredString(_ key: String) throws -> String {
        guard let s = try string(key) else { throw APIError.missing(name(key), expected: "a string") }
        return s
    }

    mutating func bool(_ key: String) throws -> Bool? {
        guard let v = value(key) else { return nil }
        guard case let .bool(b) = v else { throw APIError.invalid(name(key), v, expected: "a boolean") }
        return b
    }

    mutating func int(_ key: String, in range: ClosedRange<Int64>, expected: String) throws -> Int64? {
        guard let v = value(key) else { return nil }
        guard case let .int(i) = v, range.contains(i) else { throw APIError.invalid(name(key), v, expected: expected) }
        return i
    }

    mutating func number(_ key: String, accept: (Double) -> Bool, expected: String) throws -> Double? {
        guard let v = value(key) else { return nil }
        let d: Double
        switch v {
        case let .int(i): d = Double(i)
        case let .double(x): d = x
        default: throw APIError.invalid(name(key), v, expected: expected)
        }
        guard d.isFinite, accept(d) else { throw APIError.invalid(name(key), v, expected: expected) }
        return d
    }

    /// Refuses a parameter this server does not implement unless its value changes nothing
    /// (`n: 1`, `echo: false`, `presence_penalty: 0`, ...).
    mutating func unsupported(_ key: String, neutral: (JSON) -> Bool, _ why: String) throws {
        guard let v = value(key) else { return }
        if !neutral(v) { throw APIError.unsupported(name(key), v, why) }
    }

    /// Every field not read so far is an error (OpenAI's "Unrecognized request argument").
    func rejectUnread() throws {
        if let extra = fields.keys.sorted().first(where: { !read.contains($0) }) {
            throw APIError.badRequest("Unrecognized request argument supplied: \(name(extra))", param: name(extra),
                                      code: "unknown_parameter")
        }
    }
}

/// Values of refused parameters that change nothing, so a client sending its defaults still works.
enum Neutral {
    static func int(_ n: Int64) -> (JSON) -> Bool { { $0 == .int(n) } }
    static let zero: (JSON) -> Bool = { $0 == .int(0) || $0 == .double(0) }
    static let one: (JSON) -> Bool = { $0 == .int(1) || $0 == .double(1) }
    static let isFalse: (JSON) -> Bool = { $0 == .bool(false) }
    static let emptyObject: (JSON) -> Bool = { $0 == .object([]) }
    static let emptyArray: (JSON) -> Bool = { $0 == .array([]) }
    static let emptyString: (JSON) -> Bool = { $0 == .string("") }
    static func string(_ s: String) -> (JSON) -> Bool { { $0 == .string(s) } }
    static let textFormat: (JSON) -> Bool = { $0 == .object([("type", .string("text"))]) }
    static let textModality: (JSON) -> Bool = { $0 == .array([.string("text")]) }
    static let anyBool: (JSON) -> Bool = { if case .bool = $0 { return true } else { return false } }
}
