import Foundation

/// What a server needs to answer a request with a version: its number, artifact, base and state,
/// or why the reference names nothing.
public struct ServingResolution: Sendable, Equatable {
    public enum Outcome: Sendable, Equatable {
        case version(number: Int, sha256: String, size: Int, base: String, archived: Bool)
        case unknownTask
        /// `TASK@N` with no version N.
        case unknownVersion(Int)
        /// `TASK@ALIAS` with no such alias, or `TASK` with neither `production` nor `latest`.
        case unknownAlias(String)
    }

    public let reference: AdapterReference
    public let outcome: Outcome
}

/// A task a server can answer for: its default reference (`production`, else `latest`) names a
/// live version on the server's base.
public struct ServableTask: Sendable, Equatable {
    public let name: String
    /// Unix seconds.
    public let created: Int
}

/// The channel alias moves are announced on (migrations/0003_alias_notify.sql); the payload is the task name.
public let aliasMovedChannel = "lora_alias_moved"

extension RegistryStore {
    /// Resolves `TASK`, `TASK@N` or `TASK@ALIAS` with one query: the version it names now (with its
    /// artifact, base and archive state), or which part names nothing.
    public func resolveForServing(_ ref: AdapterReference, on conn: Connection) throws -> ServingResolution {
        let number: Int?, first: String?, second: String?
        switch ref.selector {
        case .version(let n): (number, first, second) = (n, nil, nil)
        case .alias(let a): (number, first, second) = (nil, a, nil)
        case .defaultAlias: (number, first, second) = (nil, Names.production, Names.latest)
        }
        // $2: an explicit version; else the first of the aliases $3, $4 that exists.
        let r = try conn.execute("""
            SELECT t.id IS NOT NULL AS task_exists, tv.n AS target, v.version, v.artifact_sha256, a.size,
                   b.name AS base, v.archived_at IS NOT NULL AS archived
            FROM (SELECT 1) one
            LEFT JOIN tasks t ON t.name = $1
            LEFT JOIN LATERAL (
                SELECT COALESCE($2::int, (SELECT al.version FROM aliases al
                                          WHERE al.task_id = t.id AND al.name IN ($3::text, $4::text)
                                          ORDER BY (al.name = $3::text) DESC LIMIT 1)) AS n
            ) tv ON true
            LEFT JOIN adapter_versions v ON v.task_id = t.id AND v.version = tv.n
            LEFT JOIN base_models b ON b.id = v.base_model_id
            LEFT JOIN artifacts a ON a.sha256 = v.artifact_sha256
            """, [.text(ref.task), .int(number), .string(first), .string(second)])[0]
        guard try r.bool("task_exists") else { return ServingResolution(reference: ref, outcome: .unknownTask) }
        guard let n = try r.optionalInt("version") else {
            if let number { return ServingResolution(reference: ref, outcome: .unknownVersion(number)) }
            return ServingResolution(reference: ref, outcome: .unknownAlias(first ?? Names.production))
        }
        return ServingResolution(reference: ref, outcome: .version(
            number: n, sha256: try r.string("artifact_sha256"), size: try r.int("size"), base: try r.string("base"),
            archived: try r.bool("archived")))
    }

    /// Tasks whose default reference (`production`, else `latest`) names a live version on `base`, by name.
    public func servableTasks(base: String, on conn: Connection) throws -> [ServableTask] {
        try conn.execute("""
            SELECT t.name, extract(epoch FROM t.created_at)::bigint AS created
            FROM tasks t
            JOIN LATERAL (SELECT al.version FROM aliases al WHERE al.task_id = t.id AND al.name IN ($2, $3)
                          ORDER BY (al.name = $2) DESC LIMIT 1) d ON true
            JOIN adapter_versions v ON v.task_id = t.id AND v.version = d.version
            JOIN base_models b ON b.id = v.base_model_id
            WHERE b.name = $1 AND v.archived_at IS NULL
            ORDER BY t.name
            """, [.text(base), .text(Names.production), .text(Names.latest)]).rows.map {
            ServableTask(name: try $0.string("name"), created: try $0.int("created"))
        }
    }
}
