"""Statements that end an attempt: record its outcome, or give the job back unspent.

Every one is fenced: it applies only while the writer's ``claim_token`` still owns the job.
A claim token is set if and only if the job is running (a CHECK constraint holds the table
to it), so matching ``id`` and ``claim_token`` alone proves "still running, still mine".
The statements deliberately do not repeat ``state = 'running'``: that predicate matches the
partial ``jobs_lease_idx`` and tempts the planner into rescanning every running job.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence

from soniq.db.sql import Queryable, Statement, Statements
from soniq.job import Outcome

CANCELLED_MESSAGE = "'cancelled by app.cancel() before it finished'"


def storable_text(text: str) -> str:
    """``text`` as a PostgreSQL text value can hold it: NUL characters and lone surrogates
    (which an exception message may contain) are written as backslash escapes."""
    return text.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")


# A failed attempt of a job whose cancellation was requested is not retried.
_RETRY = "(o.state = 'queued' AND j.cancel_requested_at IS NULL)"
# A released job whose cancellation was requested ends cancelled, not queued again.
_CANCELLED = "j.cancel_requested_at IS NOT NULL"


class JobOutcomes(Statements):
    """How a worker's completer writes finished attempts, and how a stopping worker releases
    the jobs it did not finish."""

    # One notification per batch, payload '': a waiter on get_result re-reads its own row.
    # A notification per job would cost a queue entry per row on the hot path.
    _record_done = Statement(
        """
        WITH done AS (
            UPDATE {schema}.jobs AS j SET
                state = 'done',
                finished_at = now(),
                claim_token = NULL,
                lease_expires_at = NULL,
                error_reason = NULL,
                error_message = NULL,
                error_detail = NULL,
                result = o.result
            FROM unnest(:ids::bigint[], :tokens::uuid[], :results::json[])
                 AS o(id, token, result)
            WHERE j.id = o.id AND j.claim_token = o.token
            RETURNING j.id
        )
        SELECT array_agg(id) AS ids, pg_notify('{schema}.results', '') FROM done"""
    )
    _record_failed = Statement(
        f"""
        UPDATE {{schema}}.jobs AS j SET
            state = CASE WHEN o.state = 'queued' AND j.cancel_requested_at IS NOT NULL
                         THEN 'cancelled' ELSE o.state END,
            finished_at = CASE WHEN {_RETRY} THEN NULL ELSE now() END,
            scheduled_at = CASE WHEN {_RETRY}
                                THEN now() + make_interval(secs => o.delay)
                                ELSE j.scheduled_at END,
            claim_token = NULL,
            lease_expires_at = NULL,
            error_reason = o.reason,
            error_message = o.message,
            error_detail = o.detail
        FROM unnest(:ids::bigint[], :tokens::uuid[], :states::text[], :delays::float8[],
                    :reasons::text[], :messages::text[], :details::json[])
             AS o(id, token, state, delay, reason, message, detail)
        WHERE j.id = o.id AND j.claim_token = o.token
        RETURNING j.id,
                  CASE WHEN j.state <> 'queued' THEN pg_notify('{{schema}}.results', j.id::text)
                  END"""
    )

    async def record(self, db: Queryable, outcomes: Sequence[Outcome]) -> set[int]:
        """Write finished attempts; returns the ids still owned (the others were fenced out).

        Successes, the bulk of any batch, go through a lean statement of three arrays; the
        rest (retries, dead letters, cancellations) through the general one.
        """
        done = [o for o in outcomes if o.state == "done"]
        failed = [o for o in outcomes if o.state != "done"] if len(done) < len(outcomes) else []
        owned: set[int] = set()
        if done:
            row = await self._record_done.fetchrow(
                db,
                ids=[o.job_id for o in done],
                tokens=[o.claim_token for o in done],
                results=[o.result_json for o in done],
            )
            assert row is not None
            owned.update(row["ids"] or ())
        if failed:
            rows = await self._record_failed.fetch(
                db,
                ids=[o.job_id for o in failed],
                tokens=[o.claim_token for o in failed],
                states=[o.state for o in failed],
                delays=[o.retry_delay for o in failed],
                reasons=[o.error.reason if o.error else None for o in failed],
                messages=[storable_text(o.error.message) if o.error else None for o in failed],
                details=[
                    json.dumps(o.error.detail) if o.error and o.error.detail is not None else None
                    for o in failed
                ],
            )
            owned.update(row["id"] for row in rows)
        return owned

    _release = Statement(
        f"""
        UPDATE {{schema}}.jobs AS j SET
            state = CASE WHEN {_CANCELLED} THEN 'cancelled' ELSE 'queued' END,
            attempts = CASE WHEN {_CANCELLED} THEN j.attempts ELSE j.attempts - 1 END,
            finished_at = CASE WHEN {_CANCELLED} THEN now() END,
            error_reason = CASE WHEN {_CANCELLED} THEN 'cancelled' ELSE j.error_reason END,
            error_message = CASE WHEN {_CANCELLED} THEN {CANCELLED_MESSAGE}
                                 ELSE j.error_message END,
            error_detail = CASE WHEN {_CANCELLED} THEN NULL ELSE j.error_detail END,
            claim_token = NULL,
            lease_expires_at = NULL,
            worker_id = NULL,
            started_at = CASE WHEN {_CANCELLED} THEN j.started_at END
        FROM unnest(:ids::bigint[], :tokens::uuid[]) AS r(id, token)
        WHERE j.id = r.id AND j.claim_token = r.token
        RETURNING j.id, CASE WHEN j.state = 'queued' THEN pg_notify('{{schema}}.jobs', j.queue)
                             ELSE pg_notify('{{schema}}.results', j.id::text) END"""
    )

    async def release(self, db: Queryable, claims: Sequence[tuple[int, uuid.UUID]]) -> set[int]:
        """Give claimed jobs back to the queue without spending their attempt."""
        rows = await self._release.fetch(
            db, ids=[c[0] for c in claims], tokens=[c[1] for c in claims]
        )
        return {row["id"] for row in rows}
