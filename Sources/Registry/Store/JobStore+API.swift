import Foundation

/// What the HTTP API needs beyond the CLI's queries: pages (newest first, below a cursor),
/// idempotent submission, and the stored checkpoints.
extension JobStore {
    /// Inserts `job` unless (`apiKey`, `key`) was used before: then the job it created is returned
    /// when `requestSHA256` matches, and a conflict is thrown when it does not. One transaction, so
    /// two concurrent retries create one job.
    public func insertIdempotent(_ job: NewJob, apiKey: String, key: String, requestSHA256: String,
                                 on conn: Connection) throws -> (job: JobRecord, replayed: Bool) {
        func existing(_ c: Connection) throws -> (JobRecord, Bool)? {
            guard let row = try c.execute("SELECT request_sha256, job_id FROM idempotency_keys WHERE api_key = $1 AND key = $2",
                                          [.text(apiKey), .text(key)]).first else { return nil }
            guard try row.string("request_sha256") == requestSHA256 else {
                throw RegistryError.conflict("Idempotency-Key '\(key)' was already used with a different request body")
            }
            let id = try row.int("job_id")
            guard let rec = try self.job(id: id, on: c) else { throw RegistryError.notFound(kind: "job", name: String(id)) }
            return (rec, true)
        }
        do {
            return try conn.withTransaction { c in
                if let found = try existing(c) { return found }
                let rec = try insert(job, on: c)
                try c.execute("INSERT INTO idempotency_keys (api_key, key, request_sha256, job_id) VALUES ($1, $2, $3, $4)",
                              [.text(apiKey), .text(key), .text(requestSHA256), .int(rec.id)])
                return (rec, false)
            }
        } catch let e as PostgresError where e.isUniqueViolation {
            // A concurrent request with the same key committed first: answer with its job.
            if let found = try existing(conn) { return found }
            throw e
        }
    }

    /// Jobs newest first with an id below `before`, optionally in one state and of one task.
    public func jobs(before: Int?, limit: Int, status: JobRecord.Status?, task: String? = nil, on conn: Connection) throws -> [JobRecord] {
        try conn.execute("""
            SELECT \(Self.columns) FROM jobs WHERE ($1::bigint IS NULL OR id < $1) AND ($2::text IS NULL OR state = $2)
            AND ($4::text IS NULL OR task = $4)
            ORDER BY id DESC LIMIT $3
            """, [.int(before), .string(status?.rawValue), .int(limit), .string(task)]).rows.map(Self.record)
    }

    /// Events of a job newest first with an id below `before`.
    public func events(job: Int, before: Int?, limit: Int, on conn: Connection) throws -> [JobEvent] {
        try conn.execute("""
            SELECT id, job_id, attempt, \(RegistryStore.iso("at")) AS at, level, type, message, data
            FROM job_events WHERE job_id = $1 AND ($2::bigint IS NULL OR id < $2) ORDER BY id DESC LIMIT $3
            """, [.int(job), .int(before), .int(limit)]).rows.map(Self.event)
    }

    static func event(_ r: Row) throws -> JobEvent {
        JobEvent(id: try r.int("id"), job: try r.int("job_id"), attempt: try r.int("attempt"), at: try r.string("at"),
                 level: JobEvent.Level(rawValue: try r.string("level")) ?? .info,
                 type: JobEvent.Kind(rawValue: try r.string("type")) ?? .message,
                 message: try r.string("message"), data: try r.decodeJSON(JSONValue.self, "data"))
    }

    /// Tokens trained so far per job: each step's `tokens` (logged by the worker with its metrics)
    /// summed over the job's steps, a step repeated by a resumed attempt counted once (its newest
    /// event). Jobs without such events (not started, or run before tokens were logged) are absent.
    public func trainedTokens(jobs: [Int], on conn: Connection) throws -> [Int: Int] {
        guard !jobs.isEmpty else { return [:] }
        let rows = try conn.execute("""
            SELECT job_id, sum(tokens)::bigint AS tokens FROM (
                SELECT DISTINCT ON (job_id, (data ->> 'step')::numeric) job_id, (data ->> 'tokens')::numeric AS tokens
                FROM job_events
                WHERE job_id = ANY (string_to_array($1, ',')::bigint[]) AND type = 'metrics' AND data ? 'tokens' AND data ? 'loss'
                ORDER BY job_id, (data ->> 'step')::numeric, id DESC) steps
            GROUP BY job_id
            """, [.text(jobs.map(String.init).joined(separator: ","))]).rows
        var out: [Int: Int] = [:]
        for r in rows { out[try r.int("job_id")] = try r.int("tokens") }
        return out
    }

    /// The job's stored checkpoints, newest first (the newest `JobStore.keptCheckpoints`), each with
    /// the training loss logged at its step and the newest eval loss at or before it.
    public func checkpoints(job: Int, on conn: Connection) throws -> [JobCheckpointRecord] {
        try conn.execute("""
            SELECT c.id, c.step, c.micro, c.sha256, c.size, \(RegistryStore.iso("c.created_at")) AS created_at,
                   (SELECT (e.data ->> 'loss')::double precision FROM job_events e
                    WHERE e.job_id = c.job_id AND e.type = 'metrics' AND (e.data ->> 'step')::numeric = c.step AND e.data ? 'loss'
                    ORDER BY e.id DESC LIMIT 1) AS train_loss,
                   (SELECT (e.data ->> 'eval_loss')::double precision FROM job_events e
                    WHERE e.job_id = c.job_id AND e.type = 'metrics' AND (e.data ->> 'step')::numeric <= c.step AND e.data ? 'eval_loss'
                    ORDER BY e.id DESC LIMIT 1) AS valid_loss
            FROM job_checkpoints c WHERE c.job_id = $1 ORDER BY c.step DESC, c.micro DESC
            """, [.int(job)]).rows.map { r in
            JobCheckpointRecord(id: try r.int("id"), job: job, step: try r.int("step"), micro: try r.int("micro"),
                                sha256: try r.string("sha256"), size: try r.int("size"), createdAt: try r.string("created_at"),
                                trainLoss: try r.isNull("train_loss") ? nil : try r.double("train_loss"),
                                validLoss: try r.isNull("valid_loss") ? nil : try r.double("valid_loss"))
        }
    }
}

/// A stored checkpoint with the metrics logged at its step.
public struct JobCheckpointRecord: Sendable, Equatable {
    public let id: Int
    public let job: Int
    public let step: Int
    public let micro: Int
    public let sha256: String
    public let size: Int
    public let createdAt: String
    public let trainLoss: Double?
    public let validLoss: Double?
}
