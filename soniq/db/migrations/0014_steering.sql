-- Steering queues (app.configure_queue, `soniq queues`): settings that hold for every
-- worker at once, because claims read them in the database.
--
--   queue_settings  one row per queue that has any setting; a queue without a row is
--                   claimed by the plain claim, exactly as before this migration. A row is
--                   also the lock that serializes the limited claims of its queue, which is
--                   what makes a limit exact across worker processes and hosts.
--   queue_starts    the start times of the recent jobs of rate-limited queues (by
--                   partition), kept for one rate period: the sliding window they are
--                   counted in.

CREATE TABLE {schema}.queue_settings (
    queue        text        PRIMARY KEY,
    paused       boolean     NOT NULL DEFAULT false,
    -- at most this many running: per partition when partition_by is set, else per queue
    concurrency  integer     CHECK (concurrency >= 1),
    -- at most rate_limit starts in any rate_period (per partition, as concurrency)
    rate_limit   integer     CHECK (rate_limit >= 1),
    rate_period  interval    CHECK (rate_period > interval '0'),
    partition_by text[]      NOT NULL DEFAULT '{}',
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CHECK ((rate_limit IS NULL) = (rate_period IS NULL)),
    CHECK (cardinality(partition_by) = 0 OR concurrency IS NOT NULL OR rate_limit IS NOT NULL)
);

CREATE TABLE {schema}.queue_starts (
    queue      text        NOT NULL,
    partition  text        NOT NULL,
    started_at timestamptz NOT NULL
);
CREATE INDEX queue_starts_queue_idx ON {schema}.queue_starts (queue, started_at);

-- The limited claim of `claim_queue` (soniq.db.jobs.steered, which explains it), in one
-- call: one round trip, one transaction. Every statement of a VOLATILE function takes a new
-- snapshot, so the claim, run once the queue's settings row is locked, sees every claim
-- that held the lock before. A job is changed as the plain claim changes it
-- (soniq.db.jobs.claims.CLAIM_SET and CLAIMABLE): keep them alike. Returns the claimed
-- jobs; then, when the queue has a rate and fewer than claim_limit came, one row with
-- only rate_wait: the seconds until the rate lets another job start (NULL: no start in
-- the window, so the rate is not why).
CREATE FUNCTION {schema}.claim_limited(
    claim_queue text,
    claim_limit integer,
    scan integer,
    registered_tasks text[],
    registered_max_attempts integer[],
    lease interval,
    worker text,
    versioned_tasks text[],
    versions integer[]
) RETURNS TABLE (id bigint, slot smallint, task_name text, queue text, args_json json,
    attempts integer, max_attempts integer, enqueued_at timestamptz, claim_token uuid,
    contract_version integer, queue_wait float8, trace_context text, rate_wait float8)
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    s record;
    started timestamptz;  -- the jobs' started_at and their recorded start: after the lock
    taken integer;
