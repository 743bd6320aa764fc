-- A handler's return value (NULL when it returned None), and when app.cancel() asked a
-- running job to stop. 'cancelled' is already a state; cancelled jobs hold no claim token.
ALTER TABLE {schema}.jobs
    ADD COLUMN result json,
    ADD COLUMN cancel_requested_at timestamptz;
