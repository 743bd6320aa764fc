"""Statements that end an attempt: record its outcome, or give the job back unspent.

Every one is fenced: it applies only while the writer's claim token still owns the job. A
claim token is set if and only if the job is running (a CHECK constraint holds the table
to it), so matching ``id`` and ``claim_token`` alone proves "still running, still mine".
Rows are found by (id, slot) first, which reaches one ring partition; a job the ring's
recycler moved to another partition (it ran longer than a turn of the ring) is found on a
second pass by id alone.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from soniq.db.jobs.claims import REQUEUE_AT_MOST_AGO
from soniq.db.jobs.moves import (
    CANCELLED_MESSAGE,
    free_keys,
    record_attempts,
    to_dead,
    to_history,
)
from soniq.db.sql import BoundStatement, Queryable, Statement, Statements
from soniq.job import Claim, Outcome

_BY_SLOT = "j.id = o.id AND j.slot = o.slot AND j.claim_token = o.token"
_BY_ID = "j.id = o.id AND j.claim_token = o.token"

# A finished job of a queue with settings frees a place under its limits: every worker of
# the queue is woken (one notification per queue), not only the one that ran it.
_FREED = """(SELECT count(pg_notify('{schema}.jobs', f.queue))
              FROM (SELECT DISTINCT queue FROM fin) AS f
              WHERE EXISTS (SELECT FROM {schema}.queue_settings AS s WHERE s.queue = f.queue))"""

# A job that ended dead or cancelled cancels the jobs waiting for it (settle_children,
# migration 0014); one that ended done lets them run once their other parents are done.
_SETTLED = """(SELECT {schema}.settle_children(coalesce(array_agg(f.id), '{}'),
                                             coalesce(array_agg(f.outcome), '{}'))
               FROM fin AS f WHERE f.outcome IN ('dead', 'cancelled'))"""

# One notification per batch, payload '': a waiter on get_result re-reads its own row. A
# notification per job would cost a queue entry per row on the hot path. The batch adds one
# row per queue to job_done_counts, which `soniq status` and the console sum.
_RECORD_DONE = f"""
    WITH o AS (
        SELECT * FROM unnest(:ids::bigint[], :slots::int2[], :tokens::uuid[], :results::json[])
                      AS o(id, slot, token, result)
    ),
    fin AS (
        DELETE FROM {{schema}}.job_live AS j USING o WHERE {{match}}
        RETURNING j.*, o.result
    ),
    history AS ({to_history("fin", "'done'", errors="NULL, NULL, NULL", result="result")}),
    keys AS ({free_keys("fin")}),
    counted AS (
        INSERT INTO {{schema}}.job_done_counts (minute, queue, done)
        SELECT date_trunc('minute', now()), queue, count(*) FROM fin GROUP BY queue
    )
    SELECT array_agg(id) AS ids, pg_notify('{{schema}}.results', ''), {_FREED} AS freed,
           {{schema}}.settle_children(coalesce(array_agg(id), '{{}}'),
                                      array_fill('done'::text, ARRAY[count(*)::int])) AS settled
    FROM fin"""

# A cancelled attempt may end without an error of its own.
_FAILED_ERRORS = f"coalesce(reason, 'cancelled'), coalesce(message, {CANCELLED_MESSAGE}), detail"

# A failed attempt: retried (after its backoff, from job_scheduled), dead-lettered, or
# cancelled, which is also the end of a failed attempt whose cancellation was requested. A
# snoozed attempt waits in job_scheduled like a retry, but gives its attempt back and keeps
# the last error. Both stay live: they keep their dedup key and wake no result waiter.
# Every one but a snooze leaves a row in job_attempts, written by this same statement.
_RECORD_FAILED = f"""
    WITH o AS (
        SELECT * FROM unnest(:ids::bigint[], :slots::int2[], :tokens::uuid[], :states::text[],
                             :delays::float8[], :reasons::text[], :messages::text[],
                             :details::json[])
                      AS o(id, slot, token, state, delay, reason, message, detail)
    ),
    fin AS (
        DELETE FROM {{schema}}.job_live AS j USING o WHERE {{match}}
        RETURNING j.*, o.delay, o.reason, o.message, o.detail,
                  CASE WHEN o.state IN ('queued', 'snoozed')
                            AND j.cancel_requested_at IS NOT NULL
                       THEN 'cancelled' ELSE o.state END AS outcome
    ),
    again AS (
        INSERT INTO {{schema}}.job_scheduled (id, task_name, queue, args, priority, attempts,
            max_attempts, scheduled_at, enqueued_at, started_at, worker_id, error_reason,
            error_message, error_detail, dedup_key, contract_version, contract_fingerprint,
            trace_context)
        SELECT id, task_name, queue, args, priority,
            CASE WHEN outcome = 'snoozed' THEN attempts - 1 ELSE attempts END, max_attempts,
            now() + make_interval(secs => delay), enqueued_at, started_at, worker_id,
            CASE WHEN outcome = 'snoozed' THEN error_reason ELSE reason END,
            CASE WHEN outcome = 'snoozed' THEN error_message ELSE message END,
            CASE WHEN outcome = 'snoozed' THEN error_detail ELSE detail END,
            dedup_key, contract_version, contract_fingerprint, trace_context
        FROM fin WHERE outcome IN ('queued', 'snoozed')
    ),
    dead AS ({to_dead("fin", errors="reason, message, detail", where="outcome = 'dead'")}),
    cancelled AS (SELECT * FROM fin WHERE outcome = 'cancelled'),
    history AS ({
    to_history(
        "cancelled",
        "'cancelled'",
        errors=_FAILED_ERRORS,
        result="NULL",
    )
}),
    keys AS ({free_keys("fin", "f.outcome NOT IN ('queued', 'snoozed')")}),
    tried AS ({
    record_attempts("fin", "outcome", errors=_FAILED_ERRORS, where="outcome <> 'snoozed'")
})
    SELECT id, CASE WHEN outcome NOT IN ('queued', 'snoozed')
                    THEN pg_notify('{{schema}}.results', id::text) END, {_FREED} AS freed,
           {_SETTLED} AS settled
    FROM fin"""


# A released job whose cancellation was requested ends cancelled, not queued again.
_RELEASE = f"""
    WITH o AS (
        SELECT * FROM unnest(:ids::bigint[], :slots::int2[], :tokens::uuid[]) AS o(id, slot, token)
    ),
    requeued AS (
        UPDATE {{schema}}.job_live AS j SET
            state = 'queued',
            attempts = j.attempts - 1,
            scheduled_at = greatest(j.scheduled_at, now() - :recent::interval),
            claim_token = NULL,
            lease_expires_at = NULL,
            worker_id = NULL,
            started_at = NULL
        FROM o WHERE {{match}} AND j.cancel_requested_at IS NULL
        RETURNING j.id, j.queue
    ),
    cancelled AS (
        DELETE FROM {{schema}}.job_live AS j USING o
        WHERE {{match}} AND j.cancel_requested_at IS NOT NULL
        RETURNING j.*
    ),
    history AS ({
    to_history(
        "cancelled", "'cancelled'", errors=f"'cancelled', {CANCELLED_MESSAGE}, NULL", result="NULL"
    )
}),
    keys AS ({free_keys("cancelled")})
    SELECT id, pg_notify('{{schema}}.jobs', queue), NULL AS settled FROM requeued
    UNION ALL SELECT id, pg_notify('{{schema}}.results', id::text),
                     {{schema}}.settle_children(ARRAY[id], ARRAY['cancelled']) FROM cancelled"""


def _storable_text(text: str) -> str:
    """``text`` as a PostgreSQL text value can hold it: NUL characters and lone surrogates
    (which an exception message may contain) are written as backslash escapes."""
    return text.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")


def _claims(outcomes: Sequence[Outcome]) -> dict[str, list[Any]]:
    return {
        "ids": [o.claim.job_id for o in outcomes],
        "slots": [o.claim.slot for o in outcomes],
        "tokens": [o.claim.token for o in outcomes],
    }


async def _fenced_by_slot_then_id(
    by_slot: BoundStatement,
    by_id: BoundStatement,
    db: Queryable,
    items: Sequence[Any],
    values: Callable[[Sequence[Any]], dict[str, Any]],
    owned: Callable[[list[Any]], set[int]],
    job_id: Callable[[Any], int],
) -> set[int]:
    """Run a fenced statement by (id, slot), then, for the items it did not match, by id
    alone (moved by the recycler, or fenced out after all); returns the ids matched."""
    matched = owned(await by_slot.fetch(db, **values(items)))
    rest = [item for item in items if job_id(item) not in matched]
    if rest:
        matched |= owned(await by_id.fetch(db, **values(rest)))
    return matched


class JobOutcomes(Statements):
    """How a worker's completer writes finished attempts, and how a stopping worker releases
    the jobs it did not finish."""

    _record_done = Statement(_RECORD_DONE.replace("{match}", _BY_SLOT))
    _record_done_moved = Statement(_RECORD_DONE.replace("{match}", _BY_ID))
    _record_failed = Statement(_RECORD_FAILED.replace("{match}", _BY_SLOT))
    _record_failed_moved = Statement(_RECORD_FAILED.replace("{match}", _BY_ID))

    async def record(self, db: Queryable, outcomes: Sequence[Outcome]) -> set[int]:
        """Write finished attempts; returns the ids still owned (the others were fenced out).

        Successes, the bulk of any batch, go through a lean statement; the rest (retries,
        snoozes, dead letters, cancellations) through the general one.
        """
        done = [o for o in outcomes if o.state == "done"]
        failed = [o for o in outcomes if o.state != "done"] if len(done) < len(outcomes) else []
        owned: set[int] = set()
        if done:
            owned |= await _fenced_by_slot_then_id(
                self._record_done,
                self._record_done_moved,
                db,
                done,
                lambda batch: {**_claims(batch), "results": [o.result_json for o in batch]},
                lambda rows: set(rows[0]["ids"] or ()),
                lambda o: o.job_id,
            )
        if failed:
            owned |= await _fenced_by_slot_then_id(
                self._record_failed,
                self._record_failed_moved,
                db,
                failed,
                _failed_values,
                lambda rows: {row["id"] for row in rows},
                lambda o: o.job_id,
            )
        return owned

    _release = Statement(_RELEASE.replace("{match}", _BY_SLOT))
    _release_moved = Statement(_RELEASE.replace("{match}", _BY_ID))

    async def release(self, db: Queryable, claims: Sequence[Claim]) -> set[int]:
        """Give claimed jobs back to the queue without spending their attempt."""

        def values(batch: Sequence[Claim]) -> dict[str, Any]:
            return {
                "ids": [c.job_id for c in batch],
                "slots": [c.slot for c in batch],
                "tokens": [c.token for c in batch],
                "recent": REQUEUE_AT_MOST_AGO,
            }

        return await _fenced_by_slot_then_id(
            self._release,
            self._release_moved,
            db,
            claims,
            values,
            lambda rows: {row["id"] for row in rows},
            lambda claim: claim.job_id,
        )


def _failed_values(batch: Sequence[Outcome]) -> dict[str, Any]:
    return {
        **_claims(batch),
        "states": [o.state for o in batch],
        "delays": [o.retry_delay for o in batch],
        "reasons": [o.error.reason if o.error else None for o in batch],
        "messages": [_storable_text(o.error.message) if o.error else None for o in batch],
        "details": [
            json.dumps(o.error.detail) if o.error and o.error.detail is not None else None
            for o in batch
        ],
    }
