"""Helpers for testing code that uses Soniq, against a real PostgreSQL.

- :func:`drain` (also :meth:`Soniq.drain`): run every due job in-process, through the same
  claim, validation and outcome-writing path as a worker, until none is left.
- :func:`assert_enqueued` / :func:`assert_not_enqueued`: assert on the jobs a piece of code
  stored, with args compared as they would be stored (validated through the ref's model).

The pytest fixtures (a database and a fresh schema per test) live in
:mod:`soniq.pytest_plugin`. This module does not import pytest. See docs/testing.md.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

import asyncpg
from pydantic import BaseModel

from soniq import tracing
from soniq.app import Soniq
from soniq.db.connection import pooled
from soniq.db.jobs import JobStore
from soniq.encoding import encode_args
from soniq.enqueue import resolve_target
from soniq.job import Job, JobState
from soniq.names import check_queue_name, check_schema_name
from soniq.registry import Registry
from soniq.settings import resolve_schema
from soniq.task_ref import TaskRef
from soniq.worker.executor import not_registered, run_attempt
from soniq.worker.threads import HandlerThreads
from soniq.worker.worker import new_worker_id

__all__ = ["assert_enqueued", "assert_not_enqueued", "drain"]

# No heartbeat runs during a drain: the lease only has to outlast the longest handler.
_DRAIN_LEASE = timedelta(hours=1)


async def drain(app: Soniq, queues: Sequence[str] | str | None = None) -> int:
    """Run every due job of ``queues`` (all queues when None) in this process, one at a time,
    until no due job is left; returns how many attempts ran.

    Each job is claimed with a lease exactly as a worker claims it (priority, then age;
    contract versions this app cannot run are left alone), its args are upcast and
    validated, the handler runs through the app's middleware, and the outcome (done, retry
    with backoff, dead) is written through the store. Jobs that handlers enqueue meanwhile
    run too; a retry runs again only if its backoff has passed before the drain ends. A job
    of a task this app has no handler for is dead-lettered, as a worker of this app would
    do. ``app.cancel()`` does not reach a job while the drain runs it.
    """
    if isinstance(queues, str):
        queues = [queues]
    if queues is not None:
        queues = [check_queue_name(q) for q in queues]
    pool = await app._database.pool()
    registry = app._registry
    store = app._store
    worker_id = f"drain:{new_worker_id()}"
    threads = HandlerThreads("soniq-drain")
    ran = 0
    while True:
        with app._database.errors():
            async with pooled(pool) as conn:
                claimed = await store.claims.claim(
                    conn,
                    limit=1,
                    queues=queues,
                    max_attempts_by_task=registry.max_attempts_by_task(),
                    version_by_task=registry.versions_by_task(),
                    lease=_DRAIN_LEASE,
                    worker_id=worker_id,
                )
        if not claimed:
            return ran
        job = claimed[0]
        spec = registry.get(job.task_name)
        try:
            if spec is None:
                outcome = not_registered(job, registry.names())
            else:
                outcome = await run_attempt(
                    job,
                    spec,
                    policy=app._retry_policy,
                    threads=threads,
                    upcasters=registry.upcasters(job.task_name),
                    middleware=registry.middleware,
                    traced=tracing.active(),
                )
        except BaseException:
            # Cancelled (or a bug): give the job back unspent, as a worker does on shutdown.
            async with pooled(pool) as conn:
                await store.outcomes.release(conn, [(job.id, job.claim_token)])
            raise
        with app._database.errors():
            async with pooled(pool) as conn:
                await store.outcomes.record(conn, [outcome])
        ran += 1


def _task_name(target: TaskRef[Any] | str) -> str:
    if isinstance(target, TaskRef):
        return target.name
    if isinstance(target, str):
        return target
    raise TypeError(f"target must be a task name or a TaskRef, got {target!r}")


def _expected_args(
    target: TaskRef[Any] | str, args: Mapping[str, Any] | BaseModel, registry: Registry
) -> dict[str, Any]:
    """``args`` as enqueue would store them: validated through the ref's (or the registered
    handler's) model and dumped to JSON."""
    resolved = resolve_target(target, registry, default_retries=0)
    text = encode_args(resolved, args, max_bytes=2**31 - 1)
    value: dict[str, Any] = json.loads(text)
    return value


