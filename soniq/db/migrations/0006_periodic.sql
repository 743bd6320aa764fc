-- One row per periodic schedule: the latest tick it was enqueued for. Workers claim a tick
-- by moving last_tick forward in the statement that enqueues its job, so each tick is
-- enqueued once however many workers run, and the table never grows past one row per
-- schedule.
CREATE TABLE {schema}.periodic_schedules (
    key        text        PRIMARY KEY,
    last_tick  timestamptz NOT NULL
);
