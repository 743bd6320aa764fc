-- Enqueue as two SQL functions: the one write path of every producer (Python's Enqueuer
-- calls them too) and the API for other languages (docs/sql-api.md). SECURITY DEFINER,
-- so a producer role needs EXECUTE on these and nothing else: it cannot read other jobs,
-- change them, or write a job that is not queued (docs/security.md).

-- The checks both functions make, with the messages Python's producer gives.
CREATE FUNCTION {schema}.check_enqueue(task text, queue text, priority integer,
                                       scheduled_at timestamptz, delay interval,
                                       max_attempts integer) RETURNS void
    LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF task IS NULL OR length(task) > 200 OR task !~ '^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$' THEN
        RAISE invalid_parameter_value USING MESSAGE = format('invalid task name %L: use dotted '
            'lowercase identifiers such as ''billing.send_invoice'' (letters, digits and '
            '''_'', each part starting with a letter, at most 200 characters)', task);
    END IF;
    IF queue IS NULL OR length(queue) > 200 OR queue !~ '^[a-z0-9][a-z0-9_.\-]*$' THEN
        RAISE invalid_parameter_value USING MESSAGE = format('invalid queue name %L: use '
            'lowercase letters, digits, ''_'', ''.'' and ''-'', starting with a letter or '
            'digit, at most 200 characters', queue);
    END IF;
    IF priority IS NULL THEN
        RAISE invalid_parameter_value USING MESSAGE = 'priority must be an integer, not NULL';
    END IF;
    IF max_attempts IS NULL OR max_attempts < 1 THEN
        RAISE invalid_parameter_value USING MESSAGE = format(
            'max_attempts must be at least 1, got %s', coalesce(max_attempts::text, 'NULL'));
    END IF;
    IF scheduled_at IS NOT NULL AND delay IS NOT NULL THEN
        RAISE invalid_parameter_value USING MESSAGE = 'pass either scheduled_at or delay, not both';
    END IF;
    IF scheduled_at IN ('infinity', '-infinity') THEN
        RAISE invalid_parameter_value USING MESSAGE = 'scheduled_at must be a finite time';
    END IF;
    IF delay < interval '0' OR delay > interval '1000 years' THEN
        RAISE invalid_parameter_value USING MESSAGE = format(
            'delay must be between 0 and 1,000 years, got %s', delay);
    END IF;
END $$;

CREATE FUNCTION {schema}.enqueue(
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
    SELECT enqueue.queue, enqueue.priority
    WHERE NOT EXISTS (SELECT 1 FROM {schema}.job_lanes AS x
                      WHERE x.queue = enqueue.queue AND x.priority = enqueue.priority)
    ON CONFLICT DO NOTHING;

    IF dedup_key IS NULL THEN
        new_id := nextval('{schema}.job_ids');
    ELSE
        -- The key's row is the claim on it. If a live job holds the key, its id is the
        -- answer; if that job finishes between the two statements, try again.
        FOR attempt IN 1..10 LOOP
            INSERT INTO {schema}.job_dedup AS d (dedup_key, job_id)
            VALUES (enqueue.dedup_key, nextval('{schema}.job_ids'))
            ON CONFLICT DO NOTHING
            RETURNING d.job_id INTO new_id;
            EXIT WHEN new_id IS NOT NULL;
            SELECT d.job_id INTO new_id FROM {schema}.job_dedup AS d
            WHERE d.dedup_key = enqueue.dedup_key;
            IF new_id IS NOT NULL THEN
                RETURN new_id;
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
    RETURN new_id;
END $$;

-- One job per element of args (same task and options), all or nothing; the ids in the
-- order of args.
CREATE FUNCTION {schema}.enqueue_many(
    task text,
    args json[],
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
    due timestamptz;
    bad record;
    ids bigint[];
BEGIN
    PERFORM {schema}.check_enqueue(task, queue, priority, scheduled_at, delay, max_attempts);
    IF args IS NULL THEN
        RAISE invalid_parameter_value USING MESSAGE = 'args must be an array of JSON objects, not NULL';
    END IF;
    SELECT a.n, json_typeof(a.x) AS kind, octet_length(a.x::text) AS bytes INTO bad
    FROM unnest(args) WITH ORDINALITY AS a(x, n)
    WHERE a.x IS NULL OR json_typeof(a.x) <> 'object' OR octet_length(a.x::text) > max_args_bytes
    ORDER BY a.n LIMIT 1;
    IF FOUND THEN
        IF bad.kind IS DISTINCT FROM 'object' THEN
            RAISE invalid_parameter_value USING MESSAGE = format(
                'args[%s] must be a JSON object, got %s', bad.n, coalesce(bad.kind, 'NULL'));
        END IF;
        RAISE program_limit_exceeded USING MESSAGE = format(
            'args[%s] is %s bytes of JSON, more than the limit of %s',
            bad.n, bad.bytes, max_args_bytes);
    END IF;
    due := coalesce(scheduled_at, statement_timestamp() + delay, statement_timestamp());

    INSERT INTO {schema}.job_lanes AS l (queue, priority)
    SELECT enqueue_many.queue, enqueue_many.priority
    WHERE NOT EXISTS (SELECT 1 FROM {schema}.job_lanes AS x
                      WHERE x.queue = enqueue_many.queue AND x.priority = enqueue_many.priority)
    ON CONFLICT DO NOTHING;

    IF due <= statement_timestamp() THEN
        WITH inserted AS (
            INSERT INTO {schema}.job_live (slot, id, task_name, queue, args, state, priority,
                max_attempts, scheduled_at, enqueued_at, contract_version,
                contract_fingerprint, trace_context)
            SELECT {schema}.live_slot(), nextval('{schema}.job_ids'), task, queue, a.x,
                'queued', priority, max_attempts, due, statement_timestamp(),
                contract_version, contract_fingerprint, trace_context
            FROM unnest(args) WITH ORDINALITY AS a(x, n) ORDER BY a.n
            RETURNING id
        )
        SELECT array_agg(id ORDER BY id) INTO ids FROM inserted;
        PERFORM pg_notify('{schema}.jobs', queue);
    ELSE
        WITH inserted AS (
            INSERT INTO {schema}.job_scheduled (id, task_name, queue, args, priority,
                max_attempts, scheduled_at, enqueued_at, contract_version,
                contract_fingerprint, trace_context)
            SELECT nextval('{schema}.job_ids'), task, queue, a.x, priority, max_attempts,
                due, statement_timestamp(), contract_version, contract_fingerprint,
                trace_context
            FROM unnest(args) WITH ORDINALITY AS a(x, n) ORDER BY a.n
            RETURNING id
        )
        SELECT array_agg(id ORDER BY id) INTO ids FROM inserted;
    END IF;
    RETURN coalesce(ids, '{}');
END $$;

-- Functions are executable by PUBLIC unless revoked; these are granted by role
-- (soniq setup --grant-producer/--grant-worker).
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA {schema} FROM PUBLIC;
