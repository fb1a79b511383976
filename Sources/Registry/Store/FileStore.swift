import Foundation

/// An uploaded file as the API shows it (the bytes are read separately).
public struct FileRecord: Sendable, Equatable {
    public let id: Int
    public let filename: String
    public let purpose: String
    public let size: Int
    public let sha256: String
    public let records: Int
    public let createdBy: String
    public let createdAt: String
}

/// Uploaded files' SQL (`files`, migration 0004).
public struct FileStore: Sendable {
    public init() {}

    static let columns = """
        id, filename, purpose, size, sha256, records, created_by, \(RegistryStore.iso("created_at")) AS created_at
        """

    static func record(_ r: Row) throws -> FileRecord {
        FileRecord(id: try r.int("id"), filename: try r.string("filename"), purpose: try r.string("purpose"),
                   size: try r.int("size"), sha256: try r.string("sha256"), records: try r.int("records"),
                   createdBy: try r.string("created_by"), createdAt: try r.string("created_at"))
    }

    public func insert(filename: String, purpose: String, bytes: [UInt8], sha256: String, records: Int, actor: String,
                       on conn: Connection) throws -> FileRecord {
        let r = try conn.execute("""
            INSERT INTO files (filename, purpose, bytes, size, sha256, records, created_by)
            VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING \(Self.columns)
            """, [.text(filename), .text(purpose), .bytes(bytes), .int(bytes.count), .text(sha256), .int(records), .text(actor)])
        return try Self.record(r[0])
    }

    public func file(id: Int, on conn: Connection) throws -> FileRecord? {
        try conn.execute("SELECT \(Self.columns) FROM files WHERE id = $1", [.int(id)]).first.map(Self.record)
    }

    /// Files newest first, those with an id below `before` (the cursor of the previous page).
    public func files(before: Int?, limit: Int, purpose: String?, on conn: Connection) throws -> [FileRecord] {
        try conn.execute("""
            SELECT \(Self.columns) FROM files WHERE ($1::bigint IS NULL OR id < $1) AND ($2::text IS NULL OR purpose = $2)
            ORDER BY id DESC LIMIT $3
            """, [.int(before), .string(purpose), .int(limit)]).rows.map(Self.record)
    }

    public func bytes(id: Int, on conn: Connection) throws -> [UInt8]? {
        try conn.execute("SELECT bytes FROM files WHERE id = $1", [.int(id)]).first?.bytes("bytes")
    }

    /// Deletes a file unless a queued or running job uses it (the job rows are locked first, so a
    /// job cannot start using it meanwhile). Returns the jobs in the way, empty when deleted.
    public func delete(id: Int, on conn: Connection) throws -> [Int] {
        try conn.withTransaction { c in
            guard try c.execute("SELECT id FROM files WHERE id = $1 FOR UPDATE", [.int(id)]).first != nil else {
                throw RegistryError.notFound(kind: "file", name: "file-\(id)")
            }
            let users = try c.execute("""
                SELECT id FROM jobs WHERE (training_file_id = $1 OR validation_file_id = $1) AND state IN ('queued', 'running')
                ORDER BY id FOR SHARE
                """, [.int(id)]).rows.map { try $0.int("id") }
            if !users.isEmpty { return users }
            try c.execute("DELETE FROM files WHERE id = $1", [.int(id)])
            return []
        }
    }
}
