import Crypto
import Foundation

/// The job daemon's SQL: submit, list, cancel, claim (FOR UPDATE SKIP LOCKED), heartbeat,
/// events, checkpoints, and the guarded finishing updates. Every update a worker makes is
/// guarded by `state = 'running' AND attempt = $2`, so a worker whose job was rescued by
/// another (its heartbeat expired) or cancelled changes nothing.
public struct JobStore: Sendable {
    /// Channel NOTIFYed with the job id when a job is cancelled.
    public static let cancelChannel = "lora_job_cancelled"
    /// Channel NOTIFYed with the job id when a job is queued (workers wake up early).
    public static let queuedChannel = "lora_job_queued"
    /// Channel NOTIFYed with "id" on every new event of a job (for `events --follow`).
    public static let eventChannel = "lora_job_event"
    static let checkpointChunk = 8 << 20
    /// Checkpoints kept per job, newest by (step, micro): what `GET .../checkpoints` lists
    /// (OpenAI's fine-tuning keeps the last three too); a rescued job resumes from the newest.
    public static let keptCheckpoints = 3

    public init() {}

    static let columns = """
        id, task, base_model, state, attempt, max_attempts, worker, \(RegistryStore.iso("heartbeat_at")) AS heartbeat_at,
        hyperparameters, data_name, data_sha256, octet_length(data_bytes) AS data_size, eval_data_name, eval_data_sha256,
        error, auto_promote, promote_if_better, result_version, created_by, \(RegistryStore.iso("created_at")) AS created_at,
        \(RegistryStore.iso("started_at")) AS started_at, \(RegistryStore.iso("finished_at")) AS finished_at,
        \(RegistryStore.iso("next_attempt_at")) AS next_attempt_at, training_file_id, validation_file_id, metadata, api_key
        """

    static func record(_ r: Row) throws -> JobRecord {
        let state = try r.string("state")
        guard let status = JobRecord.Status(rawValue: state) else {
            throw SQLDecodingError(column: "state", row: r.index, expected: "a job state", value: state)
        }
        return JobRecord(
            id: try r.int("id"), task: try r.string("task"), base: try r.string("base_model"), status: status,
            attempt: try r.int("attempt"), maxAttempts: try r.int("max_attempts"), worker: try r.optionalString("worker"),
            heartbeatAt: try r.optionalString("heartbeat_at"), hyperparameters: try r.decodeJSON(JSONValue.self, "hyperparameters"),
            dataName: try r.string("data_name"), dataSHA256: try r.string("data_sha256"), dataSize: try r.int("data_size"),
            evalDataName: try r.optionalString("eval_data_name"), evalDataSHA256: try r.optionalString("eval_data_sha256"),
            error: try r.optionalString("error"), autoPromote: try r.bool("auto_promote"),
            promoteIfBetter: try r.bool("promote_if_better"), version: try r.optionalInt("result_version"),
            createdBy: try r.string("created_by"), createdAt: try r.string("created_at"),
            startedAt: try r.optionalString("started_at"), finishedAt: try r.optionalString("finished_at"),
            nextAttemptAt: try r.string("next_attempt_at"),
            trainingFileID: try r.optionalInt("training_file_id"), validationFileID: try r.optionalInt("validation_file_id"),
            metadata: try r.isNull("metadata") ? nil : try r.decodeJSON(JSONValue.self, "metadata"),
            apiKey: try r.optionalString("api_key"))
    }

    // MARK: - Submit, read, cancel

