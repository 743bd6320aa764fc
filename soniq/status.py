"""The report value types: what ``app.status()`` and ``soniq status`` show."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class WorkerRecord:
    """A live worker: where it runs, what it serves, and how long ago it last beat."""

    id: str
    hostname: str
    pid: int
    queues: list[str] | None
    tasks: dict[str, int | None]
    concurrency: int
    started_at: datetime
    heartbeat_at: datetime
    heartbeat_age_seconds: float


@dataclass(frozen=True)
class QueueStats:
    """One queue's jobs by state, and how long its oldest due job has waited."""

    queue: str
    queued: int  # due now
    scheduled: int  # waiting for a future time (delayed, or retrying with backoff)
    waiting: int  # waiting for parent jobs not yet done (enqueue(..., after=[...]))
    running: int
    done_last_hour: int  # finished by workers this minute and the 59 before it
    dead: int
    oldest_wait_seconds: float | None  # how long the oldest due job has waited
    paused: bool = False  # app.configure_queue(queue, paused=True): no job starts


@dataclass(frozen=True)
class VersionCount:
    """How many jobs of one task and contract version are in one state."""

    task_name: str
    contract_version: int | None
    state: str  # queued, scheduled or dead
    count: int


@dataclass(frozen=True)
class WaitingJob:
    """A queued, scheduled or dead job as ``soniq contracts check`` tests it."""

    id: int
    contract_version: int | None
    state: str
    args_json: str


@dataclass(frozen=True)
class Status:
    """What ``soniq status`` shows: queues, live workers, and jobs no live worker may run."""

    queues: list[QueueStats]
    workers: list[WorkerRecord]
    waiting_for_newer_consumer: list[VersionCount]
