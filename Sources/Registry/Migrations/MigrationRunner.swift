import Foundation
import Logging

/// Applies migrations in order, each in its own transaction, under a session advisory lock so
/// concurrent processes starting at once apply each migration exactly once. What was applied
/// is recorded in `schema_migrations` (version, name, checksum, applied_at).
public struct MigrationRunner {
    /// pg_advisory_lock key, fixed forever: the ASCII bytes of "LoraMigr".
    public static let lockKey: Int64 = 0x4C6F_7261_4D69_6772 // "LoraMigr" in ASCII

    public let migrations: [Migration]
    public let logger: Logger

    public init(migrations: [Migration], logger: Logger = Logger(label: "lora.registry.migrations")) {
        self.migrations = migrations
        self.logger = logger
    }

    /// Applies what is missing; returns the versions applied now (empty when up to date).
    @discardableResult
    public func apply(on conn: Connection) throws -> [Int] {
        _ = try Migration.validated(migrations.map { ($0.fileName, $0.sql) })
        try conn.execute("SELECT pg_advisory_lock($1)", [.text(String(Self.lockKey))])
        defer { _ = try? conn.execute("SELECT pg_advisory_unlock($1)", [.text(String(Self.lockKey))]) }
        try conn.execute("""
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version     integer PRIMARY KEY,
                name        text NOT NULL,
                checksum    text NOT NULL,
                applied_at  timestamptz NOT NULL DEFAULT now())
            """)
        var applied: [Int: (name: String, checksum: String)] = [:]
        for row in try conn.execute("SELECT version, name, checksum FROM schema_migrations ORDER BY version").rows {
            applied[try row.int("version")] = (try row.string("name"), try row.string("checksum"))
        }
        let known = Dictionary(uniqueKeysWithValues: migrations.map { ($0.version, $0) })
        for (v, a) in applied.sorted(by: { $0.key < $1.key }) {
            guard let m = known[v] else { throw MigrationError.unknownApplied(version: v, name: a.name) }
            if m.checksum != a.checksum { throw MigrationError.edited(version: v, name: m.name) }
        }
        var done: [Int] = []
        for m in migrations where applied[m.version] == nil {
            try conn.withTransaction { c in
                try c.executeScript(m.sql)
                try c.execute("INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                              [.int(m.version), .text(m.name), .text(m.checksum)])
            }
            logger.info("applied migration \(m.fileName)")
            done.append(m.version)
        }
        return done
    }

    /// Versions recorded in the database (empty when the table does not exist yet).
    public static func appliedVersions(on conn: Connection) throws -> [Int] {
        let exists = try conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL AS e")
        guard try exists[0].bool("e") else { return [] }
        return try conn.execute("SELECT version FROM schema_migrations ORDER BY version").rows.map { try $0.int("version") }
    }
}
