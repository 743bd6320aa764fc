-- enqueue_job: enqueue, also saying whether the call created the job (false: a live job
-- held the dedup key, and its id is returned). Python's producer calls it, so that
-- app.enqueue(..., on_conflict="raise") can refuse a duplicate; enqueue keeps its
-- signature, its grants and its answer, now as a thin wrapper.

CREATE FUNCTION {schema}.enqueue_job(
    task text,
    args json,
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
    due timestamptz;
    new_id bigint;
BEGIN
    PERFORM {schema}.check_enqueue(task, queue, priority, scheduled_at, delay, max_attempts);
    IF args IS NULL OR json_typeof(args) <> 'object' THEN
        RAISE invalid_parameter_value USING MESSAGE = format(
            'args must be a JSON object, got %s', coalesce(json_typeof(args), 'NULL'));
    END IF;
    IF octet_length(args::text) > max_args_bytes THEN
        RAISE program_limit_exceeded USING MESSAGE = format(
            'args are %s bytes of JSON, more than the limit of %s',
            octet_length(args::text), max_args_bytes);
    END IF;
    IF dedup_key IS NOT NULL AND (dedup_key = '' OR octet_length(dedup_key) > 1000) THEN
        RAISE invalid_parameter_value USING MESSAGE =
            'dedup_key must be a non-empty string of at most 1000 bytes of UTF-8';
    END IF;
    -- statement_timestamp(), not now(): a job enqueued late in a long caller transaction
    -- is still recent to the claims' window (see soniq/db/jobs/claims.py).
    due := coalesce(scheduled_at, statement_timestamp() + delay, statement_timestamp());

    -- The lane is registered only when new, so producers never queue behind each other.
    INSERT INTO {schema}.job_lanes AS l (queue, priority)
    SELECT enqueue_job.queue, enqueue_job.priority
    WHERE NOT EXISTS (SELECT 1 FROM {schema}.job_lanes AS x
                      WHERE x.queue = enqueue_job.queue AND x.priority = enqueue_job.priority)
    ON CONFLICT DO NOTHING;

    IF dedup_key IS NULL THEN
        new_id := nextval('{schema}.job_ids');
    ELSE
        -- The key's row is the claim on it. If a live job holds the key, its id is the
        -- answer; if that job finishes between the two statements, try again.
        FOR attempt IN 1..10 LOOP
            INSERT INTO {schema}.job_dedup AS d (dedup_key, job_id)
            VALUES (enqueue_job.dedup_key, nextval('{schema}.job_ids'))
            ON CONFLICT DO NOTHING
            RETURNING d.job_id INTO new_id;
            EXIT WHEN new_id IS NOT NULL;
            SELECT d.job_id INTO new_id FROM {schema}.job_dedup AS d
            WHERE d.dedup_key = enqueue_job.dedup_key;
            IF new_id IS NOT NULL THEN
                RETURN QUERY SELECT new_id, false;
                RETURN;
            END IF;
        END LOOP;
        IF new_id IS NULL THEN
            RAISE serialization_failure USING MESSAGE = format(
                'dedup_key %L kept changing owner during enqueue; try again', dedup_key);
        END IF;
    END IF;

    IF due <= statement_timestamp() THEN
        INSERT INTO {schema}.job_live (slot, id, task_name, queue, args, state, priority,
            max_attempts, scheduled_at, enqueued_at, dedup_key, contract_version,
            contract_fingerprint, trace_context)
        VALUES ({schema}.live_slot(), new_id, task, queue, args, 'queued', priority,
            max_attempts, due, statement_timestamp(), dedup_key, contract_version,
            contract_fingerprint, trace_context);
        -- in a caller's transaction, delivered at commit
        PERFORM pg_notify('{schema}.jobs', queue);
    ELSE  -- announced by the promoter when due
        INSERT INTO {schema}.job_scheduled (id, task_name, queue, args, priority,
            max_attempts, scheduled_at, enqueued_at, dedup_key, contract_version,
            contract_fingerprint, trace_context)
        VALUES (new_id, task, queue, args, priority, max_attempts, due, statement_timestamp(),
            dedup_key, contract_version, contract_fingerprint, trace_context);
    END IF;
    RETURN QUERY SELECT new_id, true;
END $$;

CREATE OR REPLACE FUNCTION {schema}.enqueue(
    task text,
    args json,
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
) RETURNS bigint
    LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT e.job_id FROM {schema}.enqueue_job(task, args, queue, priority, scheduled_at,
        delay, dedup_key, max_attempts, contract_version, contract_fingerprint,
        trace_context, max_args_bytes) AS e
$$;

REVOKE EXECUTE ON FUNCTION {schema}.enqueue_job(text, json, text, integer, timestamptz,
    interval, text, integer, integer, text, json, integer) FROM PUBLIC;

-- A role that could enqueue before this migration still can, through either function.
DO $$
DECLARE
    grantee text;
BEGIN
    FOR grantee IN
        SELECT DISTINCT a.grantee::regrole::text
        FROM pg_proc AS p, aclexplode(p.proacl) AS a
        WHERE p.oid = '{schema}.enqueue(text, json, text, integer, timestamptz, interval, '
                      'text, integer, integer, text, json, integer)'::regprocedure
          AND a.privilege_type = 'EXECUTE' AND a.grantee <> 0 AND a.grantee <> p.proowner
    LOOP
        EXECUTE format('GRANT EXECUTE ON FUNCTION {schema}.enqueue_job(text, json, text, '
                       'integer, timestamptz, interval, text, integer, integer, text, json, '
                       'integer) TO %s', grantee);
    END LOOP;
END $$;