    public func insert(_ job: NewJob, on conn: Connection) throws -> JobRecord {
        try Names.validateTask(job.task)
        return try conn.withTransaction { c in
            let r = try c.execute("""
                INSERT INTO jobs (task, base_model, hyperparameters, data_name, data_bytes, data_sha256, eval_data_name,
                                  eval_data_bytes, eval_data_sha256, auto_promote, promote_if_better, max_attempts, created_by,
                                  training_file_id, validation_file_id, metadata, api_key)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
                RETURNING id
                """, [.text(job.task), .text(job.base), try .json(job.hyperparameters), .text(job.dataName), .bytes(job.data),
                      .text(job.dataSHA256), .string(job.evalDataName), job.evalData.map { .bytes($0) } ?? .null,
                      .string(job.evalDataSHA256), .bool(job.autoPromote), .bool(job.promoteIfBetter),
                      .int(job.maxAttempts), .text(job.actor), .int(job.trainingFileID), .int(job.validationFileID),
                      try job.metadata.map { try SQLValue.json($0) } ?? .null, .string(job.apiKey)])
            let id = try r[0].int("id")
            try addEvent(job: id, attempt: 0, type: .message, message: "queued by \(job.actor)", on: c)
            try c.notify(Self.queuedChannel, payload: String(id))
            guard let rec = try self.job(id: id, on: c) else { throw RegistryError.notFound(kind: "job", name: String(id)) }
            return rec
        }
    }

    public func job(id: Int, on conn: Connection) throws -> JobRecord? {
        try conn.execute("SELECT \(Self.columns) FROM jobs WHERE id = $1", [.int(id)]).first.map(Self.record)
    }

    /// Jobs, newest first; optionally only those in `status`.
    public func jobs(status: JobRecord.Status? = nil, task: String? = nil, limit: Int = 1000, on conn: Connection) throws -> [JobRecord] {
        try conn.execute("""
            SELECT \(Self.columns) FROM jobs
            WHERE ($1::text IS NULL OR state = $1) AND ($2::text IS NULL OR task = $2)
            ORDER BY id DESC LIMIT $3
            """, [.string(status?.rawValue), .string(task), .int(limit)]).rows.map(Self.record)
    }

    /// Cancels a queued or running job (a running one stops within one optimizer step: its
    /// worker is NOTIFYed and its next heartbeat finds the job no longer running). Returns the
    /// job afterwards; a job already final is returned unchanged.
    public func cancel(id: Int, actor: String, on conn: Connection) throws -> JobRecord {
        try conn.withTransaction { c in
            let r = try c.execute("""
                UPDATE jobs SET state = 'cancelled', finished_at = now(), next_attempt_at = now()
                WHERE id = $1 AND state IN ('queued', 'running') RETURNING attempt
                """, [.int(id)])
            if let row = r.first {
                try addEvent(job: id, attempt: try row.int("attempt"), type: .message, message: "cancelled by \(actor)", on: c)
                try c.notify(Self.cancelChannel, payload: String(id))
            }
            guard let rec = try job(id: id, on: c) else { throw RegistryError.notFound(kind: "job", name: String(id)) }
            return rec
        }
    }

    /// True when some job is queued (claimable now or after its backoff) or running.
    public func hasPendingWork(on conn: Connection) throws -> Bool {
        try conn.execute("SELECT EXISTS (SELECT 1 FROM jobs WHERE state IN ('queued', 'running')) AS p")[0].bool("p")
    }

    // MARK: - Events

    public func addEvent(job: Int, attempt: Int, level: JobEvent.Level = .info, type: JobEvent.Kind, message: String = "",
                         data: JSONValue = .object([:]), on conn: Connection) throws {
        try conn.execute("""
            INSERT INTO job_events (job_id, attempt, level, type, message, data) VALUES ($1, $2, $3, $4, $5, $6)
            """, [.int(job), .int(attempt), .text(level.rawValue), .text(type.rawValue), .text(message), try .json(data)])
        try conn.notify(Self.eventChannel, payload: String(job))
    }

    /// Events of a job with id greater than `after`, oldest first.
    public func events(job: Int, after: Int = 0, on conn: Connection) throws -> [JobEvent] {
        try conn.execute("""
            SELECT id, job_id, attempt, \(RegistryStore.iso("at")) AS at, level, type, message, data
            FROM job_events WHERE job_id = $1 AND id > $2 ORDER BY id
            """, [.int(job), .int(after)]).rows.map { r in
            JobEvent(id: try r.int("id"), job: try r.int("job_id"), attempt: try r.int("attempt"), at: try r.string("at"),
                     level: JobEvent.Level(rawValue: try r.string("level")) ?? .info,
                     type: JobEvent.Kind(rawValue: try r.string("type")) ?? .message,
                     message: try r.string("message"), data: try r.decodeJSON(JSONValue.self, "data"))
        }
    }

