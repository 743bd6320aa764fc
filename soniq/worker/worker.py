"""The worker: claims due jobs into free slots, runs them, and owns every service that runs
beside its claim loop, all assembled here and all on one lifecycle (start, stop, wait):

- claim loop (here): claims up to the number of free slots in one statement (and from
  the queues with limits, :class:`LimitedClaims`), sleeps until a notification, a freed
  slot, a rate limit's window opening or the poll interval;
- :class:`Notifier`: LISTEN connection that wakes the claim loop and cancels running jobs
  on request;
- :class:`Completer`: writes outcomes in batches, fenced by claim token;
- :class:`Maintenance`: renews this worker's leases (the heartbeat is here) and rescues
  jobs whose lease expired on any worker;
- :class:`Retention`: drops history, attempts and dead letters past their retention (apart
  from the heartbeat, which never waits on it);
- :class:`Presence`: this worker's row in the workers table;
- :class:`Promoter`: moves scheduled jobs into the live ring as they fall due;
- :class:`Recycler`: truncates the live ring's drained partitions;
- :class:`Scheduler`: enqueues the ticks of the app's periodic schedules (when it has any);
- signal handling (:func:`handle_signals`) while the worker runs in the main thread.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from collections.abc import Sequence
from datetime import timedelta

import asyncpg

from soniq import tracing
from soniq.backoff import Backoff
from soniq.db.connection import CONNECTION_ERRORS, Database, pooled
from soniq.db.jobs import JobStore
from soniq.db.jobs.claims import CLAIM_WINDOW, EVERYTHING
from soniq.db.periodic import PeriodicStore
from soniq.db.workers import WorkerStore
from soniq.job import Claim, ClaimedJob, JobError, Outcome
from soniq.metrics import Metrics
from soniq.periodic import Schedule
from soniq.registry import Registry
from soniq.settings import Settings, WorkerSettings
from soniq.waiting import backoff, wait_event
from soniq.worker.attempt import job_fields, log_outcome, run_claimed
from soniq.worker.completer import Completer
from soniq.worker.limited import LimitedClaims
from soniq.worker.maintenance import Maintenance
from soniq.worker.notifier import Notifier
from soniq.worker.presence import Presence
from soniq.worker.promoter import Promoter
from soniq.worker.recycler import Recycler
from soniq.worker.retention import Retention
from soniq.worker.scheduler import Scheduler
from soniq.worker.service import Service
from soniq.worker.signals import handle_signals
from soniq.worker.threads import HandlerThreads

logger = logging.getLogger("soniq.worker")

# How often a worker looks at all due jobs, beyond the claim window, when it is not working
# through a backlog: the longest a job outside the window (enqueued in a transaction that
# stayed open for long, released or rescued long after it fell due) waits.
_FULL_LOOK_EVERY = 1.0


def new_worker_id() -> str:
    """``host:pid:random``, unique across a fleet. Host names and process ids repeat (every
    container may run its worker as pid 1 under one host name), so the random part decides.
    With 64 bits, two ids that share host and pid collide with even odds only among about
    five billion of them; 24 bits reached even odds at about 5,000. Readers take the pid
    with ``split(":")[-2]``, so the random part never contains a colon."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(8)}"


