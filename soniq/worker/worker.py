"""The worker: claims due jobs into free slots, runs them, and keeps its leases alive.

Services it wires together, each a small loop:

- claim loop (here): claims up to the number of free slots in one statement, sleeps until a
  notification, a freed slot or the poll interval;
- :class:`Notifier`: LISTEN connection that wakes the claim loop;
- :class:`Completer`: writes outcomes in batches, fenced by claim token;
- maintenance loop (here): renews the leases of owned jobs (heartbeat), rescues jobs whose
  lease expired on any worker, and prunes old finished jobs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta

import asyncpg

from soniq.db.connection import CONNECTION_ERRORS
from soniq.db.jobs import ClaimedJob, JobStore, Outcome
from soniq.registry import Registry
from soniq.worker.completer import Completer
from soniq.worker.executor import RetryPolicy, not_registered, run_attempt
from soniq.worker.notifier import Notifier

logger = logging.getLogger("soniq.worker")

_RESCUE_BATCH = 1000
_PRUNE_BATCH = 1000
_PRUNE_EVERY = 60.0


@dataclass(frozen=True)
class WorkerConfig:
    """How one worker runs; validated by :meth:`check`."""

    queues: tuple[str, ...] | None
    concurrency: int
    lease: timedelta
    poll_interval: timedelta
    shutdown_timeout: timedelta
    done_retention: timedelta


def new_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class Worker:
    """Runs registered jobs from the given queues until stopped or cancelled."""

    def __init__(
        self,
        *,
        url: str,
        pool: asyncpg.Pool,
        store: JobStore,
        registry: Registry,
        config: WorkerConfig,
        retry_policy: RetryPolicy,
    ) -> None:
        self.id = new_worker_id()
        self._url = url
        self._pool = pool
        self._store = store
        self._registry = registry
        self._config = config
        self._retry_policy = retry_policy
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._running: dict[int, asyncio.Task[None]] = {}
        # Claims this worker still owns: running, or finished but not yet written.
        self._owned: dict[int, uuid.UUID] = {}
        self._released: list[tuple[int, uuid.UUID]] = []
        self._threads = ThreadPoolExecutor(
            max_workers=config.concurrency, thread_name_prefix="soniq-job"
        )
        self._completer = Completer(store, pool, on_written=self._on_written)

    def stop(self) -> None:
        """Stop claiming; :meth:`run` then lets running jobs finish (up to the shutdown
        timeout), releases the rest back to the queue, and returns."""
        if not self._stopping.is_set():
            logger.info("worker %s stopping: no new claims", self.id)
        self._stopping.set()
        self._wake.set()

    def hard_stop(self) -> None:
        """Cancel running jobs now; they are released back to the queue unspent."""
        self.stop()
        for task in list(self._running.values()):
            task.cancel()

    async def run(self) -> None:
        logger.info(
            "worker %s started: queues=%s concurrency=%d tasks=%s",
            self.id,
            ",".join(self._config.queues) if self._config.queues else "(all)",
            self._config.concurrency,
            ",".join(self._registry.names()) or "(none)",
        )
        notifier = Notifier(
            self._url,
            self._store.schema,
            self._store.channel,
            queues=self._config.queues,
            wake=self._wake.set,
        )
        services = [
            asyncio.ensure_future(notifier.run()),
            asyncio.ensure_future(self._maintain()),
        ]
        completer = asyncio.ensure_future(self._completer.run())
        grace = self._config.shutdown_timeout.total_seconds()
        cancelled = False
        try:
            await self._claim_loop()
        except asyncio.CancelledError:
            cancelled = True
            grace = 0.0
        finally:
            await self._drain(grace)
            self._completer.close()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(completer), timeout=max(grace, 10.0))
            for service in [*services, completer]:
                service.cancel()
            await asyncio.gather(*services, completer, return_exceptions=True)
            self._threads.shutdown(wait=False, cancel_futures=True)
            logger.info("worker %s stopped", self.id)
        if cancelled:
            raise asyncio.CancelledError

    async def _claim_loop(self) -> None:
        failures = 0
        max_attempts = self._registry.max_attempts_by_task()
        while not self._stopping.is_set():
            free = self._config.concurrency - len(self._running)
            self._wake.clear()
            if free <= 0:
                await self._wait(None)
                continue
            try:
                jobs = await self._store.claim(
                    self._pool,
                    limit=free,
                    queues=self._config.queues,
                    max_attempts_by_task=max_attempts,
                    lease=self._config.lease,
                    worker_id=self.id,
                )
            except CONNECTION_ERRORS as exc:
                failures += 1
                delay = min(10.0, 0.2 * 2**failures)
                logger.warning(
                    "cannot claim jobs (%s: %s); retrying in %.1fs",
                    type(exc).__name__,
                    exc,
                    delay,
                )
                await self._wait(delay)
                continue
            if failures:
                logger.info("claiming again after the database came back")
                failures = 0
            for job in jobs:
                self._owned[job.id] = job.claim_token
                self._running[job.id] = asyncio.ensure_future(self._run_job(job))
            if len(jobs) < free:
                await self._wait(self._config.poll_interval.total_seconds())

    async def _wait(self, timeout: float | None) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)

    async def _run_job(self, job: ClaimedJob) -> None:
        spec = self._registry.get(job.task_name)
        try:
            if spec is None:
                outcome = not_registered(job, self._registry.names())
            else:
                outcome = await run_attempt(
                    job, spec, policy=self._retry_policy, threads=self._threads
                )
        except asyncio.CancelledError:
            self._released.append((job.id, job.claim_token))
            raise
        except Exception:  # a bug in Soniq itself: leave the job to the rescuer
            logger.exception("worker %s failed to run job %d", self.id, job.id)
            return
        finally:
            was_full = len(self._running) >= self._config.concurrency
            self._running.pop(job.id, None)
            if was_full:
                self._wake.set()
        self._completer.add(outcome)

    def _on_written(self, outcomes: list[Outcome], owned: set[int]) -> None:
        for outcome in outcomes:
            self._owned.pop(outcome.job_id, None)
            if outcome.job_id not in owned:
                logger.warning(
                    "job %d: outcome %r discarded, this worker no longer owns the job (its "
                    "lease expired and another worker took it over)",
                    outcome.job_id,
                    outcome.state,
                )

    async def _drain(self, grace: float) -> None:
        """Let running jobs finish for up to ``grace`` seconds, cancel the rest, and give
        their claims back to the queue without spending an attempt."""
        running = list(self._running.values())
        if running and grace > 0:
            logger.info("waiting up to %.0fs for %d running job(s)", grace, len(running))
            await asyncio.wait(running, timeout=grace)
        for task in self._running.values():
            task.cancel()
        await asyncio.gather(*self._running.values(), return_exceptions=True)
        if self._released:
            await self._release(self._released)

    async def _release(self, claims: Sequence[tuple[int, uuid.UUID]]) -> None:
        for attempt in range(5):
            try:
                released = await self._store.release(self._pool, claims)
            except CONNECTION_ERRORS as exc:
                logger.warning("cannot release jobs yet (%s); retrying", type(exc).__name__)
                await asyncio.sleep(0.2 * 2**attempt)
                continue
            for job_id, _ in claims:
                self._owned.pop(job_id, None)
            logger.info("released %d unfinished job(s) back to the queue", len(released))
            return
        logger.error(
            "could not release %d job(s); they return to the queue when their lease expires",
            len(claims),
        )

    async def _maintain(self) -> None:
        """Heartbeat, rescue and prune, every third of the lease."""
        interval = self._config.lease.total_seconds() / 3
        last_prune = 0.0
        while True:
            await asyncio.sleep(interval)
            try:
                if self._owned:
                    claims = list(self._owned.items())
                    kept = await self._store.heartbeat(self._pool, claims, self._config.lease)
                    for job_id, _ in claims:
                        if job_id not in kept and job_id in self._owned:
                            logger.warning(
                                "job %d: lease lost to another worker; its outcome will be "
                                "discarded",
                                job_id,
                            )
                rescued = await self._store.rescue_expired(self._pool, limit=_RESCUE_BATCH)
                for job_id, state in rescued:
                    logger.warning(
                        "job %d: its worker's lease expired; %s",
                        job_id,
                        "dead-lettered" if state == "dead" else "requeued",
                    )
                now = time.monotonic()
                if now - last_prune >= _PRUNE_EVERY:
                    last_prune = now
                    await self._store.prune_finished(
                        self._pool, older_than=self._config.done_retention, limit=_PRUNE_BATCH
                    )
            except CONNECTION_ERRORS as exc:
                logger.warning("maintenance skipped (%s: %s)", type(exc).__name__, exc)
