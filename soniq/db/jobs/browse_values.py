"""The values the console's statements (:mod:`.browse`) take and return."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class JobRow:
    """One line of a job list."""

    id: int
    task_name: str
    queue: str
    state: str
    attempts: int
    max_attempts: int
    priority: int
    enqueued_at: datetime
    scheduled_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    worker_id: str | None
    error_reason: str | None
    error_message: str | None
    contract_version: int | None
    args_preview: str


@dataclass(frozen=True)
class JobFilter:
    """What a job list is narrowed to; None leaves a field unfiltered."""

    state: str | None = None
    queue: str | None = None
    task_name: str | None = None
    worker_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    args: dict[str, Any] | None = None  # JSON containment: the job's args contain these

    def values(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "queue": self.queue,
            "task_name": self.task_name,
            "worker_id": self.worker_id,
            "since": self.since,
            "until": self.until,
            "args_filter": None if self.args is None else json.dumps(self.args),
        }


@dataclass(frozen=True)
class QueueOverview:
    """One queue on the overview page."""

    queue: str
    queued: int
    scheduled: int
    retrying: int
    running: int
    dead: int
    capped: bool  # a count stopped at the cap: the counts are lower bounds
    oldest_wait_seconds: float | None


@dataclass(frozen=True)
class Throughput:
    """Jobs finished in one minute of the last hour (0: the current minute)."""

    minutes_ago: int
    done: int
    dead: int


@dataclass(frozen=True)
class Waits:
    """Queue wait (start minus due time, by the database's clock) of recent done jobs."""

    sampled: int
    p50_seconds: float | None
    p95_seconds: float | None


@dataclass(frozen=True)
class DeadGroup:
    """Dead letters of one task that died for one reason."""

    task_name: str
    error_reason: str | None
    count: int
    newest_id: int
    newest_message: str | None
    newest_at: datetime | None


@dataclass(frozen=True)
class FingerprintCount:
    """Waiting or dead jobs of one task written against one contract version and fingerprint."""

    task_name: str
    contract_version: int | None
    contract_fingerprint: str | None
    state: str
    count: int
