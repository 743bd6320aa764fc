-- What the console and `soniq status` read, kept so that reading it stays cheap.
--
-- Every failed attempt of a job, kept beside the job: its worker, when it was claimed and
-- when it ended, what the job became (queued again, dead or cancelled) and its error with
-- the traceback. The job row keeps only the last error; the console's job page and
-- app.get_attempts() show them all.
--
-- Written by the statement that records the attempt's outcome (completer, drain, rescuer),
-- fenced like it, so an attempt row exists exactly when its outcome was recorded. A success
-- writes no attempt row (the job's own row says how its last attempt ended): the success
-- path's only new write is one count row per queue and batch, below.
--
-- One partition per UTC day of finished_at, kept and dropped with job_history's days
-- (add_history_days, drop_history_before), so retention drops a whole day here too.
CREATE TABLE {schema}.job_attempts (
    job_id        bigint      NOT NULL,
    attempt       integer     NOT NULL,
    worker_id     text,
    started_at    timestamptz,
    finished_at   timestamptz NOT NULL,
    outcome       text        NOT NULL CHECK (outcome IN ('queued', 'dead', 'cancelled')),
    error_reason  text        NOT NULL,
    error_message text        NOT NULL,
    error_detail  json
) PARTITION BY RANGE (finished_at);
CREATE INDEX job_attempts_job_idx ON {schema}.job_attempts (job_id, attempt);

-- Jobs done per queue and minute, one row per outcome statement that recorded any (the
-- completer's batch): what `soniq status` sums for "done in the last hour" and the
-- console charts, reading one row per batch instead of one per job. Append-only (a counter
-- updated in place would leave a dead version per batch behind a pinned xmin horizon);
-- BRIN, because rows arrive in minute order and the index should cost the batch ~nothing.
CREATE TABLE {schema}.job_done_counts (
    minute timestamptz NOT NULL,
    queue  text        NOT NULL,
    done   integer     NOT NULL
) PARTITION BY RANGE (minute);
CREATE INDEX job_done_counts_minute_idx ON {schema}.job_done_counts USING brin (minute);
-- The same counts summed per queue and minute once the minute is over (by the workers'
-- retention service, a few minutes behind): what is read for every minute summed here, so
-- "done in the last hour" reads at most 60 rows per queue and the few minutes' batches
-- not summed yet, however many jobs finished.
CREATE TABLE {schema}.job_done_minutes (
    minute timestamptz NOT NULL,
    queue  text        NOT NULL,
    done   bigint      NOT NULL,
    PRIMARY KEY (minute, queue)
) PARTITION BY RANGE (minute);

-- What the console's overview counts per queue, and what list_jobs(queue=..., task_name=...)
-- walks newest first: dead letters are written rarely, and a job waits in job_scheduled
-- only when delayed or retrying, so these indexes cost the queue's hot path nothing.
CREATE INDEX job_dead_queue_idx ON {schema}.job_dead (queue, id);
CREATE INDEX job_dead_task_idx ON {schema}.job_dead (task_name, id);
CREATE INDEX job_scheduled_queue_idx ON {schema}.job_scheduled (queue, id);

-- The day tables kept by retention: job_history's, job_attempts' and the done counts'.
CREATE OR REPLACE FUNCTION {schema}.add_history_days(first date, days integer) RETURNS integer
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    day date;
    parent text;
    name text;
    added integer := 0;
BEGIN
    FOR i IN 0..days - 1 LOOP
        day := first + i;
        FOREACH parent IN ARRAY ARRAY['job_history', 'job_attempts', 'job_done_counts',
                                      'job_done_minutes'] LOOP
            name := parent || '_' || to_char(day, 'YYYYMMDD');
            CONTINUE WHEN to_regclass(format('{schema}.%I', name)) IS NOT NULL;
            EXECUTE format('CREATE TABLE {schema}.%I (LIKE {schema}.%I INCLUDING DEFAULTS
                            INCLUDING CONSTRAINTS)', name, parent);
            EXECUTE format('ALTER TABLE {schema}.%I ATTACH PARTITION {schema}.%I
                            FOR VALUES FROM (%L) TO (%L)', parent, name,
                           day::timestamp AT TIME ZONE 'UTC',
                           (day + 1)::timestamp AT TIME ZONE 'UTC');
            added := added + 1;
        END LOOP;
    END LOOP;
    RETURN added;
END $$;

CREATE OR REPLACE FUNCTION {schema}.drop_history_before(cutoff timestamptz) RETURNS integer
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    part record;
    dropped integer := 0;
BEGIN
    FOR part IN
        SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent IN ('{schema}.job_history'::regclass, '{schema}.job_attempts'::regclass,
                              '{schema}.job_done_counts'::regclass,
                              '{schema}.job_done_minutes'::regclass)
          AND c.relname ~ '^job_(history|attempts|done_counts|done_minutes)_[0-9]{8}$'
          AND (to_date(right(c.relname, 8), 'YYYYMMDD') + 1)::timestamp AT TIME ZONE 'UTC'
              <= cutoff
        ORDER BY right(c.relname, 8), c.relname
    LOOP
        BEGIN
            SET LOCAL lock_timeout = '50ms';
            EXECUTE format('DROP TABLE {schema}.%I', part.relname);
            dropped := dropped + 1;
        EXCEPTION WHEN lock_not_available THEN
            RETURN dropped;
        END;
    END LOOP;
    RETURN dropped;
END $$;

-- A day for the new tables wherever job_history has one, and the days ahead.
SELECT {schema}.add_history_days(to_date(right(c.relname, 8), 'YYYYMMDD'), 1)
FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = '{schema}.job_history'::regclass AND c.relname ~ '^job_history_[0-9]{8}$';
SELECT {schema}.add_history_days((now() AT TIME ZONE 'UTC')::date - 1, 9);
INSERT INTO {schema}.job_done_counts (minute, queue, done)
SELECT date_trunc('minute', finished_at), queue, count(*) FROM {schema}.job_history
WHERE state = 'done' AND finished_at >= date_trunc('minute', now()) - interval '59 minutes'
GROUP BY 1, 2;
