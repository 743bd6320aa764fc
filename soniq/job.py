"""The job value types: what callers see (state, record, error, handler context) and what
moves between enqueue, the store and the worker (a new row, a claimed row, an outcome)."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple


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
class Attempt:
    """One failed attempt of a job, as :meth:`Soniq.get_attempts` returns it: which
    ``attempt`` it was (1 for the first), the worker that ran it, when it was claimed and
    when it ended, what the job became (``QUEUED``: retried, ``DEAD`` or ``CANCELLED``), and
    its error (``error.detail`` holds the traceback)."""

    attempt: int
    worker_id: str | None
    started_at: datetime | None
    finished_at: datetime
    outcome: JobState
    error: JobError


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


@dataclass(frozen=True)
class NewJob:
    """A validated, encoded job ready to insert."""

    task_name: str
    queue: str
    args_json: str
    priority: int
    max_attempts: int
    scheduled_at: datetime | None
    dedup_key: str | None
    contract_version: int | None
    contract_fingerprint: str | None
    trace_context: str | None  # JSON of the producer's W3C trace context
    # Due this long after the insert, by the database's clock (scheduled_at is then None).
    delay: timedelta | None = None
    # The jobs it waits for: claimable once all of them are done.
    after: tuple[int, ...] = ()


class Claim(NamedTuple):
    """A worker's hold on one running job: where its row is (``slot``: which partition of
    the live ring) and the token that fences every write of its outcome."""

    job_id: int
    slot: int
    token: uuid.UUID


class ClaimedJob(NamedTuple):
    """What a worker needs to run one attempt of a job it has just claimed: a row of the
    claim statement, whose RETURNING list is built from these fields in this order. (A
    tuple, not a frozen dataclass: it is built once per job on the worker's hot path.)"""

    id: int
    slot: int
    task_name: str
    queue: str
    args_json: str
    attempts: int
    max_attempts: int
    enqueued_at: datetime
    claim_token: uuid.UUID
    contract_version: int | None
    queue_wait: float  # seconds from due (enqueued, scheduled or retry time) to this claim
    trace_context: str | None  # JSON of the producer's W3C trace context

    @property
    def claim(self) -> Claim:
        return Claim(self.id, self.slot, self.claim_token)


class JobId(int):
    """A job's id as :meth:`~soniq.Soniq.enqueue` returns it: an ``int`` that also says
    whether the call ``created`` the job (False: a live job held the ``dedup_key``, and
    this is that job's id)."""

    created: bool

    def __new__(cls, value: int, created: bool = True) -> JobId:
        job_id = super().__new__(cls, value)
        job_id.created = created
        return job_id


@dataclass(frozen=True)
class Outcome:
    """The result of one attempt: ``state`` is ``done``, ``queued`` (retry after
    ``retry_delay`` seconds), ``snoozed`` (the same, attempt not spent), ``dead`` or
    ``cancelled``; ``result_json`` is a done job's encoded return value (None for None)."""

    claim: Claim
    state: str
    retry_delay: float = 0.0
    error: JobError | None = None
    result_json: str | None = None

    @property
    def job_id(self) -> int:
        return self.claim.job_id
