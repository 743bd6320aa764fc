"""What a job is, as callers see it: its states, its record, and the context a handler gets."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any


class JobState(str, enum.Enum):
    """The life of a job; docs/guarantees.md shows which component moves it where."""

    QUEUED = "queued"  # waiting (possibly until scheduled_at) for a worker
    RUNNING = "running"  # claimed by a worker holding a lease
    DONE = "done"  # handler returned; kept for the app's done_retention
    DEAD = "dead"  # dead-lettered: kept until replayed or purged
    CANCELLED = "cancelled"  # by app.cancel(): never retried; kept like done jobs


@dataclass(frozen=True)
class JobError:
    """Why the last attempt failed. ``reason`` is short and stable, for example
    ``"exception"``, ``"invalid arguments"``, ``"Job not registered"``, ``"timeout"`` or
    ``"worker lost"``; ``detail`` holds the traceback or pydantic's error list."""

    reason: str
    message: str
    detail: Any = None


@dataclass(frozen=True)
class Job:
    """A job row as :meth:`Soniq.get_job` and the dead-letter queue return it."""

    id: int
    task_name: str
    queue: str
    args: dict[str, Any]
    state: JobState
    priority: int
    attempts: int
    max_attempts: int
    scheduled_at: datetime
    enqueued_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error: JobError | None
    dedup_key: str | None
    contract_version: int | None
    contract_fingerprint: str | None
    worker_id: str | None
    result: Any = None  # a done job's return value, as parsed JSON


@dataclass(frozen=True)
class JobContext:
    """Facts about the running attempt. A handler receives it by declaring a parameter
    annotated ``JobContext`` (any name; works with ``from __future__ import annotations``)."""

    job_id: int
    task_name: str
    queue: str
    attempt: int
    max_attempts: int
    enqueued_at: datetime