async def _jobs_of(
    app_or_conn: Soniq | asyncpg.Connection | asyncpg.Pool, schema: str | None, name: str
) -> list[Job]:
    if isinstance(app_or_conn, Soniq):
        store = JobStore(check_schema_name(schema or app_or_conn.schema))
        async with app_or_conn.connection() as conn:
            with app_or_conn._database.errors():
                jobs = await store.reads.list_jobs(
                    conn, state=None, queue=None, task_name=name, limit=None
                )
    else:
        schema = resolve_schema(schema or None)
        jobs = await JobStore(schema).reads.list_jobs(
            app_or_conn, state=None, queue=None, task_name=name, limit=None
        )
    return jobs[::-1]


def _matches(
    job: Job,
    expected: dict[str, Any] | None,
    queue: str | None,
    states: set[JobState] | None,
) -> bool:
    return (
        (expected is None or job.args == expected)
        and (queue is None or job.queue == queue)
        and (states is None or job.state in states)
    )


def _describe(jobs: list[Job]) -> str:
    if not jobs:
        return "  (none)"
    return "\n".join(
        f"  job {j.id}: queue={j.queue!r} state={j.state.value} "
        f"args={json.dumps(j.args, sort_keys=True)}"
        for j in jobs
    )


def _wanted(
    name: str,
    expected: dict[str, Any] | None,
    queue: str | None,
    states: set[JobState] | None,
) -> str:
    parts = [repr(name)]
    if expected is not None:
        parts.append(f"args={json.dumps(expected, sort_keys=True)}")
    if queue is not None:
        parts.append(f"queue={queue!r}")
    if states is not None:
        parts.append("state in " + "/".join(sorted(s.value for s in states)))
    return " ".join(parts)


def _states(state: JobState | str | Sequence[JobState | str] | None) -> set[JobState] | None:
    if state is None:
        return None
    if isinstance(state, (str, JobState)):
        return {JobState(state)}
    return {JobState(s) for s in state}


async def assert_enqueued(
    app_or_conn: Soniq | asyncpg.Connection | asyncpg.Pool,
    target: TaskRef[Any] | str,
    args: Mapping[str, Any] | BaseModel | None = None,
    *,
    queue: str | None = None,
    count: int | None = None,
    state: JobState | str | Sequence[JobState | str] | None = None,
    schema: str | None = None,
) -> list[Job]:
    """Assert that jobs of ``target`` (a task name or a :class:`TaskRef`) were stored, and
    return the matching jobs (oldest first).

    ``args``, when given, are validated through the ref's model (or the handler registered
    on the app) and compared with the stored args exactly, defaults included. ``queue`` and
    ``state`` narrow the match (any state by default: a job that already ran still counts).
    Without ``count`` at least one job must match, with it exactly that many. With a
    connection or pool instead of an app, the jobs table is looked up in ``schema`` (default:
    ``SONIQ_SCHEMA`` or ``soniq``); a connection sees its own uncommitted enqueues.
    """
    name = _task_name(target)
    registry = app_or_conn._registry if isinstance(app_or_conn, Soniq) else Registry()
    expected = None if args is None else _expected_args(target, args, registry)
    states = _states(state)
    jobs = await _jobs_of(app_or_conn, schema, name)
    matching = [j for j in jobs if _matches(j, expected, queue, states)]
    wanted = "at least 1" if count is None else str(count)
    if (count is None and not matching) or (count is not None and len(matching) != count):
        raise AssertionError(
            f"expected {wanted} job(s) of {_wanted(name, expected, queue, states)}, found "
            f"{len(matching)}; jobs of task {name!r}:\n{_describe(jobs)}"
        )
    return matching


async def assert_not_enqueued(
    app_or_conn: Soniq | asyncpg.Connection | asyncpg.Pool,
    target: TaskRef[Any] | str,
    args: Mapping[str, Any] | BaseModel | None = None,
    *,
    queue: str | None = None,
    state: JobState | str | Sequence[JobState | str] | None = None,
    schema: str | None = None,
) -> None:
    """Assert that no job of ``target`` matches (same matching as :func:`assert_enqueued`)."""
    await assert_enqueued(
        app_or_conn, target, args, queue=queue, count=0, state=state, schema=schema
    )
