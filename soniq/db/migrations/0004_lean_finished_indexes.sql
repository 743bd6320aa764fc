-- Every finished job paid an index entry in jobs_finished_idx. Only dead letters need one
-- (the dead-letter listing, newest first); retention prunes done jobs in id order through
-- the primary key instead, since they finish roughly in the order they were enqueued.
DROP INDEX {schema}.jobs_finished_idx;
CREATE INDEX jobs_dead_idx ON {schema}.jobs (finished_at) WHERE state = 'dead';