    // MARK: - Worker side

    /// Claims one job for `worker`: a queued job whose backoff has passed, or a running job
    /// whose heartbeat is older than `heartbeatTimeout` seconds (its worker is presumed dead:
    /// liveness is the heartbeat, never run time). The attempt is incremented. Running jobs
    /// with expired heartbeats and no attempts left are failed first, keeping their error.
    public func claim(worker: String, heartbeatTimeout: Double, on conn: Connection) throws -> ClaimedJob? {
        try conn.withTransaction { c in
            try c.execute("""
                UPDATE jobs SET state = 'failed', finished_at = now(),
                       error = coalesce(error || '; ', '') || 'worker ' || coalesce(worker, '?') || ' stopped heartbeating on the last attempt'
                WHERE id IN (SELECT id FROM jobs WHERE state = 'running' AND attempt >= max_attempts
                             AND heartbeat_at < clock_timestamp() - make_interval(secs => $1)
                             FOR UPDATE SKIP LOCKED)
                """, [.double(heartbeatTimeout)])
            let r = try c.execute("""
                WITH c AS (
                    SELECT id, state AS previous FROM jobs
                    WHERE (state = 'queued' AND next_attempt_at <= clock_timestamp())
                       OR (state = 'running' AND attempt < max_attempts
                           AND heartbeat_at < clock_timestamp() - make_interval(secs => $2))
                    ORDER BY id
                    FOR UPDATE SKIP LOCKED
                    LIMIT 1)
                UPDATE jobs j SET state = 'running', attempt = j.attempt + 1, worker = $1, heartbeat_at = clock_timestamp(),
                                  started_at = coalesce(j.started_at, clock_timestamp())
                FROM c WHERE j.id = c.id
                RETURNING j.id, c.previous, j.worker
                """, [.text(worker), .double(heartbeatTimeout)])
            guard let row = r.first else { return nil }
            let id = try row.int("id")
            let rescued = try row.string("previous") == "running"
            let d = try c.execute("SELECT data_bytes, eval_data_bytes FROM jobs WHERE id = $1", [.int(id)])[0]
            guard let rec = try job(id: id, on: c) else { return nil }
            try addEvent(job: id, attempt: rec.attempt, type: .message,
                         message: rescued ? "rescued by \(worker) (heartbeat expired), attempt \(rec.attempt)"
                                          : "claimed by \(worker), attempt \(rec.attempt)",
                         data: .object(["worker": .string(worker), "rescued": .bool(rescued)]), on: c)
            return ClaimedJob(record: rec, data: try d.bytes("data_bytes"),
                              evalData: try d.isNull("eval_data_bytes") ? nil : try d.bytes("eval_data_bytes"))
        }
    }

    /// The job as `claim` returned it, read again by the process that runs the attempt (a
    /// worker's child process): nil unless the job is still running under `attempt`.
    public func claimedJob(id: Int, attempt: Int, on conn: Connection) throws -> ClaimedJob? {
        let d = try conn.execute("SELECT data_bytes, eval_data_bytes FROM jobs WHERE id = $1 AND state = 'running' AND attempt = $2",
                                 [.int(id), .int(attempt)])
        guard let row = d.first, let rec = try job(id: id, on: conn), rec.attempt == attempt else { return nil }
        return ClaimedJob(record: rec, data: try row.bytes("data_bytes"),
                          evalData: try row.isNull("eval_data_bytes") ? nil : try row.bytes("eval_data_bytes"))
    }