class Worker:
    """Runs registered jobs from the given queues until stopped or cancelled."""

    def __init__(
        self,
        *,
        database: Database,
        pool: asyncpg.Pool,
        store: JobStore,
        registry: Registry,
        config: WorkerSettings,
        app_settings: Settings,
        retry_policy: Backoff,
        schedules: Sequence[Schedule],
        metrics: Metrics | None = None,
    ) -> None:
        self.id = new_worker_id()
        self._metrics = metrics
        self._database = database
        self._pool = pool
        self._store = store
        self._registry = registry
        self._config, self._retry_policy = config, retry_policy
        self._wake, self._stopping, self._claims_stopped = (asyncio.Event() for _ in range(3))
        self._running: dict[int, asyncio.Task[None]] = {}
        # Claims this worker still owns: running, or finished but not yet written.
        self._owned: dict[int, Claim] = {}
        # Jobs whose outcome the completer is writing, for the log line of a fenced outcome.
        self._recording: dict[int, ClaimedJob] = {}
        self._released: list[Claim] = []
        self._cancel_requested: set[int] = set()
        self._max_attempts = registry.max_attempts_by_task()
        self._versions = registry.versions_by_task()
        # monotonic time of the next claim over all due jobs; did the last fill every slot?
        self._next_full_look, self._backlog = 0.0, False
        self._checks: set[asyncio.Future[None]] = set()  # cancel hints being checked
        self._threads = HandlerThreads("soniq-job")
        self._limits = LimitedClaims(
            store,
            config.queues,
            max_attempts_by_task=self._max_attempts,
            version_by_task=self._versions,
            lease=config.lease,
            worker_id=self.id,
        )
        self._rate_wait: float | None = None  # seconds until a rate limit lets a job start
        self._completer = Completer(
            store, pool, on_written=self._on_written, on_unrecorded=self._on_unrecorded
        )
        self._services: list[Service] = [
            Maintenance(
                pool,
                store,
                lease=config.lease,
                renew=self._renew_leases,
            ),
            Retention(
                pool,
                store,
                done_retention=app_settings.done_retention,
                dead_retention=app_settings.dead_retention,
            ),
            Presence(
                WorkerStore(store.schema),
                pool,
                worker_id=self.id,
                registry=registry,
                queues=config.queues,
                concurrency=config.concurrency,
                lease=config.lease,
            ),
            Promoter(pool, store),
            Recycler(pool, store),
        ]
        if schedules:
            self._services.append(Scheduler(PeriodicStore(store.schema), store, pool, schedules))
        if database.can_listen:
            notifier = Notifier(
                database,
                store.channel,
                queues=config.queues,
                wake=self._wake.set,
                cancel_channel=store.cancel_channel,
                on_cancel=self.check_cancel,
            )
            self._services.append(notifier)

    def stop(self) -> None:
        """Stop claiming; :meth:`run` then lets running jobs finish (up to the shutdown
        timeout), releases the rest back to the queue, and returns."""
        if not self._stopping.is_set():
            logger.info("worker %s stopping: no new claims", self.id)
        self._stopping.set()
        self._wake.set()

    async def claims_stopped(self) -> None:
        """Wait until no claim is in flight and none will start: after :meth:`stop`, a job
        enqueued once this returns stays queued for another worker."""
        await self._claims_stopped.wait()

    def hard_stop(self) -> None:
        """Cancel running jobs now; they are released back to the queue unspent."""
        self.stop()
        for task in list(self._running.values()):
            task.cancel()

    def check_cancel(self, job_id: int) -> None:
        """A cancel notification named this job: only a hint (anyone who can connect may
        send one), so the job's row decides, read under this worker's claim."""
        claim = self._owned.get(job_id)
        if job_id in self._running and claim is not None:
            check = asyncio.ensure_future(self._cancel_if_requested(claim))
            self._checks.add(check)
            check.add_done_callback(self._checks.discard)

    async def _cancel_if_requested(self, claim: Claim) -> None:
        try:
            async with pooled(self._pool) as conn:
                requested = await self._store.reads.cancel_requested(conn, [claim])
        except CONNECTION_ERRORS:
            return  # the next heartbeat reads the same column
        if claim.job_id in requested:
            self.cancel_job(claim.job_id)

    def cancel_job(self, job_id: int) -> None:
        """Cancel the task running this job, if it runs here; the job ends ``cancelled``."""
        task = self._running.get(job_id)
        if task is None or job_id in self._cancel_requested:
            return
        logger.info("job %d: cancellation requested; cancelling its handler", job_id)
        self._cancel_requested.add(job_id)
        task.cancel()

    def _warn_unserved(self) -> None:
        """A warning per queue that registered tasks go to and this worker does not serve:
        their jobs would wait for another worker."""
        served = self._config.queues
        if not served:
            return
        for queue, tasks in self._registry.unserved(served).items():
            logger.warning(
                "tasks %s go to queue %s, which this worker does not serve (queues=%s): "
                "add it to the worker's queues, or run another worker for it",
                ", ".join(tasks),
                queue,
                ",".join(served),
            )

    async def run(self) -> None:
        """Claim and run jobs until :meth:`stop`, a signal, or cancellation; see
        :meth:`soniq.Soniq.run_worker` for how running jobs end."""
        logger.info(
            "worker %s started: queues=%s concurrency=%d tasks=%s%s",
            self.id,
            ",".join(self._config.queues) if self._config.queues else "(all)",
            self._config.concurrency,
            ",".join(self._registry.names()) or "(none)",
            ""
            if self._database.can_listen
            else "; no LISTEN (transaction pooling without "
            f"listen_url): polling every {self._config.poll_interval.total_seconds():g}s",
        )
        hint = tracing.missing_hint()
        if hint is not None:
            logger.warning(hint)
        self._warn_unserved()
        for service in [*self._services, self._completer]:
            service.start()
        restore_signals = handle_signals(self.stop, self.hard_stop)
        grace = self._config.shutdown_timeout.total_seconds()
        cancelled = False
        try:
            await self._claim_loop()
        except asyncio.CancelledError:
            cancelled = True
            grace = 0.0
        finally:
            self._claims_stopped.set()
            for check in self._checks:
                check.cancel()
            await self._finish_running(grace)
            self._completer.stop()  # it writes what is buffered, then ends
            await self._completer.wait(timeout=max(grace, 10.0))
            for service in self._services:
                service.stop()
            for service in self._services:
                await service.wait()
            restore_signals()
            logger.info("worker %s stopped", self.id)
        if cancelled:
            raise asyncio.CancelledError

    async def _claim_loop(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            free = self._config.concurrency - len(self._running)
            self._wake.clear()
            if free <= 0:
                await self._wait(None)
                continue
            try:
                claimed = await self._claim(free)
            except CONNECTION_ERRORS as exc:
                failures += 1
                delay = backoff(failures)
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
            if claimed < free:
                poll = self._config.poll_interval.total_seconds()
                # a rate limit's window opening is a wake-up of its own
                await self._wait(poll if self._rate_wait is None else min(poll, self._rate_wait))

    async def _claim(self, free: int) -> int:
        """Claim and start up to ``free`` jobs: those due within the claim window first (a
        scan that stays short however long a transaction pins the xmin horizon; see
        :mod:`soniq.db.jobs.claims`), then, when that comes back short, all due jobs, at
        most once a second unless the last full look found a backlog. The recent jobs
        start before the full look runs: while the horizon is pinned, the full look walks
        every dead entry of the ring, which would hold them back by as long. Returns how
        many jobs were claimed."""

        async def claim(limit: int, window: timedelta) -> list[ClaimedJob]:
            return await self._store.claims.claim(
                conn,
                limit=limit,
                queues=self._config.queues,
                max_attempts_by_task=self._max_attempts,
                version_by_task=self._versions,
                lease=self._config.lease,
                worker_id=self.id,
                window=window,
            )

        async with pooled(self._pool) as conn:
            jobs = await claim(free, CLAIM_WINDOW)
            self._start(jobs)
            claimed = len(jobs)
            now = time.monotonic()
            if claimed < free and (self._backlog or now >= self._next_full_look):
                self._next_full_look = now + _FULL_LOOK_EVERY
                more = await claim(free - claimed, EVERYTHING)
                self._backlog = len(more) == free - claimed
                self._start(more)
                claimed += len(more)
            if claimed < free:
                limited, self._rate_wait = await self._limits.claim(conn, free - claimed)
                self._start(limited)
                claimed += len(limited)
        return claimed

    def _start(self, jobs: list[ClaimedJob]) -> None:
        traced = tracing.active()
        for job in jobs:
            self._owned[job.id] = job.claim
            self._running[job.id] = asyncio.ensure_future(self._run_job(job, traced))

    async def _wait(self, timeout: float | None) -> None:
        await wait_event(self._wake, timeout)

    async def _run_job(self, job: ClaimedJob, traced: bool) -> None:
        metrics = self._metrics
        if metrics is not None:
            metrics.started(job)
            began = time.perf_counter()
        try:
            outcome = await run_claimed(
                job,
                self._registry,
                policy=self._retry_policy,
                threads=self._threads,
                traced=traced,
            )
        except asyncio.CancelledError:
            if job.id not in self._cancel_requested:
                self._released.append(self._owned.get(job.id, job.claim))
                raise
            outcome = Outcome(
                job.claim,
                "cancelled",
                error=JobError("cancelled", "cancelled by app.cancel() while running"),
            )
        except Exception:  # a bug in Soniq itself: leave the job to the rescuer
            logger.exception("worker %s failed to run job %d", self.id, job.id)
            self._owned.pop(job.id, None)  # let its lease lapse: the rescuer takes it back
            return
        finally:
            self._cancel_requested.discard(job.id)
            was_full = len(self._running) >= self._config.concurrency
            self._running.pop(job.id, None)
            if was_full:
                self._wake.set()
        if metrics is not None:
            metrics.finished(job, outcome, time.perf_counter() - began)
        log_outcome(job, outcome)
        self._recording[job.id] = job
        self._completer.add(outcome)

    def _on_written(self, outcomes: list[Outcome], owned: set[int]) -> None:
        for outcome in outcomes:
            self._owned.pop(outcome.job_id, None)
            job = self._recording.pop(outcome.job_id, None)
            if job is not None and job.queue in self._limits.names:
                self._wake.set()  # its place under the queue's limit is free now
            if self._metrics is not None:
                self._metrics.written(outcome, outcome.job_id in owned)
            if outcome.job_id not in owned:
                fields = {"job_id": outcome.job_id, "outcome": "fenced", "state": outcome.state}
                if job is not None:
                    fields.update(job_fields(job))
                logger.warning(
                    "job %d (%s, queue %s, attempt %s): outcome %r discarded, this worker no "
                    "longer owns the job (its lease expired and another worker took it over, "
                    "or the same outcome was already written just before the connection "
                    "dropped)",
                    outcome.job_id,
                    fields.get("task", "?"),
                    fields.get("queue", "?"),
                    fields.get("attempt", "?"),
                    outcome.state,
                    extra={"soniq": fields},
                )

    def _on_unrecorded(self, outcome: Outcome) -> None:
        self._recording.pop(outcome.job_id, None)
        self._owned.pop(outcome.job_id, None)  # let the lease run out: the rescuer retries
        if self._metrics is not None:
            self._metrics.unwritten(outcome)

    async def _finish_running(self, grace: float) -> None:
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

    async def _release(self, claims: Sequence[Claim]) -> None:
        for attempt in range(5):
            try:
                async with pooled(self._pool) as conn:
                    released = await self._store.outcomes.release(conn, claims)
            except CONNECTION_ERRORS as exc:
                logger.warning("cannot release jobs yet (%s); retrying", type(exc).__name__)
                await asyncio.sleep(backoff(attempt))
                continue
            for claim in claims:
                self._owned.pop(claim.job_id, None)
            logger.info("released %d unfinished job(s) back to the queue", len(released))
            return
        logger.error(
            "could not release %d job(s); they return to the queue when their lease expires",
            len(claims),
        )

    async def _renew_leases(self, conn: asyncpg.Connection) -> None:
        """Renew the leases this worker still holds; stop renewing the ones it lost."""
        if not self._owned:
            return
        claims = list(self._owned.values())
        kept = await self._store.maintenance.heartbeat(conn, claims, self._config.lease)
        for claim in claims:
            if claim.job_id not in kept:
                continue
            slot, cancel_requested = kept[claim.job_id]
            if slot != claim.slot and self._owned.get(claim.job_id) == claim:
                self._owned[claim.job_id] = claim._replace(slot=slot)  # the recycler moved it
            if cancel_requested:
                self.cancel_job(claim.job_id)
        for claim in claims:
            job_id = claim.job_id
            if job_id in kept or self._owned.get(job_id, claim).token != claim.token:
                continue
            self._owned.pop(job_id, None)  # renewing it again is pointless
            # A finished job's outcome may have been written meanwhile (that also ends the
            # lease); if it was not, the completer reports the discarded outcome.
            if job_id in self._running:
                logger.warning(
                    "job %d: lease lost while running (it expired and the job was taken "
                    "back); the outcome of this run will be discarded",
                    job_id,
                )
