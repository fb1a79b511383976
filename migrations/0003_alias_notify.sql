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