BEGIN
    SELECT q.concurrency, q.rate_limit, q.rate_period, q.partition_by,
           cardinality(q.partition_by) > 0 AS partitioned INTO s
    FROM {schema}.queue_settings AS q WHERE q.queue = claim_queue AND NOT q.paused
    FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RETURN;  -- paused, or its settings were removed
    END IF;
    started := clock_timestamp();
    RETURN QUERY
    WITH running AS (  -- per partition: the values of the partition_by args keys
        SELECT CASE WHEN s.partitioned THEN
                   (SELECT json_agg(j.args -> p.key ORDER BY p.n)::text
                    FROM unnest(s.partition_by) WITH ORDINALITY AS p(key, n)) ELSE '' END
               AS key, count(*) AS n
        FROM {schema}.job_live AS j  -- through job_live_lease_idx: every running job
        WHERE j.state = 'running' AND j.queue = claim_queue
        GROUP BY 1
    ),
    recent AS (
        SELECT q.partition AS key, count(*) AS n
        FROM {schema}.queue_starts AS q
        WHERE s.rate_limit IS NOT NULL AND q.queue = claim_queue
          AND q.started_at > started - s.rate_period
        GROUP BY 1
    ),
    candidates AS (
        SELECT c.id, c.slot, c.priority, c.scheduled_at, k.key,
               row_number() OVER (PARTITION BY k.key
                                  ORDER BY c.priority DESC, c.scheduled_at, c.id) AS rank
        FROM {schema}.job_lanes AS l CROSS JOIN LATERAL (
            SELECT c.id, c.slot, c.priority, c.scheduled_at, c.args
            FROM {schema}.job_live AS c
            WHERE c.queue = l.queue AND c.priority = l.priority AND c.state = 'queued'
              AND c.scheduled_at <= now() AND c.cancel_requested_at IS NULL
              AND (c.contract_version IS NULL OR c.contract_version <= coalesce(
                    (SELECT v.version FROM unnest(versioned_tasks, versions)
                                           AS v(task_name, version)
                     WHERE v.task_name = c.task_name),
                    c.contract_version))
            ORDER BY c.scheduled_at, c.id
            LIMIT scan
        ) AS c
        CROSS JOIN LATERAL (
            SELECT CASE WHEN s.partitioned THEN
                       (SELECT json_agg(c.args -> p.key ORDER BY p.n)::text
                        FROM unnest(s.partition_by) WITH ORDINALITY AS p(key, n)) ELSE '' END
                   AS key) AS k
        WHERE l.queue = claim_queue
    ),
    chosen AS (
        SELECT c.id, c.slot FROM candidates AS c
        LEFT JOIN running AS r ON r.key = c.key
        LEFT JOIN recent AS q ON q.key = c.key
        WHERE (s.concurrency IS NULL OR c.rank <= s.concurrency - coalesce(r.n, 0))
          AND (s.rate_limit IS NULL OR c.rank <= s.rate_limit - coalesce(q.n, 0))
        ORDER BY c.priority DESC, c.scheduled_at, c.id
        LIMIT claim_limit
    ),
    claimed AS (
        UPDATE {schema}.job_live AS j SET
            state = 'running',
            attempts = j.attempts + 1,
            max_attempts = coalesce(
                (SELECT r.max_attempts FROM unnest(registered_tasks, registered_max_attempts)
                                            AS r(task_name, max_attempts)
                 WHERE r.task_name = j.task_name),
                j.max_attempts),
            claim_token = gen_random_uuid(),
            started_at = started,
            lease_expires_at = now() + lease,
            worker_id = worker
        WHERE j.id = ANY(ARRAY(SELECT c.id FROM chosen AS c))
          AND j.slot = ANY(ARRAY(SELECT c.slot FROM chosen AS c))
          AND j.state = 'queued'
        RETURNING j.id, j.slot, j.task_name, j.queue, j.args, j.attempts, j.max_attempts,
                  j.enqueued_at, j.claim_token, j.contract_version,
                  extract(epoch FROM now() - j.scheduled_at)::float8 AS queue_wait,
                  j.trace_context::text AS trace_context
    ),
    recorded AS (
        INSERT INTO {schema}.queue_starts (queue, partition, started_at)
        SELECT claim_queue, CASE WHEN s.partitioned THEN
                   (SELECT json_agg(c.args -> p.key ORDER BY p.n)::text
                    FROM unnest(s.partition_by) WITH ORDINALITY AS p(key, n)) ELSE '' END,
               started
        FROM claimed AS c WHERE s.rate_limit IS NOT NULL
    ),
    forgotten AS (  -- starts older than the period no longer count
        DELETE FROM {schema}.queue_starts AS q
        WHERE s.rate_limit IS NOT NULL AND q.queue = claim_queue
          AND q.started_at <= started - s.rate_period
    )
    SELECT c.*, NULL::float8 FROM claimed AS c;
    GET DIAGNOSTICS taken = ROW_COUNT;
    IF s.rate_limit IS NOT NULL AND taken < claim_limit THEN
        RETURN QUERY
        SELECT NULL::bigint, NULL::smallint, NULL, NULL, NULL::json, NULL::integer,
               NULL::integer, NULL::timestamptz, NULL::uuid, NULL::integer, NULL::float8,
               NULL, extract(epoch FROM min(q.started_at) + s.rate_period - clock_timestamp())
                     ::float8
        FROM {schema}.queue_starts AS q
        WHERE q.queue = claim_queue AND q.started_at > clock_timestamp() - s.rate_period;
    END IF;
