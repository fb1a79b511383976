import CLibPQ
import Foundation

/// One libpq connection. Statements are always parameterized (`$1`, `$2`, ...): no SQL is ever
/// built from user values. A connection is used by one thread at a time; share through
/// `ConnectionPool`.
public final class Connection: @unchecked Sendable {
    let handle: OpaquePointer
    /// Nesting depth of `withTransaction`: 0 outside, 1 in the outermost (BEGIN), more in savepoints.
    public private(set) var transactionDepth = 0

    /// Connects with a libpq connection string or URI (`postgresql://...` or `host=... dbname=...`).
    public init(_ conninfo: String) throws {
        guard let h = PQconnectdb(conninfo) else {
            throw PostgresError(sqlState: nil, message: "libpq could not allocate a connection")
        }
        guard PQstatus(h) == CONNECTION_OK else {
            let msg = String(cString: PQerrorMessage(h)).trimmingCharacters(in: .whitespacesAndNewlines)
            PQfinish(h)
            throw PostgresError(sqlState: "08001", message: "could not connect: \(msg)")
        }
        handle = h
        // Notices (e.g. "relation already exists, skipping") are not errors: keep them off stderr.
        PQsetNoticeProcessor(h, { _, _ in }, nil)
    }

    deinit { PQfinish(handle) }

    /// False once the server connection is lost.
    public var isHealthy: Bool { PQstatus(handle) == CONNECTION_OK }

    /// The server process serving this connection (pg_backend_pid()).
    public var backendPID: Int32 { PQbackendPID(handle) }

    /// Runs one statement with parameters. Text values are sent in text format, `.bytes` in
    /// binary format typed `bytea`; results come back in text format.
    @discardableResult
    public func execute(_ sql: String, _ params: [SQLValue] = []) throws -> QueryResult {
        let n = params.count
        var types = [Oid](repeating: 0, count: n)
        var lengths = [Int32](repeating: 0, count: n)
        var formats = [Int32](repeating: 0, count: n)
        // Owned copies of every parameter, alive until PQexecParams returns.
        var buffers: [UnsafeMutablePointer<CChar>?] = []
        buffers.reserveCapacity(n)
        defer { for b in buffers { b?.deallocate() } }
        for (i, p) in params.enumerated() {
            switch p {
            case .null:
                buffers.append(nil)
            case .text(let s):
                let utf8 = Array(s.utf8)
                let b = UnsafeMutablePointer<CChar>.allocate(capacity: utf8.count + 1)
                utf8.withUnsafeBufferPointer { src in
                    UnsafeMutableRawPointer(b).copyMemory(from: src.baseAddress!, byteCount: utf8.count)
                }
                b[utf8.count] = 0
                buffers.append(b)
                lengths[i] = Int32(utf8.count)
            case .bytes(let bytes):
                let b = UnsafeMutablePointer<CChar>.allocate(capacity: max(bytes.count, 1))
                bytes.withUnsafeBufferPointer { src in
                    if let base = src.baseAddress {
                        UnsafeMutableRawPointer(b).copyMemory(from: base, byteCount: bytes.count)
                    }
                }
                buffers.append(b)
                lengths[i] = Int32(bytes.count)
                formats[i] = 1
                types[i] = 17 // bytea's OID (pg_type.dat)
            }
        }
        let values: [UnsafePointer<CChar>?] = buffers.map { $0.map { UnsafePointer($0) } }
        let res = PQexecParams(handle, sql, Int32(n), types, values, lengths, formats, 0)
        return try check(res, sql: sql)
    }

    func check(_ res: OpaquePointer?, sql: String) throws -> QueryResult {
        guard let res else {
            throw PostgresError(sqlState: nil, message: libpqMessage(), statement: Connection.firstLine(sql))
        }
        switch PQresultStatus(res) {
        case PGRES_COMMAND_OK, PGRES_TUPLES_OK, PGRES_EMPTY_QUERY:
            return QueryResult(handle: res)
        default:
            func field(_ code: Character) -> String? {
                guard let p = PQresultErrorField(res, Int32(code.asciiValue!)) else { return nil }
                return String(cString: p)
            }
            // Field codes from postgres_ext.h: C sqlstate, M message, D detail, H hint, n constraint.
            let err = PostgresError(
                sqlState: field("C"),
                message: field("M") ?? libpqMessage(),
                detail: field("D"), hint: field("H"), constraint: field("n"),
                statement: Connection.firstLine(sql))
            PQclear(res)
            throw err
        }
    }

    func libpqMessage() -> String {
        String(cString: PQerrorMessage(handle)).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    static func firstLine(_ sql: String) -> String {
        let line = sql.split(separator: "\n", omittingEmptySubsequences: true).first.map(String.init) ?? sql
        return line.trimmingCharacters(in: .whitespaces)
    }

    /// Runs a script of several statements without parameters (migrations). Uses the simple
    /// query protocol, which accepts many statements in one string.
    public func executeScript(_ sql: String) throws {
        let res = PQexec(handle, sql)
        _ = try check(res, sql: sql)
    }

    /// Runs `body` in a transaction: BEGIN ... COMMIT, or ROLLBACK when it throws. Nested calls
    /// use savepoints, so a store function can be called inside a caller's transaction.
    public func withTransaction<T>(_ body: (Connection) throws -> T) throws -> T {
        let depth = transactionDepth
        try executeScript(depth == 0 ? "BEGIN" : "SAVEPOINT lora_sp_\(depth)")
        transactionDepth += 1
        do {
            let value = try body(self)
            transactionDepth -= 1
            try executeScript(depth == 0 ? "COMMIT" : "RELEASE SAVEPOINT lora_sp_\(depth)")
            return value
        } catch {
            transactionDepth -= 1
            if isHealthy {
                try? executeScript(depth == 0 ? "ROLLBACK" : "ROLLBACK TO SAVEPOINT lora_sp_\(depth)")
            }
            throw error
        }
    }

    /// Quotes an identifier (for the few statements that cannot take parameters: LISTEN,
    /// CREATE DATABASE). Uses libpq's own escaping.
    public func quoteIdentifier(_ name: String) throws -> String {
        guard let p = PQescapeIdentifier(handle, name, name.utf8.count) else {
            throw PostgresError(sqlState: nil, message: "cannot quote identifier: \(libpqMessage())")
        }
        defer { PQfreemem(p) }
        return String(cString: p)
    }
}
