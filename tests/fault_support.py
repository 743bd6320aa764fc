"""Support for the fault-injection tests (tests/faults/): real worker processes running
``tests.apps.fault_app:app``, a way to find a worker's own PostgreSQL backends, and a TCP
proxy that can take "the database" away and bring it back."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from tests.processes import WorkerProcess

FAULT_APP = "tests.apps.fault_app:app"


class Workers:
    """Starts fault_app worker processes; whatever is still alive at teardown is killed."""

    def __init__(self, python: str, env: dict[str, str], logs: Path) -> None:
        self.python = python
        self.env = env
        self.logs = logs
        self.started: list[WorkerProcess] = []

    def start(self, *args: str, env: dict[str, str] | None = None) -> WorkerProcess:
        worker = WorkerProcess(
            self.python,
            FAULT_APP,
            {**self.env, **(env or {})},
            self.logs / f"worker{len(self.started)}.log",
            args,
        )
        self.started.append(worker)
        return worker

    def outputs(self) -> str:
        """Every worker's log, for assertion messages."""
        return "\n".join(f"--- worker pid {w.pid} ---\n{w.output()}" for w in self.started)

    def kill_all(self) -> None:
        for worker in self.started:
            if worker.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker.pid, signal.SIGCONT)  # a SIGSTOPped worker too
                worker.kill()
            else:
                worker.wait()


def worker_pid_of(worker_id: str | None) -> int | None:
    """The process id inside a worker id (``host:pid:random``)."""
    if worker_id is None:
        return None
    return int(worker_id.split(":")[-2])


def client_ports(pid: int) -> set[int]:
    """Local TCP ports of the sockets process ``pid`` holds (Linux /proc)."""
    inodes = set()
    fd_dir = f"/proc/{pid}/fd"
    for fd in os.listdir(fd_dir):
        with contextlib.suppress(OSError):
            target = os.readlink(f"{fd_dir}/{fd}")
            if target.startswith("socket:["):
                inodes.add(target[len("socket:[") : -1])
    ports = set()
    for table in (f"/proc/{pid}/net/tcp", f"/proc/{pid}/net/tcp6"):
        with contextlib.suppress(FileNotFoundError), open(table) as lines:
            next(lines)
            for line in lines:
                fields = line.split()
                if fields[9] in inodes:
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


async def soniq_backends(db: asyncpg.Connection, pids: Sequence[int]) -> list[dict[str, Any]]:
    """The PostgreSQL backends Soniq itself opened (pool: ``soniq``, LISTEN:
    ``soniq-listener``) for the given worker processes, matched by client port, so neither
    this test's own connections nor any other test's are ever included. Each row has the
    backend's ``pid``, ``application_name``, ``backend_start``, ``query`` (the last
    statement it ran) and the ``worker_pid`` it serves."""
    owner = {port: pid for pid in pids for port in client_ports(pid)}
    rows = await db.fetch(
        """SELECT pid, application_name, client_port, backend_start, query
           FROM pg_stat_activity
           WHERE datname = current_database()
             AND application_name IN ('soniq', 'soniq-listener')
             AND client_port = ANY($1::int[])
             AND pid <> pg_backend_pid()""",
        sorted(owner),
    )
    return [{**dict(row), "worker_pid": owner[row["client_port"]]} for row in rows]


class TcpProxy:
    """A TCP relay in front of PostgreSQL. ``down()`` drops every relayed connection and
    refuses new ones, which to a client looks like the database server going away;
    ``up()`` brings it back on the same port."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._transports: set[asyncio.BaseTransport] = set()

    async def up(self) -> None:
        self._server = await asyncio.start_server(
            self._relay, "127.0.0.1", self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def down(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for transport in list(self._transports):
            transport.abort()
        self._transports.clear()

    async def _relay(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection(*self.target)
        except OSError:
            client_w.transport.abort()
            return
        pair = {client_w.transport, server_w.transport}
        self._transports |= pair

        async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, ConnectionError):
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            writer.transport.abort()

        await asyncio.gather(pipe(client_r, server_w), pipe(server_r, client_w))
        self._transports -= pair

    def url(self, database_url: str) -> str:
        """``database_url`` pointed at the proxy instead of the server."""
        parts = urlsplit(database_url)
        userinfo, _, _ = parts.netloc.rpartition("@")
        netloc = f"{userinfo}@127.0.0.1:{self.port}" if userinfo else f"127.0.0.1:{self.port}"
        return urlunsplit(parts._replace(netloc=netloc))


async def assert_each_job_done_once(
    db: asyncpg.Connection, schema: str, side_effects: str, jobs: int
) -> int:
    """Every job is done exactly once and ran at least once, and no job ran more often than
    it was claimed (a second run needs a second claim, which only a lease that ran out
    allows). Returns how many jobs ran more than once."""
    states = await db.fetch(f"SELECT state, count(*) AS n FROM {schema}.jobs GROUP BY state")
    assert {r["state"]: r["n"] for r in states} == {"done": jobs}
    stats = await db.fetchrow(
        f"""WITH runs AS (
                -- a run is a 'start' row; handlers that record only their end, an 'end' row
                SELECT job_id, greatest(count(*) FILTER (WHERE phase = 'start'),
                                        count(*) FILTER (WHERE phase = 'end')) AS n
                FROM {side_effects} GROUP BY job_id)
            SELECT count(*) AS jobs_run,
                   count(*) FILTER (WHERE runs.n > j.attempts) AS ran_more_than_claimed,
                   count(*) FILTER (WHERE runs.n > 1) AS ran_twice_or_more,
                   count(*) FILTER (WHERE j.id IS NULL) AS unknown_jobs
            FROM runs LEFT JOIN {schema}.jobs j ON j.id = runs.job_id"""
    )
    assert stats["jobs_run"] == jobs, "every job's body ran"
    assert stats["unknown_jobs"] == 0
    assert stats["ran_more_than_claimed"] == 0, "one run per claim at most"
    return int(stats["ran_twice_or_more"])