END $$;

-- Jobs that wait for other jobs (enqueue(..., after => ARRAY[...])):
--
--   job_waiting       queued jobs that wait for a parent not yet done: never claimed. When
--                     the last parent is done the job moves to job_live (or job_scheduled,
--                     if due later); when a parent ends dead or cancelled it moves to
--                     job_history as cancelled, naming the parent, and so do the jobs
--                     that wait for it in turn.
--   job_dependencies  (child, parent) for every parent a waiting job still waits for.

CREATE TABLE {schema}.job_waiting (
    LIKE {schema}.job_scheduled INCLUDING DEFAULTS INCLUDING CONSTRAINTS,
    PRIMARY KEY (id)
);
CREATE INDEX job_waiting_queue_idx ON {schema}.job_waiting (queue, id);  -- soniq status

CREATE TABLE {schema}.job_dependencies (
    child_id  bigint NOT NULL,
    parent_id bigint NOT NULL,
    PRIMARY KEY (child_id, parent_id)
);
CREATE INDEX job_dependencies_parent_idx ON {schema}.job_dependencies (parent_id);

CREATE OR REPLACE VIEW {schema}.jobs AS
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
    FROM {schema}.job_history
    UNION ALL  -- waiting for their parents: queued, not claimable yet
    SELECT id, task_name, queue, args, 'queued', priority, attempts, max_attempts,
           scheduled_at, enqueued_at, started_at, NULL, NULL, NULL, worker_id, error_reason,
           error_message, error_detail, dedup_key, contract_version, contract_fingerprint,
           NULL, trace_context, NULL
    FROM {schema}.job_waiting;

-- Settles the jobs waiting for `parents`, which ended as `ended` says ('done', 'dead' or
-- 'cancelled', one per parent; NULL: as job_history and job_dead say), and returns how
-- many jobs it settled. Every statement that ends a job calls it with the outcome it
-- writes (a statement does not see its own rows of job_history here). A VOLATILE
-- function: each statement below sees what committed before it began, so an outcome
-- statement that had to wait for a child's commit (see dependency_committed) sees the
-- child's dependency.
CREATE FUNCTION {schema}.settle_children(parents bigint[], ended text[] DEFAULT NULL)
    RETURNS integer
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    children bigint[];
    cancelled integer;
    released integer;
