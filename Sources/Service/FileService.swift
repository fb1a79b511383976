import Foundation
import Model
import Registry

/// Uploaded training and validation files: every JSONL record is checked as `lora train` checks
/// it before the bytes are stored (with their sha256) in PostgreSQL.
public final class FileService: @unchecked Sendable {
    public let registry: RegistryService
    public let store = FileStore()
    public static let purposes: Set<String> = ["fine-tune"]

    public init(registry: RegistryService) { self.registry = registry }

    /// Validates and stores a file; a bad record throws `ModelError.badInput` naming the file name and line.
    public func upload(filename: String, purpose: String, bytes: [UInt8], actor: String) throws -> FileRecord {
        let records = try JSONLReader.parseTextRecords(Data(bytes), path: filename)
        let sha = ArtifactStore.sha256(Data(bytes))
        return try registry.pool.withConnection {
            try store.insert(filename: filename, purpose: purpose, bytes: bytes, sha256: sha, records: records.count, actor: actor, on: $0)
        }
    }

    public func file(_ id: Int) throws -> FileRecord {
        guard let f = try registry.pool.withConnection({ try store.file(id: id, on: $0) }) else {
            throw RegistryError.notFound(kind: "file", name: "file-\(id)")
        }
        return f
    }

    public func files(before: Int?, limit: Int, purpose: String?) throws -> [FileRecord] {
        try registry.pool.withConnection { try store.files(before: before, limit: limit, purpose: purpose, on: $0) }
    }

    public func bytes(_ id: Int) throws -> [UInt8] {
        guard let b = try registry.pool.withConnection({ try store.bytes(id: id, on: $0) }) else {
            throw RegistryError.notFound(kind: "file", name: "file-\(id)")
        }
        return b
    }

    /// Deletes a file; refused (conflict) while a queued or running job uses it.
    public func delete(_ id: Int) throws {
        let users = try registry.pool.withConnection { try store.delete(id: id, on: $0) }
        if !users.isEmpty {
            throw RegistryError.conflict("file-\(id) is used by \(users.map { "ftjob-\($0)" }.joined(separator: ", ")), "
                + "which \(users.count == 1 ? "is" : "are") queued or running; cancel \(users.count == 1 ? "it" : "them") or wait")
        }
    }
}
