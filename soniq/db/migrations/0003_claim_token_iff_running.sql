-- The fencing statements match a job by (id, claim_token) alone; this makes that safe:
-- a claim token exists exactly while the job is running.
ALTER TABLE {schema}.jobs
    ADD CONSTRAINT jobs_claim_token_iff_running
    CHECK ((state = 'running') = (claim_token IS NOT NULL));