BEGIN
    SELECT array_agg(DISTINCT d.child_id) INTO children FROM {schema}.job_dependencies AS d
    WHERE d.parent_id = ANY(parents);
    IF children IS NULL THEN
        RETURN 0;
    END IF;
    IF ended IS NULL THEN
        SELECT array_agg(p.id), array_agg(p.state) INTO parents, ended FROM (
            SELECT h.id, h.state FROM {schema}.job_history AS h WHERE h.id = ANY(parents)
            UNION ALL
            SELECT x.id, 'dead' FROM {schema}.job_dead AS x WHERE x.id = ANY(parents)) AS p;
    END IF;
    -- Two parents of one child ending at once: the second settler waits for the first,
    -- then sees its dependency gone.
    PERFORM FROM {schema}.job_waiting WHERE id = ANY(children) ORDER BY id FOR UPDATE;

    DELETE FROM {schema}.job_dependencies AS d
    USING unnest(parents, ended) AS e(id, state)
    WHERE d.child_id = ANY(children) AND d.parent_id = e.id AND e.state = 'done';

    -- A parent dead or cancelled cancels its children, and theirs, each naming its parent.
    WITH RECURSIVE doomed (id, parent, how) AS (
        SELECT d.child_id, d.parent_id, e.state FROM {schema}.job_dependencies AS d
        JOIN unnest(parents, ended) AS e(id, state) ON e.id = d.parent_id
        WHERE d.child_id = ANY(children) AND e.state IN ('dead', 'cancelled')
        UNION
        SELECT d.child_id, d.parent_id, 'cancelled' FROM {schema}.job_dependencies AS d
        JOIN doomed ON d.parent_id = doomed.id
    ),
    first AS (SELECT DISTINCT ON (id) id, parent, how FROM doomed ORDER BY id, parent),
    gone AS (
        DELETE FROM {schema}.job_waiting AS w USING first AS f WHERE w.id = f.id
        RETURNING w.*, f.parent, f.how
    ),
    history AS (
        INSERT INTO {schema}.job_history (id, task_name, queue, args, state, priority,
            attempts, max_attempts, scheduled_at, enqueued_at, started_at, finished_at,
            worker_id, error_reason, error_message, error_detail, dedup_key,
            contract_version, contract_fingerprint, trace_context, result)
        SELECT id, task_name, queue, args, 'cancelled', priority, attempts, max_attempts,
            scheduled_at, enqueued_at, started_at, now(), worker_id, 'parent failed',
            format('parent job %s ended %s', parent, how), NULL, dedup_key,
            contract_version, contract_fingerprint, trace_context, NULL
        FROM gone
    ),
    waits AS (DELETE FROM {schema}.job_dependencies AS d USING gone WHERE d.child_id = gone.id),
    keys AS (
        DELETE FROM {schema}.job_dedup AS k USING gone
        WHERE gone.dedup_key IS NOT NULL AND k.dedup_key = gone.dedup_key AND k.job_id = gone.id
    )
    SELECT count(pg_notify('{schema}.results', id::text)) INTO cancelled FROM gone;

    -- Nothing left to wait for: claimable, with a due time the recent claim looks at
    -- (at most 2.5 s ago, as soniq.db.jobs.claims.REQUEUE_AT_MOST_AGO).
    WITH free AS (
        DELETE FROM {schema}.job_waiting AS w
        WHERE w.id = ANY(children)
          AND NOT EXISTS (SELECT FROM {schema}.job_dependencies AS d WHERE d.child_id = w.id)
        RETURNING w.*
    ),
    live AS (
        INSERT INTO {schema}.job_live (slot, id, task_name, queue, args, state, priority,
            attempts, max_attempts, scheduled_at, enqueued_at, started_at, worker_id,
            error_reason, error_message, error_detail, dedup_key, contract_version,
            contract_fingerprint, trace_context)
        SELECT {schema}.live_slot(), id, task_name, queue, args, 'queued', priority,
            attempts, max_attempts, greatest(scheduled_at, now() - interval '2.5 seconds'),
            enqueued_at, started_at, worker_id, error_reason, error_message, error_detail,
            dedup_key, contract_version, contract_fingerprint, trace_context
        FROM free WHERE scheduled_at <= now()
        RETURNING queue
    ),
    later AS (
        INSERT INTO {schema}.job_scheduled
        SELECT * FROM free WHERE scheduled_at > now()
    )
    SELECT count(*) INTO released FROM (SELECT pg_notify('{schema}.jobs', queue) FROM live) AS n;
    RETURN cancelled + released;
END $$;

