import Foundation
import Logging

/// The registry's SQL. Every function takes the connection to run on, so callers compose them
/// in their own transactions (the job daemon registers a version in the same transaction that
/// finishes its job). Functions that must be atomic open a transaction themselves; inside a
/// caller's transaction that becomes a savepoint.
public struct RegistryStore: Sendable {
    public let artifacts: ArtifactStore
    /// The media type recorded for adapter archives.
    public static let adapterMediaType = "peft-adapter-tar"

    public init(artifacts: ArtifactStore) {
        self.artifacts = artifacts
    }

    /// Timestamps leave the database as ISO 8601 UTC text.
    static func iso(_ column: String) -> String {
        "to_char(\(column) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
    }

    // MARK: - Base models

    public func insertBaseModel(name: String, source: String, sha256: String, files: [BaseModelRecord.File],
                                architecture: String, quantization: String, config: JSONValue?, actor: String,
                                on conn: Connection) throws -> BaseModelRecord {
        try Names.validateBaseModel(name)
        do {
            try conn.execute("""
                INSERT INTO base_models (name, source, sha256, files, architecture, quantization, config, created_by)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                """, [.text(name), .text(source), .text(sha256), try .json(files), .text(architecture),
                      .text(quantization), try config.map { try SQLValue.json($0) } ?? .null, .text(actor)])
        } catch let e as PostgresError where e.isUniqueViolation {
            throw RegistryError.alreadyExists(kind: "base model", name: name)
        }
        guard let b = try baseModel(named: name, on: conn) else { throw RegistryError.notFound(kind: "base model", name: name) }
        return b
    }

    static let baseModelColumns = """
        name, source, sha256, files, architecture, quantization, config, \(iso("created_at")) AS created_at
        """

    public func baseModel(named name: String, on conn: Connection) throws -> BaseModelRecord? {
        try conn.execute("SELECT \(Self.baseModelColumns) FROM base_models WHERE name = $1", [.text(name)])
            .first.map(Self.baseModel)
    }

    public func baseModels(on conn: Connection) throws -> [BaseModelRecord] {
        try conn.execute("SELECT \(Self.baseModelColumns) FROM base_models ORDER BY name").rows.map(Self.baseModel)
    }

    static func baseModel(_ r: Row) throws -> BaseModelRecord {
        BaseModelRecord(name: try r.string("name"), source: try r.string("source"), sha256: try r.string("sha256"),
                        files: try r.decodeJSON([BaseModelRecord.File].self, "files"),
                        architecture: try r.string("architecture"), quantization: try r.string("quantization"),
                        config: try r.isNull("config") ? nil : try r.decodeJSON(JSONValue.self, "config"),
                        createdAt: try r.string("created_at"))
    }

    // MARK: - Tasks

    static let taskQuery = """
        SELECT t.name, \(iso("t.created_at")) AS created_at,
               (SELECT count(*) FROM adapter_versions v WHERE v.task_id = t.id) AS version_count,
               COALESCE((SELECT jsonb_object_agg(a.name, a.version) FROM aliases a WHERE a.task_id = t.id), '{}') AS aliases
        FROM tasks t
        """

    public func tasks(on conn: Connection) throws -> [TaskRecord] {
        try conn.execute(Self.taskQuery + " ORDER BY t.name").rows.map(Self.task)
    }

    public func task(named name: String, on conn: Connection) throws -> TaskRecord? {
        try conn.execute(Self.taskQuery + " WHERE t.name = $1", [.text(name)]).first.map(Self.task)
    }

    static func task(_ r: Row) throws -> TaskRecord {
        TaskRecord(name: try r.string("name"), aliases: try r.decodeJSON([String: Int].self, "aliases"),
                   versionCount: try r.int("version_count"), createdAt: try r.string("created_at"))
    }

    /// Locks the task's row for the rest of the transaction (serializes version numbering and
    /// alias moves of one task across processes) and returns its id.
    func lockTask(_ name: String, on conn: Connection) throws -> Int {
        guard let r = try conn.execute("SELECT id FROM tasks WHERE name = $1 FOR UPDATE", [.text(name)]).first else {
            throw RegistryError.notFound(kind: "task", name: name)
        }
        return try r.int("id")
    }