    /// Refreshes the heartbeat. False when the job is no longer this attempt's to run
    /// (cancelled, or rescued by another worker): the worker must stop.
    public func heartbeat(job: Int, attempt: Int, on conn: Connection) throws -> Bool {
        try conn.execute("""
            UPDATE jobs SET heartbeat_at = clock_timestamp() WHERE id = $1 AND state = 'running' AND attempt = $2
            """, [.int(job), .int(attempt)]).affectedRows == 1
    }

    /// Returns a running job to the queue without spending its attempt (a worker shutting
    /// down cleanly). False when the job was no longer this attempt's.
    public func release(job: Int, attempt: Int, on conn: Connection) throws -> Bool {
        try conn.withTransaction { c in
            let n = try c.execute("""
                UPDATE jobs SET state = 'queued', attempt = attempt - 1, next_attempt_at = clock_timestamp()
                WHERE id = $1 AND state = 'running' AND attempt = $2
                """, [.int(job), .int(attempt)]).affectedRows
            guard n == 1 else { return false }
            try addEvent(job: job, attempt: attempt, level: .warning, type: .message,
                         message: "worker shutting down: job returned to the queue (attempt \(attempt) not counted)", on: c)
            try c.notify(Self.queuedChannel, payload: String(job))
            return true
        }
    }

    /// Locks the job row when it is still this attempt's (inside the caller's transaction).
    public func lockIfOwned(job: Int, attempt: Int, on conn: Connection) throws -> Bool {
        !(try conn.execute("SELECT id FROM jobs WHERE id = $1 AND state = 'running' AND attempt = $2 FOR UPDATE",
                           [.int(job), .int(attempt)]).isEmpty)
    }

    /// Marks the job succeeded with `version` (call inside the transaction that registered it).
    public func markSucceeded(job: Int, attempt: Int, version: Int, on conn: Connection) throws -> Bool {
        try conn.execute("""
            UPDATE jobs SET state = 'succeeded', result_version = $3, finished_at = now(), error = NULL
            WHERE id = $1 AND state = 'running' AND attempt = $2
            """, [.int(job), .int(attempt), .int(version)]).affectedRows == 1
    }

    /// Records a failed attempt: queued again after `backoff` seconds while attempts remain,
    /// else failed. The error is kept either way. Returns the new status, nil when the job was
    /// no longer this attempt's.
    public func markFailed(job: Int, attempt: Int, error: String, backoff: Double, on conn: Connection) throws -> JobRecord.Status? {
        try conn.withTransaction { c in
            let r = try c.execute("""
                UPDATE jobs SET
                    state = CASE WHEN attempt >= max_attempts THEN 'failed' ELSE 'queued' END,
                    finished_at = CASE WHEN attempt >= max_attempts THEN now() ELSE NULL END,
                    next_attempt_at = clock_timestamp() + make_interval(secs => $4),
                    error = $3
                WHERE id = $1 AND state = 'running' AND attempt = $2
                RETURNING state
                """, [.int(job), .int(attempt), .text(error), .double(backoff)])
            guard let row = r.first else { return nil }
            let status = JobRecord.Status(rawValue: try row.string("state"))
            try addEvent(job: job, attempt: attempt, level: .error, type: .message,
                         message: status == .failed ? "failed: \(error)" : String(format: "attempt %d failed (retry in %.1f s): %@", attempt, backoff, error),
                         on: c)
            return status
        }
    }

    // MARK: - Checkpoints

