"""The inspecting half of the ``Soniq`` facade: reading jobs, waiting for results,
cancelling, the reports ``soniq status`` and ``soniq contracts check`` print, and the web
console."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from datetime import timedelta
from typing import Any, TypeAlias, TypeVar, overload

from pydantic import BaseModel

from soniq.checks import job_state, possible_job_ids, whole_number
from soniq.contracts import ContractsReport, check_waiting_jobs
from soniq.db.connection import Database
from soniq.db.jobs import JobStore
from soniq.dead_letter import DeadLetterQueue
from soniq.errors import ConfigurationError, JobNotFoundError
from soniq.job import Attempt, Job, JobState
from soniq.periodic import Schedules
from soniq.registry import Registry
from soniq.results import wait_for_result
from soniq.status import Status
from soniq.steering import Steering
from soniq.task_ref import TaskRef

M = TypeVar("M", bound=BaseModel)


# What app.console() returns: an ASGI application (scope, receive, send).
ASGIApp: TypeAlias = Callable[
    [
        MutableMapping[str, Any],
        Callable[[], Awaitable[MutableMapping[str, Any]]],
        Callable[[MutableMapping[str, Any]], Awaitable[None]],
    ],
    Awaitable[None],
]


class Inspection(Steering):
    """What :class:`soniq.Soniq` offers to look at jobs and act on one (and, through the
    console, on queues: :class:`~soniq.steering.Steering`)."""

    _database: Database
    _store: JobStore
    _registry: Registry
    _schedules: Schedules
    dead_letter: DeadLetterQueue

    async def get_job(self, job_id: int) -> Job:
        """The job with this id; raises :class:`JobNotFoundError` if there is none."""
        if not possible_job_ids(job_id):
            raise JobNotFoundError(job_id)
        job = await self._database.run(lambda db: self._store.reads.get(db, job_id))
        if job is None:
            raise JobNotFoundError(job_id)
        return job

    async def get_attempts(self, job_id: int) -> list[Attempt]:
        """Every failed attempt of the job, oldest first, each with its worker, times and
        error with traceback (kept as long as ``done_retention``; the job's own row says how
        its last attempt ended). Raises :class:`JobNotFoundError` if there is no such job
        and no attempt of it is kept."""
        attempts: list[Attempt] = []
        if possible_job_ids(job_id):
            attempts = await self._database.run(lambda db: self._store.reads.attempts(db, job_id))
        if not attempts:
            await self.get_job(job_id)
        return attempts

    async def list_jobs(
        self,
        *,
        state: JobState | str | None = None,
        queue: str | None = None,
        task_name: str | None = None,
        limit: int | None = 100,
    ) -> list[Job]:
        """Jobs matching every given filter, newest first (at most ``limit``; None: all)."""
        state_value = None if state is None else job_state(state)
        if limit is not None:
            whole_number(limit, "limit", minimum=1)
        return await self._database.run(
            lambda db: self._store.reads.list_jobs(
                db, state=state_value, queue=queue, task_name=task_name, limit=limit
            )
        )

    @overload
    async def get_result(self, job_id: int, *, timeout: timedelta | float) -> Any: ...

    @overload
    async def get_result(self, job_id: int, *, timeout: timedelta | float, model: type[M]) -> M: ...

    async def get_result(
        self, job_id: int, *, timeout: timedelta | float, model: type[BaseModel] | None = None
    ) -> Any:
        """Wait for the job to finish and return its handler's return value (parsed JSON, or
        an instance of ``model``). Raises :class:`JobFailedError` if the job is dead-lettered
        or cancelled, :class:`ResultTimeoutError` if it has not finished within ``timeout``,
        and :class:`JobNotFoundError` if it does not exist (or was pruned)."""
        seconds = timeout.total_seconds() if isinstance(timeout, timedelta) else float(timeout)
        return await wait_for_result(
            self._database, self._store, job_id, seconds=seconds, model=model
        )

    async def cancel(self, job_id: int) -> bool:
        """Cancel a job: a queued job becomes ``cancelled`` at once; a running one is asked to
        stop (its worker cancels the handler within about a second, and the job ends
        ``cancelled``, not retried). False when the job is already finished or missing."""
        if not possible_job_ids(job_id):
            return False
        state = await self._database.run(lambda db: self._store.actions.cancel(db, job_id))
        return state is not None

    async def status(self) -> Status:
        """Per-queue counts, live workers, and jobs waiting for a newer consumer."""
        return await self._database.run(self._store.reads.status)

    async def check_contracts(self, refs: Iterable[TaskRef[Any]] | None = None) -> ContractsReport:
        """Test every queued, scheduled and dead job of these tasks (default: the tasks this
        app registered from refs) as a worker of this app would: upcasters, then validation."""
        checked = list(self._registry.refs() if refs is None else refs)
        upcasters = {ref.name: self._registry.upcasters(ref.name) for ref in checked}
        return await self._database.run(
            lambda db: check_waiting_jobs(db, self._store.reads, checked, upcasters)
        )

    def console(
        self,
        *,
        allow_actions: bool = False,
        can: Callable[[Any, str, Mapping[str, Any] | None], bool] | None = None,
        hide_args: bool | Callable[[str], bool] = False,
    ) -> ASGIApp:
        """The web console over this app's schema, as an ASGI app to mount, e.g.
        ``api.mount("/soniq", app.console())`` (your service's auth middleware applies).

        Read-only unless ``allow_actions=True``, or ``can(request, action, job)`` decides each
        request (``action``: "cancel", "retry", "replay", "purge", or "pause" / "resume" of a
        queue; ``job``: the job's row, None for a bulk action or a queue). ``hide_args``
        (True, or a function of the task name) shows the args, results and tracebacks of
        those jobs as redacted. Needs ``soniq[console]``; see docs/console.md.
        """
        try:
            from soniq.console import Console
            from soniq.console.pages import Parts
        except ImportError as exc:
            raise ConfigurationError(
                f"the console needs its extra: pip install 'soniq-jobs[console]' ({exc})"
            ) from exc
        if can is None:
            can = (lambda request, action, job: True) if allow_actions else _refuse
        hidden = hide_args if callable(hide_args) else (lambda task: bool(hide_args))
        parts = Parts(
            database=self._database,
            store=self._store,
            registry=self._registry,
            schedules=self._schedules.all,
            dead_letter=self.dead_letter,
            cancel=self.cancel,
            hide_args=hidden,
            configure_queue=self.configure_queue,
            configured_queues=self.configured_queues,
        )
        return Console(parts, can=can).asgi()


def _refuse(request: Any, action: str, job: Mapping[str, Any] | None) -> bool:
    return False
