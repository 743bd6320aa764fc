-- Dead letters by task and reason, newest first: what the console's dead-letter page groups,
-- lists and counts, and what its "replay all matching" walks. Dead letters are written
-- rarely (once per job that gives up), so the index costs the queue nothing.
CREATE INDEX job_dead_task_reason_idx ON {schema}.job_dead (task_name, error_reason, id);
