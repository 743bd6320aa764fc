"""graphile-worker (Node.js) under test, in its own fastest published configuration.

Its workers are Node processes (``bench/graphile/worker.js``) with the settings of its
repository's ``perfTest/graphile.config.js``: 24 concurrent jobs per process, a pool of 25,
a local queue of 500 jobs, completions batched with no delay; one process and two. Jobs are
added from Python by its own SQL functions, ``add_job`` and, for bulk, ``add_jobs`` called
as its perfTest's ``init.js`` calls it. A drain starts the processes first and waits until
each has loaded and printed "ready"; the clock starts at "go" (Node's start-up is not
counted, as Python's imports are not counted for the others).

graphile-worker is pinned to 0.17.3 in ``bench/graphile/package.json`` (and its lock file):
the newest release that runs on Node 20, which Debian's ``nodejs`` package is here; 0.18.0
needs Node 22.18 or later. The Node packages are installed with ``npm ci`` from the lock
file the first time the bench needs them; without ``node`` and ``npm`` the system is skipped.

graphile-worker deletes a job when it completes and keeps no completion time, so this
adapter adds one statement-level trigger to its jobs table (instrumentation, not part of
graphile-worker): each completing DELETE appends (now(), rows deleted) to
``bench_completions``, which gives the count of finished jobs and the time of the last
completion on the database's clock, the same clock Soniq's ``finished_at`` is taken from.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.config import BULK, SINGLE
from bench.systems.base import Drain, StartWorker, StopWorker, System, Variant

PROJECT = Path(__file__).resolve().parent.parent / "graphile"
DRIVER = PROJECT / "worker.js"
SCHEMA = "graphile_worker"
TASK = "noop"
CONCURRENT_JOBS = 24  # per process, as in graphile-worker's perfTest/graphile.config.js
PROCESSES = (1, 2)
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
_INSTALL_TIMEOUT = 300

_INSTRUMENT = f"""
CREATE UNLOGGED TABLE IF NOT EXISTS bench_completions (
    at timestamptz NOT NULL,
    jobs bigint NOT NULL
);
CREATE OR REPLACE FUNCTION bench_record_completions() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO bench_completions (at, jobs) SELECT now(), count(*) FROM gone HAVING count(*) > 0;
    RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS bench_record_completions ON {SCHEMA}._private_jobs;
CREATE TRIGGER bench_record_completions AFTER DELETE ON {SCHEMA}._private_jobs
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT
    EXECUTE FUNCTION bench_record_completions();
