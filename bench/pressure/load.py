"""The steady load of a pressure run: a paced producer in this process, and ``soniq worker``
processes that run the jobs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from bench.pressure.task import TASK
from bench.probe import make_args
from soniq import Soniq

logger = logging.getLogger("bench.pressure")

WORKER_APP = "bench.pressure.worker_app:app"
BATCH_MAX = 500  # a producer that fell behind catches up in sends of at most this many jobs


class Producer:
    """Enqueues ``rate`` jobs a second, paced on a fixed tick.

    Every ``tick`` the jobs that fell due since the last tick go out: as one
    ``enqueue_many`` (one transaction, one notification), or, with ``single``, as that many
    ``enqueue`` calls. At most ``in_flight`` sends run at once; jobs that fall due while all
    are busy are owed and go with the next send, so the rate holds on average even when a
    commit stalls. ``ids`` holds every job a send stored; ``failed`` counts the jobs of sends
    that raised (not retried: a job that may or may not be stored would blur the check that
    every enqueued job ran exactly once).
    """

    def __init__(
        self, app: Soniq, rate: float, *, tick: float, in_flight: int, single: bool
    ) -> None:
        self._app = app
        self._rate = rate
        self._tick = tick
        self._single = single
        self._slots = asyncio.Semaphore(in_flight)
        self._sends: set[asyncio.Task[None]] = set()
        self._next = 0
        self.ids: list[int] = []
        self.failed = 0
        self.most_owed = 0  # the most jobs that were due but not yet sent, at any tick

    @property
    def rate(self) -> float:
        return self._rate

    def set_rate(self, rate: float) -> None:
        """Change the rate from now on (jobs already owed are still sent)."""
        self._rate = rate

    async def run(self) -> None:
        """Enqueue until cancelled; sends in flight are awaited by :meth:`stop`."""
        loop = asyncio.get_running_loop()
        owed = 0.0
        last = next_tick = loop.time()
        while True:
            next_tick += self._tick
            await asyncio.sleep(max(0.0, next_tick - loop.time()))
            now = loop.time()
            owed += self._rate * (now - last)
            last = now
            while owed >= 1 and not self._slots.locked():
                count = 1 if self._single else min(int(owed), BATCH_MAX)
                owed -= count
                await self._slots.acquire()
                task = asyncio.create_task(self._send(count))
                self._sends.add(task)
                task.add_done_callback(self._sends.discard)
            self.most_owed = max(self.most_owed, int(owed))

    async def _send(self, count: int) -> None:
        first, self._next = self._next, self._next + count
        args = [make_args(n) for n in range(first, first + count)]
        try:
            if self._single:
                self.ids.append(await self._app.enqueue(TASK, args[0]))
            else:
                self.ids.extend(await self._app.enqueue_many(TASK, args))
        except Exception as exc:
            if not self.failed:
                logger.warning(
                    "an enqueue failed (%s: %s); counted, not retried", type(exc).__name__, exc
                )
            self.failed += count
        finally:
            self._slots.release()

    async def stop(self, runner: asyncio.Task[None]) -> None:
        """Cancel ``runner`` (the task running :meth:`run`) and wait for sends in flight."""
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
        if self._sends:
            await asyncio.gather(*self._sends, return_exceptions=True)


class Workers:
    """``count`` ``soniq worker`` processes, each in a session of its own (a Ctrl-C on the
    terminal reaches only the harness, which then stops them), each logging to a file."""

    def __init__(
        self,
        count: int,
        *,
        concurrency: int,
        lease_seconds: float,
        env: Mapping[str, str],
        logs: Path,
    ) -> None:
        self._count = count
        self._options = [
            "--concurrency",
            str(concurrency),
            "--lease-seconds",
            str(lease_seconds),
            "--log-level",
            "INFO",
        ]
        self._env = dict(env)
        self._logs = logs
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        self._logs.mkdir(parents=True, exist_ok=True)
        for n in range(self._count):
            with (self._logs / f"worker-{n}.log").open("ab") as log:
                self.processes.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "soniq", "worker", WORKER_APP, *self._options],
                        env=self._env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )

    def check_alive(self) -> None:
        dead = [p.returncode for p in self.processes if p.poll() is not None]
        if dead:
            raise RuntimeError(f"worker process(es) exited with {dead}; see {self._logs}")

    def stop(self, timeout: float = 60) -> list[int | None]:
        """SIGTERM (running jobs finish, the rest are released), then wait; exit codes."""
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        codes: list[int | None] = []
        for process in self.processes:
            try:
                codes.append(process.wait(timeout))
            except subprocess.TimeoutExpired:
                codes.append(None)
        self.kill()
        return codes

    def kill(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait()


def worker_env(database_url: str, schema: str) -> dict[str, str]:
    """Environment of a worker process: this checkout importable, the run's database."""
    repo = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SONIQ_")}
    env.update(
        SONIQ_DATABASE_URL=database_url,
        SONIQ_SCHEMA=schema,
        PYTHONPATH=os.pathsep.join([str(repo), os.environ.get("PYTHONPATH", "")]),
        PYTHONUNBUFFERED="1",
    )
    return env
