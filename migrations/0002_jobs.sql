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