-- Makes the jobs `ids` (just enqueued by the caller) wait for every job of `parents`.
-- Called only by the enqueue functions below, never granted: it moves any queued job.
CREATE FUNCTION {schema}.wait_for_parents(ids bigint[], parents bigint[]) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    missing bigint;
BEGIN
    IF parents IS NULL OR array_position(parents, NULL) IS NOT NULL THEN
        RAISE invalid_parameter_value USING MESSAGE = 'after must be an array of job ids without NULL';
    END IF;
    IF ids && parents THEN
        RAISE invalid_parameter_value USING MESSAGE = 'a job cannot wait for itself (after)';
    END IF;
    FOR attempt IN 1..3 LOOP  -- a parent moving between tables meanwhile is looked for again
        SELECT p INTO missing FROM unnest(parents) AS p
        WHERE NOT EXISTS (SELECT FROM {schema}.job_live AS j WHERE j.id = p)
          AND NOT EXISTS (SELECT FROM {schema}.job_scheduled AS j WHERE j.id = p)
          AND NOT EXISTS (SELECT FROM {schema}.job_waiting AS j WHERE j.id = p)
          AND NOT EXISTS (SELECT FROM {schema}.job_dead AS j WHERE j.id = p)
          AND NOT EXISTS (SELECT FROM {schema}.job_history AS j WHERE j.id = p)
        LIMIT 1;
        EXIT WHEN missing IS NULL;
    END LOOP;
    IF missing IS NOT NULL THEN
        RAISE foreign_key_violation USING MESSAGE = format(
            'after names job %s, and there is no job with that id', missing);
    END IF;
    WITH moved AS (
        DELETE FROM {schema}.job_live WHERE id = ANY(ids) AND state = 'queued'
        RETURNING id, task_name, queue, args, priority, attempts, max_attempts, scheduled_at,
            enqueued_at, started_at, worker_id, error_reason, error_message, error_detail,
            dedup_key, contract_version, contract_fingerprint, trace_context
    )
    INSERT INTO {schema}.job_waiting SELECT * FROM moved;
    WITH moved AS (DELETE FROM {schema}.job_scheduled WHERE id = ANY(ids) RETURNING *)
    INSERT INTO {schema}.job_waiting SELECT * FROM moved;
    INSERT INTO {schema}.job_dependencies (child_id, parent_id)
    SELECT DISTINCT i, p FROM unnest(ids) AS i, unnest(parents) AS p
    ON CONFLICT DO NOTHING;
    -- parents that already ended settle their new children now
    PERFORM {schema}.settle_children(parents);
END $$;

-- When the transaction that made a job wait for `parent_id` commits: if the parent still
-- lives, its row is locked until the commit, so that the statement that will end it waits
-- for the commit and then sees this dependency; if it ended meanwhile (its outcome's
-- settle_children could not see an uncommitted dependency), its children are settled now.
-- The lock lasts from this trigger to the commit, microseconds, however long the
-- transaction was open.
CREATE FUNCTION {schema}.dependency_committed() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    FOR attempt IN 1..2 LOOP  -- a parent moving between the tables is looked for again
        PERFORM FROM {schema}.job_live WHERE id = NEW.parent_id FOR KEY SHARE;
        IF FOUND THEN RETURN NULL; END IF;
        PERFORM FROM {schema}.job_scheduled WHERE id = NEW.parent_id FOR KEY SHARE;
        IF FOUND THEN RETURN NULL; END IF;
        PERFORM FROM {schema}.job_waiting WHERE id = NEW.parent_id FOR KEY SHARE;
        IF FOUND THEN RETURN NULL; END IF;
    END LOOP;
    PERFORM {schema}.settle_children(ARRAY[NEW.parent_id]);
    RETURN NULL;
END $$;

CREATE CONSTRAINT TRIGGER job_dependencies_committed AFTER INSERT ON {schema}.job_dependencies
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION {schema}.dependency_committed();

-- enqueue_job, then the job waits for `after` (when the call created it).
CREATE FUNCTION {schema}.enqueue_job_after(
    task text,
    args json,
    after bigint[],
    queue text DEFAULT 'default',
    priority integer DEFAULT 0,
    scheduled_at timestamptz DEFAULT NULL,
    delay interval DEFAULT NULL,
    dedup_key text DEFAULT NULL,
    max_attempts integer DEFAULT 4,
    contract_version integer DEFAULT NULL,
    contract_fingerprint text DEFAULT NULL,
    trace_context json DEFAULT NULL,
    max_args_bytes integer DEFAULT 1048576
) RETURNS TABLE (job_id bigint, created boolean)
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    made record;
BEGIN
    SELECT e.job_id, e.created INTO made FROM {schema}.enqueue_job(task, args, queue,
        priority, scheduled_at, delay, dedup_key, max_attempts, contract_version,
        contract_fingerprint, trace_context, max_args_bytes) AS e;
    IF made.created THEN
        PERFORM {schema}.wait_for_parents(ARRAY[made.job_id], after);
    END IF;
    RETURN QUERY SELECT made.job_id, made.created;
