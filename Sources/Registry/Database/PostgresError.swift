/// An error reported by PostgreSQL or by libpq, with the server's SQLSTATE when there is one.
///
/// SQLSTATE codes are PostgreSQL's (Appendix A of its manual): 23505 unique_violation,
/// 23503 foreign_key_violation, 23514 check_violation, 40001 serialization_failure,
/// 42P04 duplicate_database, 57P01 admin_shutdown, 08xxx connection exceptions.
public struct PostgresError: Error, CustomStringConvertible, Sendable {
    /// Five-character SQLSTATE, or nil when the error happened in libpq (no server answer).
    public let sqlState: String?
    public let message: String
    public let detail: String?
    public let hint: String?
    /// The violated constraint's name, for integrity errors (23xxx).
    public let constraint: String?
    /// The first line of the statement that failed (never its parameter values).
    public let statement: String?

    public init(sqlState: String?, message: String, detail: String? = nil, hint: String? = nil,
                constraint: String? = nil, statement: String? = nil) {
        self.sqlState = sqlState
        self.message = message
        self.detail = detail
        self.hint = hint
        self.constraint = constraint
        self.statement = statement
    }

    public var isUniqueViolation: Bool { sqlState == "23505" }
    public var isForeignKeyViolation: Bool { sqlState == "23503" }
    public var isCheckViolation: Bool { sqlState == "23514" }
    /// True for errors that mean the connection is gone (class 08, or the server shutting down).
    public var isConnectionFailure: Bool {
        guard let s = sqlState else { return true }
        return s.hasPrefix("08") || s == "57P01" || s == "57P02" || s == "57P03"
    }

    public var description: String {
        var s = "PostgreSQL error"
        if let sqlState { s += " \(sqlState)" }
        s += ": \(message)"
        if let constraint { s += " (constraint \(constraint))" }
        if let detail { s += "; detail: \(detail)" }
        if let hint { s += "; hint: \(hint)" }
        if let statement { s += "; in: \(statement)" }
        return s
    }
}