"""

_ADD_JOB = f"SELECT id FROM {SCHEMA}.add_job($1, $2::json)"
_ADD_JOBS = f"""
    SELECT count(*) FROM {SCHEMA}.add_jobs(
        ARRAY(SELECT json_populate_recordset(NULL::{SCHEMA}.job_spec, $1::json)))"""


def _pinned_version() -> str:
    package = json.loads((PROJECT / "package.json").read_text())
    return str(package["dependencies"]["graphile-worker"])


def _installed_version() -> str | None:
    try:
        installed = PROJECT / "node_modules" / "graphile-worker" / "package.json"
        return str(json.loads(installed.read_text())["version"])
    except (OSError, ValueError, KeyError):
        return None


def _drain(processes: int) -> Drain:
    label = f"{processes}x{CONCURRENT_JOBS}"
    return Drain(f"drain_{label}", processes * CONCURRENT_JOBS, label, {"processes": processes})


class _Process:
    """One ``worker.js run`` process; its stderr is collected as it comes."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        assert proc.stderr is not None
        self.stderr = asyncio.ensure_future(proc.stderr.read())

    @classmethod
    async def spawn(cls, url: str) -> _Process:
        env = dict(os.environ, GRAPHILE_DATABASE_URL=url, NO_LOG_SUCCESS="1")
        proc = await asyncio.create_subprocess_exec(
            "node", str(DRIVER), "run", cwd=PROJECT, env=env,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        return cls(proc)

    async def line(self, timeout: float) -> str:
        assert self.proc.stdout is not None
        raw = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if not raw:
            await self.proc.wait()
            raise RuntimeError(f"worker.js exited {self.proc.returncode}: {await self._errors()}")
        return raw.decode().strip()

    def send(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{command}\n".encode())

    async def stop(self) -> int:
        """Stop gracefully; the handler calls it made."""
        try:
            self.send("stop")
            report = await self.line(STOP_TIMEOUT)
            await asyncio.wait_for(self.proc.wait(), STOP_TIMEOUT)
        finally:
            self.kill()
        if self.proc.returncode != 0:
            raise RuntimeError(f"worker.js exited {self.proc.returncode}: {await self._errors()}")
        return int(json.loads(report)["ran"])

    def kill(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()

    async def _errors(self) -> str:
        with contextlib.suppress(asyncio.TimeoutError):
            return (await asyncio.wait_for(self.stderr, 5.0)).decode()[-2000:]
        return "(no stderr)"


class GraphileSystem(System):
    name = "graphile"
    packages = ("asyncpg",)
    external_workers = True

    @classmethod
    def unavailable(cls) -> str | None:
        missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
        if missing:
            return f"needs {' and '.join(missing)} (Node.js) on PATH"
        if _installed_version() != _pinned_version():
            done = subprocess.run(
                ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                cwd=PROJECT, capture_output=True, text=True, timeout=_INSTALL_TIMEOUT,
            )  # fmt: skip
            if done.returncode != 0 or _installed_version() != _pinned_version():
                return f"npm ci in {PROJECT} failed: {done.stderr.strip()[-500:]}"
        return None

    @classmethod
    def versions(cls) -> dict[str, str]:
        node = subprocess.run(["node", "--version"], capture_output=True, text=True)
        return {"graphile-worker": _installed_version() or "?", "node": node.stdout.strip()}

    def variants(self) -> list[Variant]:
        drains = tuple(_drain(n) for n in PROCESSES)
        return [Variant("graphile", "graphile-worker", (SINGLE, BULK), drains)]

    def tables(self) -> list[str]:
        return [f"{SCHEMA}._private_jobs", f"{SCHEMA}._private_job_queues", "bench_completions"]

    def channels(self) -> list[str]:
        return ["jobs:insert"]

    async def _open(self, *, install: bool) -> None:
        if install:
            env = dict(os.environ, GRAPHILE_DATABASE_URL=self.url)
            proc = await asyncio.create_subprocess_exec(
                "node", str(DRIVER), "migrate", cwd=PROJECT, env=env,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            )  # fmt: skip
            out, _ = await proc.communicate()
            if proc.returncode != 0:
                raise RuntimeError(f"graphile-worker migrate failed: {out.decode()[-2000:]}")
            await self.db.execute(_INSTRUMENT)

    async def _close(self) -> None:
        pass

    async def enqueue_one(self, variant: str, args: dict[str, Any]) -> None:
        await self.db.fetchval(_ADD_JOB, TASK, json.dumps(args, separators=(",", ":")))

    async def enqueue_many(self, variant: str, args_list: list[dict[str, Any]]) -> None:
        specs = [{"identifier": TASK, "payload": args} for args in args_list]
        await self.db.fetchval(_ADD_JOBS, json.dumps(specs, separators=(",", ":")))

    async def prepare_worker(self, variant: str, drain: Drain) -> StartWorker:
        count = int(drain.options.get("processes", 1))
        processes: list[_Process] = []
        try:
            for _ in range(count):
                processes.append(await _Process.spawn(self.url))
            for process in processes:
                if (line := await process.line(READY_TIMEOUT)) != "ready":
                    raise RuntimeError(f"worker.js said {line!r} instead of ready")
        except BaseException:
            for process in processes:
                process.kill()
            raise

        async def start() -> StopWorker:
            for process in processes:
                process.send("go")

            async def stop() -> int | None:
                calls = await asyncio.gather(*(p.stop() for p in processes), return_exceptions=True)
                for outcome in calls:
                    if isinstance(outcome, BaseException):
                        raise outcome
                return sum(c for c in calls if isinstance(c, int))

            return stop

        return start

    async def start_worker(self, variant: str, drain: Drain) -> StopWorker:
        start = await self.prepare_worker(variant, drain)
        return await start()

    async def stored(self) -> int:
        return await self.count(f"SELECT count(*) FROM {SCHEMA}._private_jobs")

    async def finished(self) -> int:
        return await self.count("SELECT coalesce(sum(jobs), 0) FROM bench_completions")

    async def unfinished(self) -> int:
        return await self.count(f"SELECT count(*) FROM {SCHEMA}._private_jobs")

    async def last_finished(self) -> datetime | None:
        value: datetime | None = await self.db.fetchval("SELECT max(at) FROM bench_completions")
        return value
