"""The inspecting half of the ``Soniq`` facade: reading jobs, waiting for results,
cancelling, and the reports ``soniq status`` and ``soniq contracts check`` print."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import Any, TypeVar, overload

from pydantic import BaseModel

from soniq.checks import job_state, possible_job_ids, whole_number
from soniq.contracts import ContractsReport, check_waiting_jobs
from soniq.db.connection import Database
from soniq.db.jobs import JobStore
from soniq.errors import JobNotFoundError
from soniq.job import Job, JobState
from soniq.registry import Registry
from soniq.results import wait_for_result
from soniq.status import Status
from soniq.task_ref import TaskRef

M = TypeVar("M", bound=BaseModel)


class Inspection:
    """What :class:`soniq.Soniq` offers to look at jobs and act on one."""

    _database: Database
    _store: JobStore
    _registry: Registry

    async def get_job(self, job_id: int) -> Job:
        """The job with this id; raises :class:`JobNotFoundError` if there is none."""
        if not possible_job_ids(job_id):
            raise JobNotFoundError(job_id)
        job = await self._database.run(lambda db: self._store.reads.get(db, job_id))
        if job is None:
            raise JobNotFoundError(job_id)
        return job

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
