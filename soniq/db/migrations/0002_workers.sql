-- Live workers, for `soniq status` and for knowing which contract versions are served.

CREATE TABLE {schema}.workers (
    id             text        PRIMARY KEY,
    hostname       text        NOT NULL,
    pid            integer     NOT NULL,
    queues         text[],                 -- NULL: every queue
    -- {"task.name": version or null}: what this worker runs, and at which contract version
    tasks          json        NOT NULL,
    concurrency    integer     NOT NULL,
    lease_seconds  float8      NOT NULL,
    started_at     timestamptz NOT NULL DEFAULT now(),
    heartbeat_at   timestamptz NOT NULL DEFAULT now()
);
