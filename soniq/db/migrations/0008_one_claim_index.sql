-- Every queued job paid for two claim indexes, and at bulk enqueue each cost about as much
-- as the row itself. Only the per-queue one stays: a worker serving every queue finds the
-- queues with a skip scan of it and claims from each (see JobStore in soniq/db/jobs.py), so
-- a backlog in one queue never slows claims in another.
DROP INDEX {schema}.jobs_claim_any_idx;
