"""Helpers for testing code that uses Soniq, against a real PostgreSQL.

- :func:`drain` (the same as :meth:`Soniq.drain`): run every due job in-process, through the
  worker's own claim, validation and outcome-writing path, until none is left.
- :func:`assert_enqueued` / :func:`assert_not_enqueued`: assert on the jobs a piece of code
  stored, with args compared as they would be stored (validated through the ref's model).

The pytest fixtures (a database and a fresh schema per test) live in
:mod:`soniq.pytest_plugin`. This module does not import pytest. See docs/testing.md.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg
from pydantic import BaseModel

from soniq.app import Soniq
from soniq.db.jobs import JobStore
from soniq.encoding import encode_args
from soniq.enqueue import resolve_target
from soniq.job import Job, JobState
from soniq.registry import Registry
from soniq.settings import resolve_schema
from soniq.task_ref import TaskRef

__all__ = ["assert_enqueued", "assert_not_enqueued", "drain"]


async def drain(app: Soniq, queues: Sequence[str] | str | None = None) -> int:
    """Run every due job of ``queues`` in this process until none is left; the same as
    :meth:`Soniq.drain`, which says how each job is run."""
    return await app.drain(queues)


def _task_name(target: TaskRef[Any] | str) -> str:
    if isinstance(target, TaskRef):
        return target.name
    if isinstance(target, str):
        return target
    raise TypeError(f"target must be a task name or a TaskRef, got {target!r}")


async def _expected_and_stored(
    app_or_conn: Soniq | asyncpg.Connection | asyncpg.Pool,
    target: TaskRef[Any] | str,
    args: Mapping[str, Any] | BaseModel | None,
    schema: str | None,
) -> tuple[dict[str, Any] | None, list[Job]]:
    """``args`` as enqueue would store them (validated through the ref's, or the app's
    registered handler's, model), and the stored jobs of the task, oldest first."""
    name = _task_name(target)
    if isinstance(app_or_conn, Soniq):
        expected = None if args is None else app_or_conn.validate_args(target, args)
        jobs = await app_or_conn.list_jobs(task_name=name, limit=None)
    else:
        expected = None
        if args is not None:
            resolved = resolve_target(target, Registry(), default_retries=0)
            expected = json.loads(encode_args(resolved, args, max_bytes=2**31 - 1))
        jobs = await JobStore(resolve_schema(schema or None)).reads.list_jobs(
            app_or_conn, state=None, queue=None, task_name=name, limit=None
        )
    return expected, jobs[::-1]


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
    connection or pool instead of an app, the jobs are looked up in ``schema`` (default:
    ``SONIQ_SCHEMA`` or ``soniq``); a connection sees its own uncommitted enqueues.
    """
    name = _task_name(target)
    expected, jobs = await _expected_and_stored(app_or_conn, target, args, schema)
    states = _states(state)
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
