"""Optional Prometheus metrics (the ``metrics`` extra: ``prometheus-client``).

Nothing here is imported unless :meth:`Soniq.serve_metrics` is called; without it the
producer and worker only test an attribute for None.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from soniq.errors import ConfigurationError

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from soniq.job import ClaimedJob, Outcome


class Metrics:
    """One app's counters and histograms, in a registry of their own, and the HTTP server
    that exposes them."""

    def __init__(self) -> None:
        try:
            import prometheus_client as prom
        except ImportError:
            raise ConfigurationError(
                "metrics need prometheus-client: pip install 'soniq-jobs[metrics]'"
            ) from None
        self._prom = prom
        self.registry = prom.CollectorRegistry(auto_describe=True)
        r = self.registry
        self._enqueued = prom.Counter(
            "soniq_jobs_enqueued", "Jobs enqueued.", ["task", "queue"], registry=r
        )
        self._started = prom.Counter(
            "soniq_jobs_started", "Attempts started.", ["task", "queue"], registry=r
        )
        self._succeeded = prom.Counter(
            "soniq_jobs_succeeded", "Attempts that succeeded.", ["task", "queue"], registry=r
        )
        self._failed = prom.Counter(
            "soniq_jobs_failed",
            "Attempts that failed (retried or dead-lettered).",
            ["task", "queue", "reason"],
            registry=r,
        )
        self._retried = prom.Counter(
            "soniq_jobs_retried", "Failed attempts queued to retry.", ["task", "queue"], registry=r
        )
        self._fenced = prom.Counter(
            "soniq_outcomes_fenced",
            "Outcomes discarded because the worker no longer owned the job (its lease ran "
            "out and another worker took the job over).",
            ["task", "queue"],
            registry=r,
        )
        self._dead = prom.Counter(
            "soniq_jobs_dead_lettered",
            "Jobs moved to the dead-letter queue.",
            ["task", "queue", "reason"],
            registry=r,
        )
        self._run = prom.Histogram(
            "soniq_job_run_seconds", "Run time of an attempt.", ["task"], registry=r
        )
        self._wait = prom.Histogram(
            "soniq_job_queue_wait_seconds",
            "From due (enqueued, scheduled or retry time) to claimed.",
            ["task"],
            registry=r,
        )
        # Label children per task and queue, so a job costs dict lookups, not label parsing.
        self._children: dict[tuple[str, str], tuple[Any, ...]] = {}
        # Task and queue of each outcome not yet written: counted once the write says
        # whether the worker still owned the job.
        self._unwritten: dict[int, tuple[str, str]] = {}
        self._server: WSGIServer | None = None

    def serve(self, port: int, host: str) -> int:
        """Start the exposition HTTP server on a daemon thread; returns the bound port."""
        try:
            server, _ = self._prom.start_http_server(port, addr=host, registry=self.registry)
        except OSError as exc:
            raise ConfigurationError(f"cannot serve metrics on {host}:{port}: {exc}") from None
        self._server = server
        return int(server.server_port)

    def close(self) -> None:
        """Stop the HTTP server."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def _for(self, task: str, queue: str) -> tuple[Any, ...]:
        children = self._children.get((task, queue))
        if children is None:
            children = (
                self._started.labels(task, queue),
                self._succeeded.labels(task, queue),
                self._retried.labels(task, queue),
                self._run.labels(task),
                self._wait.labels(task),
            )
            self._children[task, queue] = children
        return children

    def enqueued(self, task: str, queue: str, count: int = 1) -> None:
        self._enqueued.labels(task, queue).inc(count)

    def started(self, job: ClaimedJob) -> None:
        started, _, _, _, wait = self._for(job.task_name, job.queue)
        started.inc()
        wait.observe(job.queue_wait)

    def finished(self, job: ClaimedJob, outcome: Outcome, run_seconds: float) -> None:
        """An attempt ended (its outcome is counted by :meth:`written`)."""
        self._for(job.task_name, job.queue)[3].observe(run_seconds)
        self._unwritten[outcome.job_id] = (job.task_name, job.queue)

    def written(self, outcome: Outcome, owned: bool) -> None:
        """The outcome was written (``owned``) or discarded by fencing."""
        labels = self._unwritten.pop(outcome.job_id, None)
        if labels is None:
            return
        task, queue = labels
        if not owned:
            self._fenced.labels(task, queue).inc()
            return
        _, succeeded, retried, _, _ = self._for(task, queue)
        if outcome.state == "done":
            succeeded.inc()
            return
        reason = outcome.error.reason if outcome.error is not None else ""
        if outcome.state == "queued":
            self._failed.labels(task, queue, reason).inc()
            retried.inc()
        elif outcome.state == "dead":
            self._failed.labels(task, queue, reason).inc()
            self._dead.labels(task, queue, reason).inc()

    def unwritten(self, outcome: Outcome) -> None:
        """The outcome could not be written at all (the rescuer will retry the job)."""
        self._unwritten.pop(outcome.job_id, None)
