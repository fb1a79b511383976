import Foundation
import Registry

/// What the HTTP API adds to the registry's use cases: alias moves recorded with the API key's
/// name, adapters downloaded and imported as the registry's tar.
extension RegistryService {
    /// `promote`, with the acting API key's name recorded in the alias history (`api_key`).
    @discardableResult
    public func promote(task: String, version: Int, alias: String, actor: String, reason: String, apiKey: String?) throws -> AliasMove? {
        try pool.withConnection { c in
            try c.withTransaction { c in
                try Self.setAPIKey(apiKey, on: c)
                return try store.promote(task: task, version: version, alias: alias, actor: actor, reason: reason, on: c)
            }
        }
    }

    /// `rollback`, with the acting API key's name recorded in the alias history.
    @discardableResult
    public func rollback(task: String, alias: String, actor: String, reason: String, apiKey: String?) throws -> AliasMove {
        try pool.withConnection { c in
            try c.withTransaction { c in
                try Self.setAPIKey(apiKey, on: c)
                return try store.rollback(task: task, alias: alias, actor: actor, reason: reason, on: c)
            }
        }
    }

    /// `archive`, with the acting key's name recorded on the `latest` move it may cause.
    @discardableResult
    public func archive(task: String, version: Int, actor: String, apiKey: String?) throws -> VersionRecord {
        try pool.withConnection { c in
            try c.withTransaction { c in
                try Self.setAPIKey(apiKey, on: c)
                return try store.archive(task: task, version: version, actor: actor, on: c)
            }
        }
    }

    /// For the rest of the caller's transaction, alias_history rows record `apiKey` (migration 0004's default).
    static func setAPIKey(_ apiKey: String?, on conn: Connection) throws {
        try conn.execute("SELECT set_config('lora.api_key', $1, true)", [.text(apiKey ?? "")])
    }

    /// The API key names recorded on the task's alias moves, by history id.
    public func historyKeys(task: String) throws -> [Int: String] {
        try pool.withConnection { c in
            var out: [Int: String] = [:]
            for r in try c.execute("""
                SELECT h.id, h.api_key FROM alias_history h JOIN tasks t ON t.id = h.task_id WHERE t.name = $1 AND h.api_key IS NOT NULL
                """, [.text(task)]).rows {
                out[try r.int("id")] = try r.string("api_key")
            }
            return out
        }
    }

    /// The stored tar of `TASK@N` (verified against its sha256), as a local file.
    public func adapterArchive(task: String, version: Int) throws -> (version: VersionRecord, file: URL) {
        try pool.withConnection { c in
            let v = try store.version(task: task, number: version, on: c)
            return (v, try store.artifacts.fetch(v.sha256, on: c).url)
        }
    }

    /// Imports a tar of PEFT files at its root (what `adapterArchive` gives) as the task's next version.
    public func importArchive(task: String, archive: URL, base: String?, actor: String) throws -> VersionRecord {
        try Names.validateTask(task)
        let dir = configuration.cacheDirectory.appendingPathComponent("tmp")
            .appendingPathComponent("upload-\(getpid())-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        try AdapterArchive.extract(archive, to: dir)
        return try importAdapter(task: task, directory: dir, base: base, actor: actor)
    }
}
