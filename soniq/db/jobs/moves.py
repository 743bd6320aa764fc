"""SQL fragments that move a job row between the lifecycle tables, written once.

A row leaves ``job_live`` (or ``job_scheduled``) by a DELETE ... RETURNING in a CTE named by
the caller, and these INSERTs take it from there in the same statement, so a move is
atomic: a killed connection rolls the whole move back. ``{source}`` is that CTE.
"""

from __future__ import annotations

CANCELLED_MESSAGE = "'cancelled by app.cancel() before it finished'"

# The columns every table has, in one order.
COMMON = """id, task_name, queue, args, priority, attempts, max_attempts, scheduled_at,
    enqueued_at, started_at, worker_id, error_reason, error_message, error_detail,
    dedup_key, contract_version, contract_fingerprint, trace_context"""


def to_history(source: str, state: str, *, errors: str, result: str) -> str:
    """INSERT the rows of ``source`` into job_history as ``state`` (an SQL expression),
    finished now, with ``errors`` (three expressions: reason, message, detail) and
    ``result`` as given."""
    return f"""
        INSERT INTO {{schema}}.job_history (id, task_name, queue, args, state, priority,
            attempts, max_attempts, scheduled_at, enqueued_at, started_at, finished_at,
            worker_id, error_reason, error_message, error_detail, dedup_key,
            contract_version, contract_fingerprint, trace_context, result,
            cancel_requested_at)
        SELECT id, task_name, queue, args, {state}, priority, attempts, max_attempts,
            scheduled_at, enqueued_at, started_at, now(), worker_id, {errors}, dedup_key,
            contract_version, contract_fingerprint, trace_context, {result},
            cancel_requested_at
        FROM {source}"""


def to_dead(source: str, *, errors: str, where: str = "TRUE") -> str:
    """INSERT the rows of ``source`` (matching ``where``) into job_dead, dead now."""
    return f"""
        INSERT INTO {{schema}}.job_dead (id, task_name, queue, args, priority, attempts,
            max_attempts, scheduled_at, enqueued_at, started_at, finished_at, worker_id,
            error_reason, error_message, error_detail, dedup_key, contract_version,
            contract_fingerprint, trace_context)
        SELECT id, task_name, queue, args, priority, attempts, max_attempts, scheduled_at,
            enqueued_at, started_at, now(), worker_id, {errors}, dedup_key, contract_version,
            contract_fingerprint, trace_context
        FROM {source} WHERE {where}"""


def free_keys(source: str, where: str = "TRUE") -> str:
    """DELETE the dedup keys the finished rows of ``source`` held: a finished job frees
    its key."""
    return f"""
        DELETE FROM {{schema}}.job_dedup AS d USING {source} AS f
        WHERE f.dedup_key IS NOT NULL AND d.dedup_key = f.dedup_key AND d.job_id = f.id
          AND {where}"""


def record_attempts(source: str, outcome: str, *, errors: str, where: str = "TRUE") -> str:
    """INSERT into job_attempts one row per failed attempt in ``source`` (rows of job_live
    as they were while running), ended now with ``outcome`` (an SQL expression: queued,
    dead or cancelled) and ``errors`` (three expressions: reason, message, detail)."""
    return f"""
        INSERT INTO {{schema}}.job_attempts (job_id, attempt, worker_id, started_at,
            finished_at, outcome, error_reason, error_message, error_detail)
        SELECT id, attempts, worker_id, started_at, now(), {outcome}, {errors}
        FROM {source} WHERE {where}"""
