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
