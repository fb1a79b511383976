// A byte-identical copy of migrations/*.sql (scripts/embed-migrations.sh writes it;
// EmbeddedMigrationsTests checks it). Edit the .sql files, never this one.
enum EmbeddedMigrations {
    static let files: [(fileName: String, sql: String)] = [
        ("0001_registry.sql", ####"""
-- 0001: the adapter registry. Base models, tasks, immutable adapter versions with their
-- artifacts stored in chunks, aliases and their append-only history.
-- Invariants live here as CHECK / UNIQUE / FOREIGN KEY constraints and triggers; the service
-- layer checks the same rules first only to give friendlier errors.

CREATE TABLE base_models (
    id            bigserial PRIMARY KEY,
    name          text NOT NULL,
    source        text NOT NULL,
    -- sha256 of the file, or for a directory of sorted "path\0sha256\n" lines of its files.
    sha256        text NOT NULL,
    -- [{"path": ..., "size": ..., "sha256": ...}] for every file.
    files         jsonb NOT NULL DEFAULT '[]',
    architecture  text NOT NULL,
    quantization  text NOT NULL,
    -- The model's shape (Model's LlamaConfig as JSON), used to check adapters against it.
    config        jsonb,
    created_by    text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT base_models_name_key UNIQUE (name),
    CONSTRAINT base_model_name_format CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._-]*$' AND length(name) <= 200),
    CONSTRAINT base_model_sha256_format CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    CONSTRAINT base_model_files_array CHECK (jsonb_typeof(files) = 'array'),
    CONSTRAINT base_model_source_nonempty CHECK (source <> '')
);

CREATE TABLE tasks (
    id          bigserial PRIMARY KEY,
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT tasks_name_key UNIQUE (name),
    CONSTRAINT task_name_format CHECK (name ~ '^[a-z0-9][a-z0-9_-]*$' AND length(name) <= 100)
);

-- Content-addressed blobs. The bytes live in artifact_chunks, `chunk_size` bytes each (the
-- last one shorter), so an artifact of any size fits (a single bytea stops at 1 GB).
CREATE TABLE artifacts (
    sha256       text PRIMARY KEY,
    size         bigint NOT NULL,
    chunk_size   integer NOT NULL,
    chunk_count  integer NOT NULL,
    -- What the bytes are: 'peft-adapter-tar' (an adapter directory as a deterministic ustar).
    media_type   text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT artifact_sha256_format CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    CONSTRAINT artifact_size_nonnegative CHECK (size >= 0),
    CONSTRAINT artifact_chunk_size_positive CHECK (chunk_size > 0),
    CONSTRAINT artifact_chunk_count_matches CHECK (chunk_count = (size + chunk_size - 1) / chunk_size)
);

CREATE TABLE artifact_chunks (
    sha256  text NOT NULL REFERENCES artifacts (sha256) ON DELETE CASCADE,
    seq     integer NOT NULL,
    bytes   bytea NOT NULL,
    PRIMARY KEY (sha256, seq),
    CONSTRAINT artifact_chunk_seq_nonnegative CHECK (seq >= 0)
);
-- Safetensors payloads do not compress: store chunks out of line without trying.
ALTER TABLE artifact_chunks ALTER COLUMN bytes SET STORAGE EXTERNAL;

CREATE TABLE adapter_versions (
    id               bigserial PRIMARY KEY,
    task_id          bigint NOT NULL REFERENCES tasks (id),
    -- Numbered from 1 per task, computed while holding the task row's lock.
    version          integer NOT NULL,
    base_model_id    bigint NOT NULL REFERENCES base_models (id),
    -- adapter_config.json as imported.
    lora_config      jsonb NOT NULL,
    metrics          jsonb NOT NULL DEFAULT '{}',
    artifact_sha256  text NOT NULL REFERENCES artifacts (sha256),
    -- Lineage: the job that produced it (the job daemon's migration adds the foreign key),
    -- the training data's sha256 and the hyperparameters.
    job_id           bigint,
    data_sha256      text,
    hyperparameters  jsonb NOT NULL DEFAULT '{}',
    source           text,
    created_by       text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    -- The only mutable columns: tags, and archived_at (set once).
    tags             jsonb NOT NULL DEFAULT '{}',
    archived_at      timestamptz,
    CONSTRAINT adapter_versions_task_version_key UNIQUE (task_id, version),
    CONSTRAINT adapter_version_positive CHECK (version >= 1),
    CONSTRAINT adapter_version_lora_config_object CHECK (jsonb_typeof(lora_config) = 'object'),
    CONSTRAINT adapter_version_metrics_object CHECK (jsonb_typeof(metrics) = 'object'),
    CONSTRAINT adapter_version_hyperparameters_object CHECK (jsonb_typeof(hyperparameters) = 'object'),
    CONSTRAINT adapter_version_tags_object CHECK (jsonb_typeof(tags) = 'object'),
    CONSTRAINT adapter_version_data_sha256_format CHECK (data_sha256 IS NULL OR data_sha256 ~ '^[0-9a-f]{64}$')
);
CREATE INDEX adapter_versions_artifact_idx ON adapter_versions (artifact_sha256);

-- Alias names: never all digits (TASK@3 is always version 3), same alphabet as task names.
-- `latest` is moved automatically only (see alias_history's check).
CREATE TABLE aliases (
    task_id     bigint NOT NULL REFERENCES tasks (id),
    name        text NOT NULL,
    version     integer NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (task_id, name),
    FOREIGN KEY (task_id, version) REFERENCES adapter_versions (task_id, version),
    CONSTRAINT alias_name_format CHECK (name ~ '^[a-z0-9][a-z0-9_-]*$' AND name !~ '^[0-9]+$' AND length(name) <= 100)
);

-- Every move of every alias, in order (id). Append-only: a trigger refuses UPDATE and DELETE.
CREATE TABLE alias_history (
    id            bigserial PRIMARY KEY,
    task_id       bigint NOT NULL REFERENCES tasks (id),
    alias         text NOT NULL,
    from_version  integer,
    to_version    integer,
    -- promote and rollback are a person's moves; auto is the system's (`latest`, or a job's
    -- auto-promotion).
    action        text NOT NULL,
    actor         text NOT NULL,
    reason        text NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    FOREIGN KEY (task_id, from_version) REFERENCES adapter_versions (task_id, version),
    FOREIGN KEY (task_id, to_version) REFERENCES adapter_versions (task_id, version),
    CONSTRAINT alias_history_action CHECK (action IN ('promote', 'rollback', 'auto')),
    CONSTRAINT latest_is_automatic CHECK (alias <> 'latest' OR action = 'auto'),
    CONSTRAINT alias_history_moves CHECK (from_version IS DISTINCT FROM to_version),
    CONSTRAINT alias_history_name_format CHECK (alias ~ '^[a-z0-9][a-z0-9_-]*$' AND alias !~ '^[0-9]+$')
);
CREATE INDEX alias_history_task_alias_idx ON alias_history (task_id, alias, id);

CREATE FUNCTION alias_history_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'alias_history is append-only (% refused)', TG_OP
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$;
CREATE TRIGGER alias_history_append_only BEFORE UPDATE OR DELETE ON alias_history
    FOR EACH ROW EXECUTE FUNCTION alias_history_append_only();

-- Versions are immutable: only tags change, and archived_at is set once. No version is deleted.
CREATE FUNCTION adapter_versions_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'adapter versions are never deleted (task %, version %)', OLD.task_id, OLD.version
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF (NEW.id, NEW.task_id, NEW.version, NEW.base_model_id, NEW.lora_config, NEW.metrics,
        NEW.artifact_sha256, NEW.job_id, NEW.data_sha256, NEW.hyperparameters, NEW.source,
        NEW.created_by, NEW.created_at)
       IS DISTINCT FROM
       (OLD.id, OLD.task_id, OLD.version, OLD.base_model_id, OLD.lora_config, OLD.metrics,
        OLD.artifact_sha256, OLD.job_id, OLD.data_sha256, OLD.hyperparameters, OLD.source,
        OLD.created_by, OLD.created_at) THEN
        RAISE EXCEPTION 'adapter versions are immutable (task %, version %)', OLD.task_id, OLD.version
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF OLD.archived_at IS NOT NULL AND NEW.archived_at IS DISTINCT FROM OLD.archived_at THEN
        RAISE EXCEPTION 'version % of task % is archived for good', OLD.version, OLD.task_id
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF OLD.archived_at IS NULL AND NEW.archived_at IS NOT NULL AND EXISTS (
        SELECT 1 FROM aliases a
        WHERE a.task_id = NEW.task_id AND a.version = NEW.version AND a.name <> 'latest') THEN
        RAISE EXCEPTION 'version % of task % is the target of an alias', NEW.version, NEW.task_id
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER adapter_versions_immutable BEFORE UPDATE OR DELETE ON adapter_versions
    FOR EACH ROW EXECUTE FUNCTION adapter_versions_immutable();

-- An alias never points at an archived version.
CREATE FUNCTION aliases_target_live() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM adapter_versions v
               WHERE v.task_id = NEW.task_id AND v.version = NEW.version AND v.archived_at IS NOT NULL) THEN
        RAISE EXCEPTION 'alias % cannot point at archived version %', NEW.name, NEW.version
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER aliases_target_live BEFORE INSERT OR UPDATE ON aliases
    FOR EACH ROW EXECUTE FUNCTION aliases_target_live();

"""####),
        ("0002_jobs.sql", ####"""
-- 0002: the job daemon. Fine-tune jobs queued in PostgreSQL, claimed by workers with
-- FOR UPDATE SKIP LOCKED, their events (messages and per-step metrics) and their checkpoints
-- (so any worker can resume any job). Invariants live here as constraints.

CREATE TABLE jobs (
    id                 bigserial PRIMARY KEY,
    task               text NOT NULL,
    -- The base model's name (base_models.name).
    base_model         text NOT NULL REFERENCES base_models (name),
    state              text NOT NULL DEFAULT 'queued',
    attempt            integer NOT NULL DEFAULT 0,
    max_attempts       integer NOT NULL DEFAULT 3,
    -- The worker that holds (or last held) the job: "host:pid:slot".
    worker             text,
    heartbeat_at       timestamptz,
    -- The hyperparameters (Training's TrainingSettings as JSON) plus job options.
    hyperparameters    jsonb NOT NULL DEFAULT '{}',
    data_name          text NOT NULL,
    data_bytes         bytea NOT NULL,
    data_sha256        text NOT NULL,
    eval_data_name     text,
    eval_data_bytes    bytea,
    eval_data_sha256   text,
    error              text,
    auto_promote       boolean NOT NULL DEFAULT false,
    promote_if_better  boolean NOT NULL DEFAULT false,
    -- The version registered on success.
    result_version     integer,
    created_by         text NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    started_at         timestamptz,
    finished_at        timestamptz,
    -- Not claimable before this time (exponential backoff after a failed attempt).
    next_attempt_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT job_state CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    CONSTRAINT job_task_format CHECK (task ~ '^[a-z0-9][a-z0-9_-]*$' AND length(task) <= 100),
    CONSTRAINT job_attempts CHECK (attempt >= 0 AND max_attempts >= 1 AND attempt <= max_attempts),
    CONSTRAINT job_hyperparameters_object CHECK (jsonb_typeof(hyperparameters) = 'object'),
    CONSTRAINT job_data_sha256_format CHECK (data_sha256 ~ '^[0-9a-f]{64}$'),
    CONSTRAINT job_eval_data_complete CHECK (
        (eval_data_bytes IS NULL AND eval_data_sha256 IS NULL AND eval_data_name IS NULL) OR
        (eval_data_bytes IS NOT NULL AND eval_data_sha256 ~ '^[0-9a-f]{64}$' AND eval_data_name IS NOT NULL)),
    CONSTRAINT job_promote_if_better_needs_auto CHECK (NOT promote_if_better OR auto_promote),
    CONSTRAINT job_running_has_worker CHECK (state <> 'running' OR (worker IS NOT NULL AND heartbeat_at IS NOT NULL AND attempt >= 1)),
    CONSTRAINT job_succeeded_has_version CHECK ((state = 'succeeded') = (result_version IS NOT NULL)),
    CONSTRAINT job_finished_when_final CHECK ((state IN ('succeeded', 'failed', 'cancelled')) = (finished_at IS NOT NULL)),
    CONSTRAINT job_failed_has_error CHECK (state <> 'failed' OR error IS NOT NULL)
);
ALTER TABLE jobs ALTER COLUMN data_bytes SET STORAGE EXTERNAL;
-- The claim query's order: claimable queued jobs first by next_attempt_at, then id.
CREATE INDEX jobs_queued_idx ON jobs (next_attempt_at, id) WHERE state = 'queued';
CREATE INDEX jobs_running_idx ON jobs (heartbeat_at) WHERE state = 'running';

-- A version's producing job is a job.
ALTER TABLE adapter_versions ADD CONSTRAINT adapter_version_job_fkey FOREIGN KEY (job_id) REFERENCES jobs (id);

CREATE TABLE job_events (
    id       bigserial PRIMARY KEY,
    job_id   bigint NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    attempt  integer NOT NULL,
    at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    level    text NOT NULL DEFAULT 'info',
    type     text NOT NULL,
    message  text NOT NULL DEFAULT '',
    data     jsonb NOT NULL DEFAULT '{}',
    CONSTRAINT job_event_level CHECK (level IN ('debug', 'info', 'warning', 'error')),
    CONSTRAINT job_event_type CHECK (type IN ('message', 'metrics')),
    CONSTRAINT job_event_data_object CHECK (jsonb_typeof(data) = 'object')
);
CREATE INDEX job_events_job_idx ON job_events (job_id, id);

-- A checkpoint directory as a deterministic tar (the registry's AdapterArchive format),
-- stored in chunks like artifacts. The newest (step, micro) is what a rescued job resumes from.
CREATE TABLE job_checkpoints (
    id          bigserial PRIMARY KEY,
    job_id      bigint NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    step        integer NOT NULL,
    micro       integer NOT NULL DEFAULT 0,
    attempt     integer NOT NULL,
    sha256      text NOT NULL,
    size        bigint NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT job_checkpoint_position UNIQUE (job_id, step, micro),
    CONSTRAINT job_checkpoint_step_nonnegative CHECK (step >= 0 AND micro >= 0),
    CONSTRAINT job_checkpoint_sha256_format CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    CONSTRAINT job_checkpoint_size_nonnegative CHECK (size >= 0)
);

CREATE TABLE job_checkpoint_chunks (
    checkpoint_id  bigint NOT NULL REFERENCES job_checkpoints (id) ON DELETE CASCADE,
    seq            integer NOT NULL,
    bytes          bytea NOT NULL,
    PRIMARY KEY (checkpoint_id, seq),
    CONSTRAINT job_checkpoint_chunk_seq_nonnegative CHECK (seq >= 0)
);
ALTER TABLE job_checkpoint_chunks ALTER COLUMN bytes SET STORAGE EXTERNAL;

"""####),
        ("0003_alias_notify.sql", ####"""
-- Servers cache what `TASK`, `TASK@ALIAS` and `TASK@N` resolve to: every alias move (promote,
-- rollback, a job's auto-promotion, `latest` following a new or archived version) and every
-- archive is announced on the channel `lora_alias_moved`, payload the task's name, delivered when
-- the moving transaction commits.
CREATE FUNCTION notify_alias_moved() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    tid bigint;
BEGIN
    IF TG_OP = 'DELETE' THEN tid := OLD.task_id; ELSE tid := NEW.task_id; END IF;
    PERFORM pg_notify('lora_alias_moved', (SELECT name FROM tasks WHERE id = tid));
    RETURN NULL;
END;
$$;
CREATE TRIGGER aliases_notify AFTER INSERT OR UPDATE OR DELETE ON aliases
    FOR EACH ROW EXECUTE FUNCTION notify_alias_moved();
CREATE TRIGGER adapter_versions_notify AFTER UPDATE ON adapter_versions
    FOR EACH ROW WHEN (OLD.archived_at IS DISTINCT FROM NEW.archived_at) EXECUTE FUNCTION notify_alias_moved();

"""####),
        ("0004_api.sql", ####"""
-- 0004: the fine-tuning API over HTTP. Uploaded files (bytes in PostgreSQL with their sha256),
-- API keys with roles (only the sha256 of each secret is stored), idempotency keys of job
-- submissions, the files a job was created from, and which key's name moved an alias.

-- An uploaded data file. Validated (every JSONL record) before the row exists.
CREATE TABLE files (
    id          bigserial PRIMARY KEY,
    filename    text NOT NULL,
    purpose     text NOT NULL,
    bytes       bytea NOT NULL,
    size        bigint NOT NULL,
    sha256      text NOT NULL,
    -- Records in the file (as the validator counted them).
    records     integer NOT NULL,
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT file_purpose CHECK (purpose IN ('fine-tune')),
    CONSTRAINT file_filename_nonempty CHECK (filename <> '' AND length(filename) <= 255),
    CONSTRAINT file_size_matches CHECK (size = octet_length(bytes)),
    CONSTRAINT file_sha256_format CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    CONSTRAINT file_records_positive CHECK (records >= 1)
);
ALTER TABLE files ALTER COLUMN bytes SET STORAGE EXTERNAL;

-- API keys. The secret is shown once, at creation; only its sha256 is kept. Keys are revoked,
-- never deleted, so what a key did stays attributable to its name.
CREATE TABLE api_keys (
    id          bigserial PRIMARY KEY,
    name        text NOT NULL,
    role        text NOT NULL,
    sha256      text NOT NULL,
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz,
    CONSTRAINT api_keys_name_key UNIQUE (name),
    CONSTRAINT api_keys_sha256_key UNIQUE (sha256),
    CONSTRAINT api_key_name_format CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._-]*$' AND length(name) <= 100),
    CONSTRAINT api_key_role CHECK (role IN ('admin', 'trainer', 'inference')),
    CONSTRAINT api_key_sha256_format CHECK (sha256 ~ '^[0-9a-f]{64}$')
);

-- Servers cache the active keys: every change is announced on `lora_api_keys` (delivered at commit).
CREATE FUNCTION notify_api_keys_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('lora_api_keys', '');
    RETURN NULL;
END;
$$;
CREATE TRIGGER api_keys_notify AFTER INSERT OR UPDATE OR DELETE ON api_keys
    FOR EACH STATEMENT EXECUTE FUNCTION notify_api_keys_changed();

-- Jobs created over HTTP remember their files (a file in use by a queued or running job cannot be
-- deleted; once the job is over the file may go, and the job keeps its own copy of the bytes),
-- the caller's metadata, and the key that created them.
ALTER TABLE jobs ADD COLUMN training_file_id bigint REFERENCES files (id) ON DELETE SET NULL;
ALTER TABLE jobs ADD COLUMN validation_file_id bigint REFERENCES files (id) ON DELETE SET NULL;
ALTER TABLE jobs ADD COLUMN metadata jsonb;
ALTER TABLE jobs ADD COLUMN api_key text REFERENCES api_keys (name);
ALTER TABLE jobs ADD CONSTRAINT job_metadata_object CHECK (metadata IS NULL OR jsonb_typeof(metadata) = 'object');
CREATE INDEX jobs_training_file_idx ON jobs (training_file_id) WHERE training_file_id IS NOT NULL;
CREATE INDEX jobs_validation_file_idx ON jobs (validation_file_id) WHERE validation_file_id IS NOT NULL;

-- `Idempotency-Key` of POST /v1/fine_tuning/jobs, per API key ('' without keys): the same key with
-- the same request returns the first job; with another request it is refused.
CREATE TABLE idempotency_keys (
    api_key         text NOT NULL,
    key             text NOT NULL,
    request_sha256  text NOT NULL,
    job_id          bigint NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (api_key, key),
    CONSTRAINT idempotency_key_length CHECK (length(key) BETWEEN 1 AND 255),
    CONSTRAINT idempotency_request_sha256_format CHECK (request_sha256 ~ '^[0-9a-f]{64}$')
);

-- Which API key's name moved an alias: a server sets `lora.api_key` for the transaction that
-- moves it (NULL for the CLI and the job daemon, whose actor column says who they are).
ALTER TABLE alias_history ADD COLUMN api_key text REFERENCES api_keys (name)
    DEFAULT nullif(current_setting('lora.api_key', true), '');

"""####),
    ]
}
