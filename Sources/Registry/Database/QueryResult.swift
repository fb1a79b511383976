import CLibPQ
import Foundation

/// A value in a result could not be read as the requested type.
public struct SQLDecodingError: Error, CustomStringConvertible, Sendable {
    public let column: String
    public let row: Int
    public let expected: String
    public let value: String?
    public var description: String {
        "column '\(column)' row \(row): expected \(expected), got \(value.map { "'\($0.prefix(80))'" } ?? "NULL")"
    }
}

/// The rows of one statement, read in text format. Owns the libpq result and frees it on deinit.
public final class QueryResult: @unchecked Sendable {
    let handle: OpaquePointer
    public let rowCount: Int
    public let columnCount: Int
    /// Rows affected by INSERT/UPDATE/DELETE (PQcmdTuples), 0 for other statements.
    public let affectedRows: Int

    init(handle: OpaquePointer) {
        self.handle = handle
        rowCount = Int(PQntuples(handle))
        columnCount = Int(PQnfields(handle))
        affectedRows = Int(String(cString: PQcmdTuples(handle))) ?? 0
    }

    deinit { PQclear(handle) }

    public var columns: [String] { (0..<columnCount).map { String(cString: PQfname(handle, Int32($0))) } }
    public var isEmpty: Bool { rowCount == 0 }
    public subscript(row: Int) -> Row { Row(result: self, index: row) }
    public var rows: [Row] { (0..<rowCount).map { Row(result: self, index: $0) } }
    public var first: Row? { rowCount > 0 ? self[0] : nil }

    func columnIndex(_ name: String, row: Int) throws -> Int32 {
        let i = PQfnumber(handle, name)
        guard i >= 0 else { throw SQLDecodingError(column: name, row: row, expected: "a column of that name", value: nil) }
        return i
    }
}

/// One row of a `QueryResult`, read by column name.
public struct Row {
    let result: QueryResult
    public let index: Int

    public func isNull(_ column: String) throws -> Bool {
        PQgetisnull(result.handle, Int32(index), try result.columnIndex(column, row: index)) == 1
    }

    /// The raw text of the value, nil for NULL.
    public func optionalString(_ column: String) throws -> String? {
        let c = try result.columnIndex(column, row: index)
        if PQgetisnull(result.handle, Int32(index), c) == 1 { return nil }
        return String(cString: PQgetvalue(result.handle, Int32(index), c))
    }

    public func string(_ column: String) throws -> String {
        guard let s = try optionalString(column) else { throw err(column, "text", nil) }
        return s
    }

    public func optionalInt(_ column: String) throws -> Int? {
        guard let s = try optionalString(column) else { return nil }
        guard let v = Int(s) else { throw err(column, "an integer", s) }
        return v
    }

    public func int(_ column: String) throws -> Int {
        guard let v = try optionalInt(column) else { throw err(column, "an integer", nil) }
        return v
    }

    public func double(_ column: String) throws -> Double {
        let s = try string(column)
        guard let v = Double(s) else { throw err(column, "a number", s) }
        return v
    }

    public func bool(_ column: String) throws -> Bool {
        switch try string(column) {
        case "t": return true
        case "f": return false
        case let s: throw err(column, "a boolean", s)
        }
    }

    /// A `timestamptz` as PostgreSQL prints it (ISO 8601 with the session's time zone offset).
    public func timestamp(_ column: String) throws -> String { try string(column) }

    /// A `jsonb` value's text.
    public func json(_ column: String) throws -> Data { Data(try string(column).utf8) }

    public func decodeJSON<T: Decodable>(_ type: T.Type, _ column: String) throws -> T {
        let text = try string(column)
        do { return try JSONDecoder().decode(T.self, from: Data(text.utf8)) } catch {
            throw err(column, "JSON for \(T.self)", text)
        }
    }

    /// A `bytea` value. The server sends bytea in text results as `\x` followed by hex digits.
    public func bytes(_ column: String) throws -> [UInt8] {
        let c = try result.columnIndex(column, row: index)
        if PQgetisnull(result.handle, Int32(index), c) == 1 { throw err(column, "bytea", nil) }
        let n = Int(PQgetlength(result.handle, Int32(index), c))
        guard let p = PQgetvalue(result.handle, Int32(index), c) else { throw err(column, "bytea", nil) }
        return try p.withMemoryRebound(to: UInt8.self, capacity: n) { raw -> [UInt8] in
            guard n >= 2, raw[0] == UInt8(ascii: "\\"), raw[1] == UInt8(ascii: "x"), n % 2 == 0 else {
                throw err(column, "bytea in hex format", String(cString: p))
            }
            let count = (n - 2) / 2
            var out = [UInt8](repeating: 0, count: count)
            var bad = false
            out.withUnsafeMutableBufferPointer { o in
                for i in 0..<count {
                    let hi = Row.hexValue(raw[2 + 2 * i]), lo = Row.hexValue(raw[3 + 2 * i])
                    if hi > 15 || lo > 15 { bad = true; return }
                    o[i] = hi << 4 | lo
                }
            }
            if bad { throw err(column, "bytea hex digits", nil) }
            return out
        }
    }

    @inline(__always) static func hexValue(_ c: UInt8) -> UInt8 {
        switch c {
        case 48...57: return c - 48
        case 97...102: return c - 87
        case 65...70: return c - 55
        default: return 255
        }
    }

    private func err(_ column: String, _ expected: String, _ value: String?) -> SQLDecodingError {
        SQLDecodingError(column: column, row: index, expected: expected, value: value)
    }
}