    // MARK: - Versions

    static let versionQuery = """
        SELECT t.name AS task, v.version, b.name AS base, v.artifact_sha256, a.size, v.metrics, v.lora_config,
               v.hyperparameters, v.job_id, v.data_sha256, v.source, v.tags, v.archived_at IS NOT NULL AS archived,
               v.created_by, \(iso("v.created_at")) AS created_at,
               COALESCE((SELECT jsonb_agg(al.name ORDER BY al.name) FROM aliases al
                         WHERE al.task_id = v.task_id AND al.version = v.version), '[]') AS aliases
        FROM adapter_versions v
        JOIN tasks t ON t.id = v.task_id
        JOIN base_models b ON b.id = v.base_model_id
        JOIN artifacts a ON a.sha256 = v.artifact_sha256
        """

    static func version(_ r: Row) throws -> VersionRecord {
        VersionRecord(task: try r.string("task"), version: try r.int("version"), base: try r.string("base"),
                      sha256: try r.string("artifact_sha256"), size: try r.int("size"),
                      metrics: try r.decodeJSON([String: Double].self, "metrics"),
                      loraConfig: try r.decodeJSON(JSONValue.self, "lora_config"),
                      hyperparameters: try r.decodeJSON(JSONValue.self, "hyperparameters"),
                      jobID: try r.optionalInt("job_id"), dataSHA256: try r.optionalString("data_sha256"),
                      source: try r.optionalString("source"), tags: try r.decodeJSON([String: String].self, "tags"),
                      aliases: try r.decodeJSON([String].self, "aliases"), archived: try r.bool("archived"),
                      createdBy: try r.string("created_by"), createdAt: try r.string("created_at"))
    }

    public func versions(task: String, includeArchived: Bool = false, on conn: Connection) throws -> [VersionRecord] {
        guard try self.task(named: task, on: conn) != nil else { throw RegistryError.notFound(kind: "task", name: task) }
        return try conn.execute(Self.versionQuery + " WHERE t.name = $1 AND ($2 OR v.archived_at IS NULL) ORDER BY v.version",
                                [.text(task), .bool(includeArchived)]).rows.map(Self.version)
    }

    public func version(task: String, number: Int, on conn: Connection) throws -> VersionRecord {
        guard let r = try conn.execute(Self.versionQuery + " WHERE t.name = $1 AND v.version = $2",
                                       [.text(task), .int(number)]).first else {
            if try self.task(named: task, on: conn) == nil { throw RegistryError.notFound(kind: "task", name: task) }
            throw RegistryError.notFound(kind: "version", name: "\(task)@\(number)")
        }
        return try Self.version(r)
    }

    /// The version a reference names. `TASK` alone follows `production` when set, else `latest`.
    public func resolve(_ ref: AdapterReference, on conn: Connection) throws -> VersionRecord {
        switch ref.selector {
        case .version(let n):
            return try version(task: ref.task, number: n, on: conn)
        case .alias(let a):
            guard let n = try aliasTarget(task: ref.task, alias: a, on: conn) else {
                throw RegistryError.notFound(kind: "alias", name: "\(ref.task)@\(a)")
            }
            return try version(task: ref.task, number: n, on: conn)
        case .defaultAlias:
            for a in [Names.production, Names.latest] {
                if let n = try aliasTarget(task: ref.task, alias: a, on: conn) {
                    return try version(task: ref.task, number: n, on: conn)
                }
            }
            throw RegistryError.notFound(kind: "version of task", name: ref.task)
        }
    }