END $$;

-- enqueue_many, then every job of the batch waits for `after`.
CREATE FUNCTION {schema}.enqueue_many_after(
    task text,
    args json[],
    after bigint[],
    queue text DEFAULT 'default',
    priority integer DEFAULT 0,
    scheduled_at timestamptz DEFAULT NULL,
    delay interval DEFAULT NULL,
    max_attempts integer DEFAULT 4,
    contract_version integer DEFAULT NULL,
    contract_fingerprint text DEFAULT NULL,
    trace_context json DEFAULT NULL,
    max_args_bytes integer DEFAULT 1048576
) RETURNS bigint[]
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    ids bigint[];
BEGIN
    ids := {schema}.enqueue_many(task, args, queue, priority, scheduled_at, delay,
        max_attempts, contract_version, contract_fingerprint, trace_context, max_args_bytes);
    IF cardinality(ids) > 0 THEN
        PERFORM {schema}.wait_for_parents(ids, after);
    END IF;
    RETURN ids;
END $$;

REVOKE EXECUTE ON FUNCTION {schema}.claim_limited(text, integer, integer, text[], integer[],
    interval, text, text[], integer[]) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION {schema}.settle_children(bigint[], text[]) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION {schema}.wait_for_parents(bigint[], bigint[]) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION {schema}.dependency_committed() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION {schema}.enqueue_job_after(text, json, bigint[], text, integer,
    timestamptz, interval, text, integer, integer, text, json, integer) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION {schema}.enqueue_many_after(text, json[], bigint[], text, integer,
    timestamptz, interval, integer, integer, text, json, integer) FROM PUBLIC;

-- Roles granted before this migration keep working: producers (who may run enqueue_job)
-- may enqueue with `after`; workers (who may run add_history_days) settle children when
-- they record outcomes, and claim from queues with limits.
DO $$
DECLARE
    grantee text;
BEGIN
    FOR grantee IN
        SELECT DISTINCT a.grantee::regrole::text
        FROM pg_proc AS p, aclexplode(p.proacl) AS a
        WHERE p.oid = '{schema}.enqueue_job(text, json, text, integer, timestamptz, interval, '
                      'text, integer, integer, text, json, integer)'::regprocedure
          AND a.privilege_type = 'EXECUTE' AND a.grantee <> 0 AND a.grantee <> p.proowner
    LOOP
        EXECUTE format('GRANT EXECUTE ON FUNCTION {schema}.enqueue_job_after(text, json, '
                       'bigint[], text, integer, timestamptz, interval, text, integer, '
                       'integer, text, json, integer) TO %s', grantee);
        EXECUTE format('GRANT EXECUTE ON FUNCTION {schema}.enqueue_many_after(text, json[], '
                       'bigint[], text, integer, timestamptz, interval, integer, integer, '
                       'text, json, integer) TO %s', grantee);
    END LOOP;
    FOR grantee IN
        SELECT DISTINCT a.grantee::regrole::text
        FROM pg_proc AS p, aclexplode(p.proacl) AS a
        WHERE p.oid = '{schema}.add_history_days(date, integer)'::regprocedure
          AND a.privilege_type = 'EXECUTE' AND a.grantee <> 0 AND a.grantee <> p.proowner
    LOOP
        EXECUTE format('GRANT EXECUTE ON FUNCTION {schema}.settle_children(bigint[], text[]) '
                       'TO %s',
                       grantee);
        EXECUTE format('GRANT EXECUTE ON FUNCTION {schema}.claim_limited(text, integer, '
                       'integer, text[], integer[], interval, text, text[], integer[]) TO %s',
                       grantee);
    END LOOP;
END $$;
