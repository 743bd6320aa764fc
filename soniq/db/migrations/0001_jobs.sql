-- Jobs, their dead letters and the indexes the worker relies on.
-- {schema} is replaced by the checked schema identifier before this runs.

CREATE TABLE {schema}.jobs (
    id                   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    task_name            text        NOT NULL,
    queue                text        NOT NULL,
    -- json, not jsonb: the text is stored verbatim, so args round-trip exactly
    -- (jsonb would rewrite numbers such as 1e20 and refuse "\u0000").
    args                 json        NOT NULL,
    state                text        NOT NULL DEFAULT 'queued'
        CHECK (state IN ('queued', 'running', 'done', 'dead', 'cancelled')),
    priority             integer     NOT NULL DEFAULT 0,
    attempts             integer     NOT NULL DEFAULT 0,
    max_attempts         integer     NOT NULL CHECK (max_attempts >= 1),
    scheduled_at         timestamptz NOT NULL DEFAULT now(),
    enqueued_at          timestamptz NOT NULL DEFAULT now(),
    started_at           timestamptz,
    finished_at          timestamptz,
    -- Ownership of a running job: the worker holding claim_token may write its outcome
    -- until lease_expires_at; afterwards any worker's rescuer may take the job back.
    claim_token          uuid,
    lease_expires_at     timestamptz,
    worker_id            text,
    error_reason         text,
    error_message        text,
    error_detail         json,
    dedup_key            text,
    contract_version     integer,
    contract_fingerprint text
);

-- Claim order within one queue, and across all queues. Partial: only queued rows are
-- indexed, so both stay small however many done jobs accumulate.
CREATE INDEX jobs_claim_queue_idx ON {schema}.jobs (queue, priority DESC, scheduled_at, id)
    WHERE state = 'queued';
CREATE INDEX jobs_claim_any_idx ON {schema}.jobs (priority DESC, scheduled_at, id)
    WHERE state = 'queued';

-- The rescuer's scan for running jobs whose lease has run out.
CREATE INDEX jobs_lease_idx ON {schema}.jobs (lease_expires_at) WHERE state = 'running';

-- Deduplication among live jobs only: a finished job frees its key.
CREATE UNIQUE INDEX jobs_dedup_key_idx ON {schema}.jobs (dedup_key)
    WHERE dedup_key IS NOT NULL AND state IN ('queued', 'running');

-- Dead-letter listing and retention scans.
CREATE INDEX jobs_finished_idx ON {schema}.jobs (state, finished_at)
    WHERE state IN ('done', 'dead', 'cancelled');
