-- Jobs split by lifecycle, so that a long transaction (which pins the xmin horizon and
-- stops VACUUM) cannot make claims slow, and finished jobs never slow the queue:
--
--   job_live       queued-and-due and running jobs: a ring of 4 list partitions, one per
--                  10-second slot of the insert time; a drained partition is TRUNCATEd,
--                  which needs no VACUUM and so works whatever the horizon.
--   job_scheduled  queued jobs due later (delay, scheduled_at, retry backoff); promoted
--                  into job_live when due.
--   job_dead       dead letters, until replayed or purged.
--   job_history    done and cancelled jobs, append-only, one partition per UTC day;
--                  retention drops whole days.
--   job_dedup      the dedup keys held by live jobs, across job_live and job_scheduled.
--   job_lanes      every (queue, priority) ever enqueued: what claims iterate.
--   jobs           a view over all four, for reading by hand (never in long transactions:
--                  a transaction that reads the ring keeps it from being recycled).
-- docs/architecture.md describes which statement moves a job between them.

CREATE SEQUENCE {schema}.job_ids;
SELECT setval('{schema}.job_ids', coalesce((SELECT max(id) FROM {schema}.jobs), 0) + 1, false);

CREATE FUNCTION {schema}.live_slot() RETURNS smallint
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN (floor(extract(epoch FROM statement_timestamp()) / 10)::bigint % 4)::smallint;

CREATE TABLE {schema}.job_live (
    slot                 smallint    NOT NULL,
    id                   bigint      NOT NULL,
    task_name            text        NOT NULL,
    queue                text        NOT NULL,
    args                 json        NOT NULL,
    state                text        NOT NULL CHECK (state IN ('queued', 'running')),
    priority             integer     NOT NULL,
    attempts             integer     NOT NULL DEFAULT 0,
    max_attempts         integer     NOT NULL CHECK (max_attempts >= 1),
    scheduled_at         timestamptz NOT NULL,
    enqueued_at          timestamptz NOT NULL,
    started_at           timestamptz,
    claim_token          uuid,
    lease_expires_at     timestamptz,
    worker_id            text,
    error_reason         text,
    error_message        text,
    error_detail         json,
    dedup_key            text,
    contract_version     integer,
    contract_fingerprint text,
    trace_context        json,
    cancel_requested_at  timestamptz,
    -- a claim token exists exactly while the job runs: (id, claim_token) proves ownership
    CONSTRAINT job_live_token_iff_running CHECK ((state = 'running') = (claim_token IS NOT NULL)),
    PRIMARY KEY (id, slot)
) PARTITION BY LIST (slot);