    /// Stores a checkpoint archive for the job when the job is still this attempt's, then drops
    /// the job's checkpoints beyond the newest `keptCheckpoints`. Returns false (nothing stored) otherwise.
    public func saveCheckpoint(job: Int, attempt: Int, step: Int, micro: Int, archive: URL, on conn: Connection) throws -> Bool {
        try conn.withTransaction { c in
            guard try lockIfOwned(job: job, attempt: attempt, on: c) else { return false }
            let input = try FileHandle(forReadingFrom: archive)
            defer { try? input.close() }
            try c.execute("DELETE FROM job_checkpoints WHERE job_id = $1 AND step = $2 AND micro = $3", [.int(job), .int(step), .int(micro)])
            let id = try c.execute("""
                INSERT INTO job_checkpoints (job_id, step, micro, attempt, sha256, size) VALUES ($1, $2, $3, $4, $5, 0) RETURNING id
                """, [.int(job), .int(step), .int(micro), .int(attempt), .text(String(repeating: "0", count: 64))])[0].int("id")
            var hasher = SHA256()
            var size = 0, seq = 0
            while true {
                let chunk = input.readData(ofLength: Self.checkpointChunk)
                if chunk.isEmpty { break }
                hasher.update(data: chunk)
                size += chunk.count
                try c.execute("INSERT INTO job_checkpoint_chunks (checkpoint_id, seq, bytes) VALUES ($1, $2, $3)",
                              [.int(id), .int(seq), .data(chunk)])
                seq += 1
            }
            TestPausePoint.reach("checkpoint.after-chunks")
            try c.execute("UPDATE job_checkpoints SET sha256 = $2, size = $3 WHERE id = $1",
                          [.int(id), .text(hasher.finalize().hexString), .int(size)])
            try c.execute("""
                DELETE FROM job_checkpoints WHERE job_id = $1 AND id NOT IN
                    (SELECT id FROM job_checkpoints WHERE job_id = $1 ORDER BY step DESC, micro DESC LIMIT $2)
                """, [.int(job), .int(Self.keptCheckpoints)])
            return true
        }
    }

    /// The job's newest checkpoint, if any.
    public func latestCheckpoint(job: Int, on conn: Connection) throws -> JobCheckpointInfo? {
        try conn.execute("""
            SELECT id, step, micro, sha256, size FROM job_checkpoints WHERE job_id = $1 ORDER BY step DESC, micro DESC LIMIT 1
            """, [.int(job)]).first.map {
            JobCheckpointInfo(id: try $0.int("id"), step: try $0.int("step"), micro: try $0.int("micro"),
                              sha256: try $0.string("sha256"), size: try $0.int("size"))
        }
    }

    /// Writes a checkpoint's archive to `destination`, checking its sha256.
    public func fetchCheckpoint(_ cp: JobCheckpointInfo, to destination: URL, on conn: Connection) throws {
        FileManager.default.createFile(atPath: destination.path, contents: nil)
        let out = try FileHandle(forWritingTo: destination)
        defer { try? out.close() }
        var hasher = SHA256()
        var size = 0
        let n = try conn.execute("SELECT count(*) AS n FROM job_checkpoint_chunks WHERE checkpoint_id = $1", [.int(cp.id)])[0].int("n")
        for seq in 0..<n {
            let bytes = try conn.execute("SELECT bytes FROM job_checkpoint_chunks WHERE checkpoint_id = $1 AND seq = $2",
                                         [.int(cp.id), .int(seq)])[0].bytes("bytes")
            hasher.update(data: bytes)
            size += bytes.count
            out.write(Data(bytes))
        }
        let got = hasher.finalize().hexString
        guard got == cp.sha256, size == cp.size else {
            throw RegistryError.artifactCorrupt(sha256: cp.sha256, source: "job_checkpoints", detail: "read \(size) bytes hashing to \(got)")
        }
    }
}

extension JobStore {
    /// The version `production` points at for `task` and its eval loss (nil when it has none);
    /// nil when the task has no production alias.
    public func production(task: String, on conn: Connection) throws -> (version: Int, evalLoss: Double?)? {
        try conn.execute("""
            SELECT v.version, (v.metrics ->> 'eval_loss')::double precision AS eval_loss
            FROM aliases a JOIN tasks t ON t.id = a.task_id
            JOIN adapter_versions v ON v.task_id = a.task_id AND v.version = a.version
            WHERE t.name = $1 AND a.name = 'production'
            """, [.text(task)]).first.map { (try $0.int("version"), try $0.isNull("eval_loss") ? nil : try $0.double("eval_loss")) }
    }
}
