"""Every error Soniq raises on purpose derives from :class:`SoniqError`.

::

    SoniqError
    ├── ConfigurationError          bad or missing settings (database URL, schema, options)
    ├── DatabaseError
    │   ├── DatabaseUnavailableError    PostgreSQL cannot be reached, or the connection was lost
    │   ├── SchemaNotReadyError         the Soniq schema is missing or older than this code
    │   ├── PermissionDeniedError       the database role lacks a privilege this call needs
    │   └── MigrationError              a migration cannot be applied safely
    ├── RegistrationError           a handler or task reference is defined wrongly
    │   └── InvalidNameError            a task or queue name breaks the naming rules
    ├── EnqueueError                a job was refused; nothing was written
    │   ├── InvalidArgumentsError       args fail the task's model (every failing field listed)
    │   ├── ArgsNotJSONError            args are not exactly representable as JSON
    │   ├── ArgsTooLargeError           args exceed the configured size
    │   ├── DuplicateJobError           on_conflict="raise": a live job holds the dedup_key
    │   └── UnknownTaskError            a function this app never registered, or (with
    │                                   unknown_tasks="refuse") a name nothing installed knows
    ├── JobControl                  raised by a handler to choose its job's outcome
    │   ├── Retry                       run again after a delay (spends the attempt)
    │   ├── Discard                     give up now: dead-lettered with the reason
    │   └── Snooze                      run again after a delay, attempt not spent
    ├── JobNotFoundError            no job with that id
    ├── JobFailedError              get_result: the job was dead-lettered or cancelled
    └── ResultTimeoutError          get_result: the job did not finish in time

Errors carry what caused them (``task_name``, ``job_id``, ``errors``) as attributes, and their
messages never contain a database password.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

from soniq.job import JobError


class SoniqError(Exception):
    """Base class of every error Soniq raises on purpose."""


class ConfigurationError(SoniqError):
    """A setting is missing or wrong; the message says which and how to fix it."""


class DatabaseError(SoniqError):
    """Base class for problems talking to PostgreSQL."""


class DatabaseUnavailableError(DatabaseError):
    """PostgreSQL could not be reached, or the connection broke mid-operation."""


class SchemaNotReadyError(DatabaseError):
    """The Soniq schema does not exist yet or is older than this version of Soniq."""


class PermissionDeniedError(DatabaseError):
    """The database role lacks a privilege the operation needs (see docs/security.md)."""


class MigrationError(DatabaseError):
    """A migration cannot be applied (checksum changed, or the database is newer than the code)."""


class RegistrationError(SoniqError):
    """A job handler, task reference or upcaster was defined incorrectly."""


class InvalidNameError(RegistrationError):
    """A task name or queue name does not follow the naming rules."""


class EnqueueError(SoniqError):
    """A job was refused at enqueue time; nothing was written to the database.

    ``index`` is the position of the refused item in ``enqueue_many`` (None for ``enqueue``).
    """

    def __init__(
        self, message: str, *, task_name: str | None = None, index: int | None = None
    ) -> None:
        super().__init__(message)
        self.task_name = task_name
        self.index = index


class InvalidArgumentsError(EnqueueError):
    """The args failed validation against the task's model.

    ``errors`` holds pydantic's error list (``loc``, ``msg``, ``type`` per failing field).
    """

    def __init__(
        self,
        message: str,
        *,
        task_name: str,
        errors: list[dict[str, Any]],
        index: int | None = None,
    ) -> None:
        super().__init__(message, task_name=task_name, index=index)
        self.errors = errors


class ArgsNotJSONError(EnqueueError):
    """The args contain a value that does not survive a JSON round trip unchanged."""


class ArgsTooLargeError(EnqueueError):
    """The args, encoded as JSON, are larger than the app's ``max_args_bytes``."""


class DuplicateJobError(EnqueueError):
    """``enqueue(..., dedup_key=..., on_conflict="raise")`` found a live (queued, scheduled
    or running) job holding the key; nothing was written. ``job_id`` is that job's id."""

    def __init__(self, *, task_name: str, dedup_key: str, job_id: int) -> None:
        super().__init__(
            f"dedup_key {dedup_key!r} is held by live job {job_id} ({task_name!r} was not "
            "enqueued again)",
            task_name=task_name,
        )
        self.dedup_key = dedup_key
        self.job_id = job_id


class UnknownTaskError(EnqueueError):
    """The enqueue target is a function this app never registered with ``@app.job``, or,
    with ``Soniq(unknown_tasks="refuse")``, a task name that no installed contract package
    and no handler of the app knows."""


def _seconds(delay: timedelta | float, what: str) -> float:
    """A delay as seconds: a timedelta or a finite number of seconds, at least zero."""
    seconds = delay.total_seconds() if isinstance(delay, timedelta) else delay
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, (int, float))
        or not math.isfinite(seconds)
        or seconds < 0
    ):
        raise ValueError(f"{what} must be a timedelta or seconds >= 0, got {delay!r}")
    return float(seconds)


class JobControl(SoniqError):
    """Raised by a handler (or middleware) to choose its job's outcome instead of failing
    it: :class:`Retry`, :class:`Discard` or :class:`Snooze`."""


class Retry(JobControl):
    """Fail this attempt and run the job again after ``delay`` (a timedelta or seconds;
    None: the task's backoff). It spends the attempt: with none left the job is dead."""

    def __init__(self, delay: timedelta | float | None = None, reason: str = "") -> None:
        self.delay = None if delay is None else _seconds(delay, "Retry(delay=...)")
        self.reason = reason
        super().__init__(reason or "retry requested")


class Discard(JobControl):
    """Give up on the job now, whatever attempts remain: it is dead-lettered (reason
    ``discarded``) with ``reason`` as its message, and can be replayed from there."""

    def __init__(self, reason: str = "") -> None:
        self.reason = reason
        super().__init__(reason or "discarded by the handler")


class Snooze(JobControl):
    """Not yet: run the job again after ``delay`` (a timedelta or seconds, more than zero)
    without spending an attempt; its last error, if any, is kept."""

    def __init__(self, delay: timedelta | float) -> None:
        self.delay = _seconds(delay, "Snooze(delay)")
        if self.delay == 0:
            raise ValueError("Snooze(delay) must be more than zero")
        super().__init__(f"snoozed for {self.delay:g}s")


class JobNotFoundError(SoniqError):
    """No job with the given id exists (it may have been pruned by retention)."""

    def __init__(self, job_id: int) -> None:
        super().__init__(f"job {job_id} does not exist (it may have been purged or pruned)")
        self.job_id = job_id


class JobFailedError(SoniqError):
    """The awaited job ended without a result: dead-lettered or cancelled. ``error`` says
    why (``error.reason`` is ``"cancelled"`` for a cancelled job)."""

    def __init__(self, job_id: int, state: str, error: JobError | None) -> None:
        why = f": [{error.reason}] {error.message}" if error is not None else ""
        super().__init__(f"job {job_id} is {state}{why}")
        self.job_id = job_id
        self.state = state
        self.error = error


class ResultTimeoutError(SoniqError):
    """The awaited job had not finished when the timeout ran out; it may still finish."""

    def __init__(self, job_id: int, timeout: float) -> None:
        super().__init__(f"job {job_id} did not finish within {timeout:g}s")
        self.job_id = job_id
        self.timeout = timeout