    /// Registers the next version of `task` (created if new): numbers it under the task's row
    /// lock, stores the artifact's bytes, and moves `latest`, all in one transaction.
    public func registerVersion(task: String, base: String, archive: URL, sha256: String, size: Int,
                                loraConfig: JSONValue, metrics: [String: Double], tags: [String: String],
                                lineage: Lineage, source: String?, actor: String,
                                on conn: Connection) throws -> VersionRecord {
        try Names.validateTask(task)
        return try conn.withTransaction { c in
            try c.execute("INSERT INTO tasks (name) VALUES ($1) ON CONFLICT (name) DO NOTHING", [.text(task)])
            let taskID = try lockTask(task, on: c)
            guard let b = try c.execute("SELECT id FROM base_models WHERE name = $1", [.text(base)]).first else {
                throw RegistryError.notFound(kind: "base model", name: base)
            }
            let next = try c.execute("SELECT COALESCE(max(version), 0) + 1 AS n FROM adapter_versions WHERE task_id = $1",
                                     [.int(taskID)])[0].int("n")
            try artifacts.put(archive, sha256: sha256, size: size, mediaType: Self.adapterMediaType, on: c)
            TestPausePoint.reach("register.after-chunks")
            try c.execute("""
                INSERT INTO adapter_versions (task_id, version, base_model_id, lora_config, metrics, artifact_sha256,
                                              job_id, data_sha256, hyperparameters, source, created_by, tags)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
                """, [.int(taskID), .int(next), .int(try b.int("id")), try .json(loraConfig), try .json(metrics),
                      .text(sha256), .int(lineage.jobID), .string(lineage.dataSHA256), try .json(lineage.hyperparameters),
                      .string(source), .text(actor), try .json(tags)])
            try setAlias(taskID: taskID, task: task, alias: Names.latest, to: next, action: .auto, actor: actor,
                         reason: "new version", on: c)
            let registered = try version(task: task, number: next, on: c)
            TestPausePoint.reach("register.before-commit")
            return registered
        }
    }

    // MARK: - Tags and archive

    public func setTag(task: String, version: Int, key: String, value: String, on conn: Connection) throws -> VersionRecord {
        guard !key.isEmpty else { throw RegistryError.invalidName(kind: "tag", name: key, rule: "a non-empty key") }
        let r = try conn.execute("""
            UPDATE adapter_versions v SET tags = v.tags || jsonb_build_object($3::text, $4::text)
            FROM tasks t WHERE t.id = v.task_id AND t.name = $1 AND v.version = $2
            """, [.text(task), .int(version), .text(key), .text(value)])
        if r.affectedRows == 0 { _ = try self.version(task: task, number: version, on: conn) }
        return try self.version(task: task, number: version, on: conn)
    }

    public func clearTag(task: String, version: Int, key: String, on conn: Connection) throws -> VersionRecord {
        let r = try conn.execute("""
            UPDATE adapter_versions v SET tags = v.tags - $3::text
            FROM tasks t WHERE t.id = v.task_id AND t.name = $1 AND v.version = $2
            """, [.text(task), .int(version), .text(key)])
        if r.affectedRows == 0 { _ = try self.version(task: task, number: version, on: conn) }
        return try self.version(task: task, number: version, on: conn)
    }

    /// Archives a version. Refused while an alias other than `latest` points at it; `latest`
    /// then moves to the newest version still live (or disappears when none is left).
    public func archive(task: String, version: Int, actor: String, on conn: Connection) throws -> VersionRecord {
        try conn.withTransaction { c in
            let taskID = try lockTask(task, on: c)
            let v = try self.version(task: task, number: version, on: c)
            if v.archived { throw RegistryError.versionArchived(task: task, version: version) }
            let pinned = v.aliases.filter { $0 != Names.latest }
            if !pinned.isEmpty { throw RegistryError.versionHasAliases(task: task, version: version, aliases: pinned) }
            try c.execute("UPDATE adapter_versions SET archived_at = now() WHERE task_id = $1 AND version = $2",
                          [.int(taskID), .int(version)])
            if v.aliases.contains(Names.latest) {
                let newest = try c.execute("""
                    SELECT max(version) AS n FROM adapter_versions WHERE task_id = $1 AND archived_at IS NULL
                    """, [.int(taskID)])[0].optionalInt("n")
                try setAlias(taskID: taskID, task: task, alias: Names.latest, to: newest, action: .auto, actor: actor,
                             reason: "version \(version) archived", on: c)
            }
            return try self.version(task: task, number: version, on: c)
        }
    }
}
