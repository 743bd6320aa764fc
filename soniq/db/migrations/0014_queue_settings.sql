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