DO $$
BEGIN
    -- Four, not more: every statement on job_live locks each partition (and its indexes),
    -- and past the backend's 16 fast-path lock slots that costs throughput.
    FOR slot IN 0..3 LOOP
        -- Autovacuum only as a fallback: TRUNCATE is how the ring gets its space back.
        EXECUTE format(
            'CREATE TABLE {schema}.job_live_%s PARTITION OF {schema}.job_live FOR VALUES IN (%s)
             WITH (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 5000,
                   autovacuum_vacuum_cost_delay = 0)', slot, slot);
    END LOOP;
END $$;

-- Claims seek each lane (queue, priority) at a recent scheduled_at, so the index entries
-- of jobs claimed long ago (dead, but not removable while the horizon is pinned) are
-- never walked; see JobClaims.
CREATE INDEX job_live_claim_idx ON {schema}.job_live (queue, priority, scheduled_at, id)
    WHERE state = 'queued';
CREATE INDEX job_live_lease_idx ON {schema}.job_live (lease_expires_at) WHERE state = 'running';
-- The few jobs app.cancel() asked to stop: found without reading the ring.
CREATE INDEX job_live_cancel_idx ON {schema}.job_live (id) WHERE cancel_requested_at IS NOT NULL;

CREATE TABLE {schema}.job_scheduled (
    id                   bigint      PRIMARY KEY,
    task_name            text        NOT NULL,
    queue                text        NOT NULL,
    args                 json        NOT NULL,
    priority             integer     NOT NULL,
    attempts             integer     NOT NULL DEFAULT 0,
    max_attempts         integer     NOT NULL CHECK (max_attempts >= 1),
    scheduled_at         timestamptz NOT NULL,
    enqueued_at          timestamptz NOT NULL,
    started_at           timestamptz,
    worker_id            text,
    error_reason         text,
    error_message        text,
    error_detail         json,
    dedup_key            text,
    contract_version     integer,
    contract_fingerprint text,
    trace_context        json
);
CREATE INDEX job_scheduled_due_idx ON {schema}.job_scheduled (scheduled_at);

CREATE TABLE {schema}.job_dead (
    id                   bigint      PRIMARY KEY,
    task_name            text        NOT NULL,
    queue                text        NOT NULL,
    args                 json        NOT NULL,
    priority             integer     NOT NULL,
    attempts             integer     NOT NULL,
    max_attempts         integer     NOT NULL,
    scheduled_at         timestamptz NOT NULL,
    enqueued_at          timestamptz NOT NULL,
    started_at           timestamptz,
    finished_at          timestamptz NOT NULL,
    worker_id            text,
    error_reason         text,
    error_message        text,
    error_detail         json,
    dedup_key            text,
    contract_version     integer,
    contract_fingerprint text,
    trace_context        json
);
CREATE INDEX job_dead_finished_idx ON {schema}.job_dead (finished_at);

CREATE TABLE {schema}.job_history (
    id                   bigint      NOT NULL,
    task_name            text        NOT NULL,
    queue                text        NOT NULL,
    args                 json        NOT NULL,
    state                text        NOT NULL CHECK (state IN ('done', 'cancelled')),
    priority             integer     NOT NULL,
    attempts             integer     NOT NULL,
    max_attempts         integer     NOT NULL,
    scheduled_at         timestamptz NOT NULL,
    enqueued_at          timestamptz NOT NULL,
    started_at           timestamptz,
    finished_at          timestamptz NOT NULL,
    worker_id            text,
    error_reason         text,
    error_message        text,
    error_detail         json,
    dedup_key            text,
    contract_version     integer,
    contract_fingerprint text,
    trace_context        json,
    result               json,
    cancel_requested_at  timestamptz
) PARTITION BY RANGE (finished_at);
CREATE INDEX job_history_id_idx ON {schema}.job_history (id);
CREATE INDEX job_history_queue_idx ON {schema}.job_history (queue, id);
CREATE INDEX job_history_task_idx ON {schema}.job_history (task_name, id);
CREATE INDEX job_history_cancelled_idx ON {schema}.job_history (id) WHERE state = 'cancelled';
CREATE INDEX job_history_finished_idx ON {schema}.job_history USING brin (finished_at);

-- Adds the day partitions of job_history from `first` for `days` days, those missing.
-- SECURITY DEFINER: workers keep days ahead without holding DDL rights of their own.
-- CREATE then ATTACH (SHARE UPDATE EXCLUSIVE on the parent), not CREATE ... PARTITION OF
-- (ACCESS EXCLUSIVE): a reader of job_history does not block it, nor it the reader.
CREATE FUNCTION {schema}.add_history_days(first date, days integer) RETURNS integer
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    day date;
    name text;
    added integer := 0;
BEGIN
    FOR i IN 0..days - 1 LOOP
        day := first + i;
        name := 'job_history_' || to_char(day, 'YYYYMMDD');
        CONTINUE WHEN to_regclass(format('{schema}.%I', name)) IS NOT NULL;
        EXECUTE format('CREATE TABLE {schema}.%I (LIKE {schema}.job_history INCLUDING DEFAULTS
                        INCLUDING CONSTRAINTS)', name);
        EXECUTE format('ALTER TABLE {schema}.job_history ATTACH PARTITION {schema}.%I
                        FOR VALUES FROM (%L) TO (%L)', name,
                       day::timestamp AT TIME ZONE 'UTC', (day + 1)::timestamp AT TIME ZONE 'UTC');
        added := added + 1;
    END LOOP;
    RETURN added;
END $$;

-- Drops the day partitions of job_history that ended before `cutoff`; a partition another
-- transaction is reading is left for the next call (lock_timeout), never waited for.
CREATE FUNCTION {schema}.drop_history_before(cutoff timestamptz) RETURNS integer
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    part record;
    dropped integer := 0;
BEGIN
    FOR part IN
        SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = '{schema}.job_history'::regclass
          AND c.relname ~ '^job_history_[0-9]{8}$'
          AND (to_date(substr(c.relname, 13), 'YYYYMMDD') + 1)::timestamp AT TIME ZONE 'UTC'
              <= cutoff
        ORDER BY c.relname
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

CREATE TABLE {schema}.job_dedup (
    dedup_key text   PRIMARY KEY,
    job_id    bigint NOT NULL
);

CREATE TABLE {schema}.job_lanes (
    queue    text    NOT NULL,
    priority integer NOT NULL,
    PRIMARY KEY (queue, priority)
);

-- The rows of the one jobs table move to where their state now lives.
SELECT {schema}.add_history_days(d::date, 1)
FROM (SELECT DISTINCT date_trunc('day', finished_at AT TIME ZONE 'UTC') AS d
      FROM {schema}.jobs WHERE state IN ('done', 'cancelled')) AS days;
SELECT {schema}.add_history_days((now() AT TIME ZONE 'UTC')::date - 1, 9);

INSERT INTO {schema}.job_live (slot, id, task_name, queue, args, state, priority, attempts,
    max_attempts, scheduled_at, enqueued_at, started_at, claim_token, lease_expires_at,
    worker_id, error_reason, error_message, error_detail, dedup_key, contract_version,
    contract_fingerprint, trace_context, cancel_requested_at)
SELECT {schema}.live_slot(), id, task_name, queue, args, state, priority, attempts,
    max_attempts, scheduled_at, enqueued_at, started_at, claim_token, lease_expires_at,
    worker_id, error_reason, error_message, error_detail, dedup_key, contract_version,
    contract_fingerprint, trace_context, cancel_requested_at
FROM {schema}.jobs WHERE state = 'running' OR (state = 'queued' AND scheduled_at <= now());

INSERT INTO {schema}.job_scheduled (id, task_name, queue, args, priority, attempts,
    max_attempts, scheduled_at, enqueued_at, started_at, worker_id, error_reason,
    error_message, error_detail, dedup_key, contract_version, contract_fingerprint,
    trace_context)
SELECT id, task_name, queue, args, priority, attempts, max_attempts, scheduled_at,
    enqueued_at, started_at, worker_id, error_reason, error_message, error_detail, dedup_key,
    contract_version, contract_fingerprint, trace_context
FROM {schema}.jobs WHERE state = 'queued' AND scheduled_at > now();

INSERT INTO {schema}.job_dead (id, task_name, queue, args, priority, attempts, max_attempts,
    scheduled_at, enqueued_at, started_at, finished_at, worker_id, error_reason,
    error_message, error_detail, dedup_key, contract_version, contract_fingerprint,
    trace_context)
SELECT id, task_name, queue, args, priority, attempts, max_attempts, scheduled_at,
    enqueued_at, started_at, coalesce(finished_at, now()), worker_id, error_reason,
    error_message, error_detail, dedup_key, contract_version, contract_fingerprint,
    trace_context
FROM {schema}.jobs WHERE state = 'dead';

INSERT INTO {schema}.job_history (id, task_name, queue, args, state, priority, attempts,
    max_attempts, scheduled_at, enqueued_at, started_at, finished_at, worker_id,
    error_reason, error_message, error_detail, dedup_key, contract_version,
    contract_fingerprint, trace_context, result, cancel_requested_at)
SELECT id, task_name, queue, args, state, priority, attempts, max_attempts, scheduled_at,
    enqueued_at, started_at, finished_at, worker_id, error_reason, error_message,
    error_detail, dedup_key, contract_version, contract_fingerprint, trace_context, result,
    cancel_requested_at
FROM {schema}.jobs WHERE state IN ('done', 'cancelled');

INSERT INTO {schema}.job_dedup (dedup_key, job_id)
SELECT dedup_key, id FROM {schema}.jobs
WHERE dedup_key IS NOT NULL AND state IN ('queued', 'running');

INSERT INTO {schema}.job_lanes (queue, priority)
SELECT DISTINCT queue, priority FROM {schema}.jobs WHERE state IN ('queued', 'running', 'dead');

DROP TABLE {schema}.jobs;
-- Statistics from the start: a never-analyzed table is assumed to hold ~1,000 rows, which
-- makes the claim's estimate (lanes x limit) large enough to be JIT-compiled.
ANALYZE {schema}.job_lanes;

CREATE VIEW {schema}.jobs AS
    SELECT id, task_name, queue, args, state, priority, attempts, max_attempts, scheduled_at,
           enqueued_at, started_at, NULL::timestamptz AS finished_at, claim_token,
           lease_expires_at, worker_id, error_reason, error_message, error_detail, dedup_key,
           contract_version, contract_fingerprint, NULL::json AS result, trace_context,
           cancel_requested_at
    FROM {schema}.job_live
    UNION ALL
    SELECT id, task_name, queue, args, 'queued', priority, attempts, max_attempts,
           scheduled_at, enqueued_at, started_at, NULL, NULL, NULL, worker_id, error_reason,
           error_message, error_detail, dedup_key, contract_version, contract_fingerprint,
           NULL, trace_context, NULL
    FROM {schema}.job_scheduled
    UNION ALL
    SELECT id, task_name, queue, args, 'dead', priority, attempts, max_attempts, scheduled_at,
           enqueued_at, started_at, finished_at, NULL, NULL, worker_id, error_reason,
           error_message, error_detail, dedup_key, contract_version, contract_fingerprint,
           NULL, trace_context, NULL
    FROM {schema}.job_dead
    UNION ALL
    SELECT id, task_name, queue, args, state, priority, attempts, max_attempts, scheduled_at,
           enqueued_at, started_at, finished_at, NULL, NULL, worker_id, error_reason,
           error_message, error_detail, dedup_key, contract_version, contract_fingerprint,
           result, trace_context, cancel_requested_at
    FROM {schema}.job_history;

-- A row inserted into the view goes where its state lives, as enqueue would put it, so
-- producers that write jobs with plain SQL keep working (see also docs/sql-api.md).
ALTER VIEW {schema}.jobs ALTER COLUMN id SET DEFAULT nextval('{schema}.job_ids');
ALTER VIEW {schema}.jobs ALTER COLUMN state SET DEFAULT 'queued';
ALTER VIEW {schema}.jobs ALTER COLUMN priority SET DEFAULT 0;
ALTER VIEW {schema}.jobs ALTER COLUMN attempts SET DEFAULT 0;
ALTER VIEW {schema}.jobs ALTER COLUMN scheduled_at SET DEFAULT statement_timestamp();
ALTER VIEW {schema}.jobs ALTER COLUMN enqueued_at SET DEFAULT statement_timestamp();

CREATE FUNCTION {schema}.jobs_insert() RETURNS trigger
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NEW.state IN ('queued', 'running') THEN
        INSERT INTO {schema}.job_lanes (queue, priority) VALUES (NEW.queue, NEW.priority)
        ON CONFLICT DO NOTHING;
        IF NEW.dedup_key IS NOT NULL THEN
            INSERT INTO {schema}.job_dedup (dedup_key, job_id) VALUES (NEW.dedup_key, NEW.id);
        END IF;
    END IF;
    IF NEW.state = 'running' OR (NEW.state = 'queued' AND NEW.scheduled_at <= now()) THEN
        INSERT INTO {schema}.job_live (slot, id, task_name, queue, args, state, priority,
            attempts, max_attempts, scheduled_at, enqueued_at, started_at, claim_token,
            lease_expires_at, worker_id, error_reason, error_message, error_detail, dedup_key,
            contract_version, contract_fingerprint, trace_context, cancel_requested_at)
        VALUES ({schema}.live_slot(), NEW.id, NEW.task_name, NEW.queue, NEW.args, NEW.state,
            NEW.priority, NEW.attempts, NEW.max_attempts, NEW.scheduled_at, NEW.enqueued_at,
            NEW.started_at, NEW.claim_token, NEW.lease_expires_at, NEW.worker_id,
            NEW.error_reason, NEW.error_message, NEW.error_detail, NEW.dedup_key,
            NEW.contract_version, NEW.contract_fingerprint, NEW.trace_context,
            NEW.cancel_requested_at);
        PERFORM pg_notify('{schema}.jobs', NEW.queue);
    ELSIF NEW.state = 'queued' THEN
        INSERT INTO {schema}.job_scheduled (id, task_name, queue, args, priority, attempts,
            max_attempts, scheduled_at, enqueued_at, started_at, worker_id, error_reason,
            error_message, error_detail, dedup_key, contract_version, contract_fingerprint,
            trace_context)
        VALUES (NEW.id, NEW.task_name, NEW.queue, NEW.args, NEW.priority, NEW.attempts,
            NEW.max_attempts, NEW.scheduled_at, NEW.enqueued_at, NEW.started_at, NEW.worker_id,
            NEW.error_reason, NEW.error_message, NEW.error_detail, NEW.dedup_key,
            NEW.contract_version, NEW.contract_fingerprint, NEW.trace_context);
    ELSIF NEW.state = 'dead' THEN
        INSERT INTO {schema}.job_dead (id, task_name, queue, args, priority, attempts,
            max_attempts, scheduled_at, enqueued_at, started_at, finished_at, worker_id,
            error_reason, error_message, error_detail, dedup_key, contract_version,
            contract_fingerprint, trace_context)
        VALUES (NEW.id, NEW.task_name, NEW.queue, NEW.args, NEW.priority, NEW.attempts,
            NEW.max_attempts, NEW.scheduled_at, NEW.enqueued_at, NEW.started_at,
            coalesce(NEW.finished_at, now()), NEW.worker_id, NEW.error_reason,
            NEW.error_message, NEW.error_detail, NEW.dedup_key, NEW.contract_version,
            NEW.contract_fingerprint, NEW.trace_context);
    ELSIF NEW.state IN ('done', 'cancelled') THEN
        NEW.finished_at := coalesce(NEW.finished_at, now());
        PERFORM {schema}.add_history_days((NEW.finished_at AT TIME ZONE 'UTC')::date, 1);
        INSERT INTO {schema}.job_history (id, task_name, queue, args, state, priority,
            attempts, max_attempts, scheduled_at, enqueued_at, started_at, finished_at,
            worker_id, error_reason, error_message, error_detail, dedup_key,
            contract_version, contract_fingerprint, trace_context, result,
            cancel_requested_at)
        VALUES (NEW.id, NEW.task_name, NEW.queue, NEW.args, NEW.state, NEW.priority,
            NEW.attempts, NEW.max_attempts, NEW.scheduled_at, NEW.enqueued_at, NEW.started_at,
            coalesce(NEW.finished_at, now()), NEW.worker_id, NEW.error_reason,
            NEW.error_message, NEW.error_detail, NEW.dedup_key, NEW.contract_version,
            NEW.contract_fingerprint, NEW.trace_context, NEW.result, NEW.cancel_requested_at);
    ELSE
        RAISE check_violation USING MESSAGE = format('job state %L is not one of queued, '
            'running, dead, done, cancelled', NEW.state);
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER jobs_insert INSTEAD OF INSERT ON {schema}.jobs
    FOR EACH ROW EXECUTE FUNCTION {schema}.jobs_insert();
