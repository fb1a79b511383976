import Foundation

/// A statement parameter. Text parameters go to the server in text format (the server parses
/// them by the column's type); bytes go in binary format as `bytea`, never escaped into SQL.
public enum SQLValue: Sendable, Equatable {
    case null
    case text(String)
    case bytes([UInt8])

    public static func int(_ v: Int) -> SQLValue { .text(String(v)) }
    public static func int(_ v: Int?) -> SQLValue { v.map { .text(String($0)) } ?? .null }
    public static func bool(_ v: Bool) -> SQLValue { .text(v ? "true" : "false") }
    public static func double(_ v: Double) -> SQLValue { .text(String(v)) }
    public static func string(_ v: String?) -> SQLValue { v.map { .text($0) } ?? .null }
    public static func data(_ v: Data) -> SQLValue { .bytes([UInt8](v)) }

    /// A JSON document (for `jsonb` columns) from an encodable value, keys sorted so equal
    /// values give equal text.
    public static func json<T: Encodable>(_ v: T) throws -> SQLValue {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        return .text(String(decoding: try enc.encode(v), as: UTF8.self))
    }
}

extension SQLValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByNilLiteral,
    ExpressibleByBooleanLiteral {
    public init(stringLiteral value: String) { self = .text(value) }
    public init(integerLiteral value: Int) { self = .text(String(value)) }
    public init(nilLiteral: ()) { self = .null }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
}
