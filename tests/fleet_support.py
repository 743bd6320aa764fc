"""A fleet of worker "hosts" on one Linux machine, for tests/faults/test_fleet.py and
``python -m bench fleet``.

Topology (every name carries a random tag, so concurrent runs never share one)::

    root namespace                                       one network namespace per host
    ──────────────                                       ──────────────────────────────
    the fleet's PostgreSQL cluster
      listening on 10.77.N.1 and localhost
    bridge sqf<tag>, 10.77.N.1/24
      ├── sqf<tag>h1 ═══ veth pair ═══ eth0 10.77.N.11   soniq-h1-<tag>: worker, pid 1
      ├── sqf<tag>h2 ═══ veth pair ═══ eth0 10.77.N.12   soniq-h2-<tag>: worker, pid 1
      └── ...

- One network namespace per host, joined to a bridge in the root namespace by a veth pair.
  The fleet's own PostgreSQL cluster (``pg_createcluster``, trust auth) listens on the
  bridge's address, so every host reaches it through its own link and nothing else. Only
  the host ends of the network are in namespaces: the test itself, in the root namespace,
  reaches the database over the bridge (or localhost) whatever happens to a host's link.
- Cutting a host off is ``ip link set <its root-side veth> down``: its packets go nowhere,
  no connection is reset, and its TCP connections stall until the link is back, which is
  what a network partition looks like to a worker (not a refused or reset connection).
- A bridge in the root namespace rather than a "db" namespace: the cluster stays an
  ordinary Debian cluster (``pg_ctlcluster`` starts it, ``pg_dropcluster`` removes it, also
  after a failure, with no namespace to enter), and the test's own connections, from the
  root namespace, need no routing.
- Every host's worker runs in a PID namespace of its own (``unshare --pid --fork
  --mount-proc``), where it is process 1; with the shared host name (network namespaces
  do not change it), worker ids then differ only in their random part.
- Addresses are 10.77.N.0/24 with an N no interface on this machine uses yet.

Needs root, iproute2 (``ip netns``), util-linux ``unshare`` and Debian's postgresql-common
(``pg_createcluster``); :func:`fleet_unavailable` says what is missing. Everything made is
removed on exit, also after a failure: worker processes, namespaces, links, the cluster.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

TOOLS = ("ip", "unshare", "pg_createcluster", "pg_ctlcluster", "pg_dropcluster", "pg_lsclusters")
PORTS = range(5440, 5490)  # where the fleet's cluster may listen; 5432 is the shared server


class FleetUnavailable(Exception):
    """This machine cannot build a fleet (not root, a tool missing, namespaces refused)."""


def fleet_unavailable() -> str | None:
    """Why a fleet cannot be built here, or None when it can (as far as can be told without
    building one)."""
    if not sys.platform.startswith("linux"):
        return "fleets need Linux network and PID namespaces"
    if os.geteuid() != 0:
        return "fleets need root (network namespaces, veth pairs, pg_createcluster)"
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        return f"fleets need {', '.join(missing)} (iproute2, util-linux, postgresql-common)"
    if _postgres_version() is None:
        return "fleets need a PostgreSQL server under /usr/lib/postgresql"
    return None


@dataclass(frozen=True)
class Host:
    """One worker host: a network namespace with one address on the fleet's bridge."""

    name: str  # h1, h2, ...
    namespace: str  # soniq-h1-<tag>
    link: str  # the root-side end of its veth pair: taking it down cuts the host off
    address: str  # the host's address, which PostgreSQL sees as inet_client_addr()


class HostWorker:
    """``python -m soniq worker`` on one host: in the host's network namespace and in a PID
    namespace of its own, where it is process 1. ``pid`` is its id in the root namespace,
    for signals; the worker itself (and its worker id) sees pid 1."""

    def __init__(
        self,
        host: Host,
        python: str,
        app_path: str,
        args: Sequence[str],
        env: Mapping[str, str],
        log: Path,
    ) -> None:
        self.host = host
        self.log = log
        self._log_file = log.open("wb")
        # `ip netns exec` execs unshare in place; unshare forks the worker (process 1 of the
        # new PID namespace) and waits for it. --kill-child: if unshare dies, so does it.
        self.process = subprocess.Popen(
            ["ip", "netns", "exec", host.namespace,
             "unshare", "--pid", "--fork", "--mount-proc", "--kill-child",
             python, "-m", "soniq", "worker", app_path, *args],
            env=dict(env),
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.pid = self._forked_worker()

    def _forked_worker(self) -> int:
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                found = children.read_text().split()
                if found:
                    return int(found[0])
            if self.process.poll() is not None:
                break
            time.sleep(0.005)
        self.kill()
        raise RuntimeError(f"worker on {self.host.name} did not start: {self.output()}")

    def signal(self, sig: signal.Signals) -> None:
        """Send ``sig`` to the worker itself (unshare does not pass signals on). As process 1
        of its namespace it only receives signals it handles, plus SIGKILL and SIGSTOP."""
        os.kill(self.pid, sig)

    def wait(self, timeout: float = 30) -> int:
        """The worker's exit code (unshare exits with it)."""
        try:
            return self.process.wait(timeout=timeout)
        finally:
            if self.process.poll() is not None:
                self._log_file.close()

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        if self.process.poll() is None:
            for sig in (signal.SIGCONT, signal.SIGKILL):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, sig)
            self.process.kill()
        self.wait()


class Fleet:
    """``with Fleet(4) as fleet:`` builds the topology drawn in this module's docstring,
    starts the fleet's PostgreSQL cluster, and tears everything down on exit.

    ``server_settings`` go into the cluster's postgresql.conf (for example
    ``{"max_connections": "300"}``)."""

    def __init__(
        self,
        hosts: int,
        *,
        server_settings: Mapping[str, str] | None = None,
        python: str = sys.executable,
    ) -> None:
        if not 1 <= hosts <= 200:
            raise ValueError("a fleet has 1 to 200 hosts")
        self.tag = secrets.token_hex(3)
        self.python = python
        self._server_settings = dict(server_settings or {})
        self._subnet = _free_subnet()  # "10.77.N"
        self.bridge = f"sqf{self.tag}"
        self.db_address = f"{self._subnet}.1"
        self.hosts = [
            Host(
                name=f"h{i}",
                namespace=f"soniq-h{i}-{self.tag}",
                link=f"sqf{self.tag}h{i}",
                address=f"{self._subnet}.{10 + i}",
            )
            for i in range(1, hosts + 1)
        ]
        self.cluster = f"soniq-fleet-{self.tag}"
        self.version = _postgres_version() or ""
        self.port = 0
        self.workers: list[HostWorker] = []
        self._teardown = contextlib.ExitStack()

    @property
    def database_url(self) -> str:
        """The fleet's database, as every host (and the root namespace) reaches it."""
        return f"postgresql://postgres@{self.db_address}:{self.port}/postgres"

    def __enter__(self) -> Fleet:
        reason = fleet_unavailable()
        if reason is not None:
            raise FleetUnavailable(reason)
        with contextlib.ExitStack() as undo:
            self._build(undo)
            undo.callback(self._kill_workers)  # first on the way out
            self._teardown = undo.pop_all()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._teardown.close()

    def _build(self, undo: contextlib.ExitStack) -> None:
        try:
            _ip("link", "add", self.bridge, "type", "bridge")
        except RuntimeError as exc:  # no CAP_NET_ADMIN (an unprivileged container)
            raise FleetUnavailable(f"cannot create a bridge: {exc}") from exc
        undo.callback(_quietly, ["ip", "link", "del", self.bridge])
        _ip("addr", "add", f"{self.db_address}/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")

        self._create_cluster(undo)

        for host in self.hosts:
            _ip("netns", "add", host.namespace)
            undo.callback(_quietly, ["ip", "netns", "del", host.namespace])
            _ip("link", "add", host.link, "type", "veth", "peer", "name", "eth0",
                "netns", host.namespace)  # fmt: skip
            undo.callback(_quietly, ["ip", "link", "del", host.link])
            _ip("link", "set", host.link, "master", self.bridge, "up")
            _ip("-n", host.namespace, "addr", "add", f"{host.address}/24", "dev", "eth0")
            _ip("-n", host.namespace, "link", "set", "eth0", "up")
            _ip("-n", host.namespace, "link", "set", "lo", "up")
        for host in self.hosts:
            self._check_reaches_database(host)

    def _create_cluster(self, undo: contextlib.ExitStack) -> None:
        self.port = _free_port()
        settings = {
            "listen_addresses": f"localhost,{self.db_address}",
            "max_connections": "200",
            **self._server_settings,
        }
        options = [arg for k, v in settings.items() for arg in ("-o", f"{k}={v}")]
        _run(["pg_createcluster", self.version, self.cluster, "--port", str(self.port),
              *options, "--", "--auth=trust", "--no-sync"])  # fmt: skip
        undo.callback(
            _quietly, ["pg_dropcluster", self.version, self.cluster, "--stop"], timeout=120
        )
        hba = Path(f"/etc/postgresql/{self.version}/{self.cluster}/pg_hba.conf")
        with hba.open("a") as conf:
            conf.write(f"host all all {self._subnet}.0/24 trust\n")
        _run(["pg_ctlcluster", self.version, self.cluster, "start"], timeout=120)

    def _check_reaches_database(self, host: Host) -> None:
        probe = "import socket, sys; socket.create_connection((sys.argv[1], sys.argv[2]), 5)"
        _run(["ip", "netns", "exec", host.namespace, self.python, "-c", probe,
              self.db_address, str(self.port)])  # fmt: skip

    def cut(self, host: Host) -> None:
        """Take the host's link down: from now on its packets reach nobody."""
        _ip("link", "set", host.link, "down")

    def restore(self, host: Host) -> None:
        """Bring the host's link back up (a no-op when it is up)."""
        _ip("link", "set", host.link, "up")

    def stop_server(self) -> None:
        """Stop the fleet's PostgreSQL (fast shutdown: sessions are ended, clients see their
        connections close), as a crashed or failed-over primary looks to its clients."""
        _run(["pg_ctlcluster", self.version, self.cluster, "stop", "-m", "fast"], timeout=120)

    def start_server(self) -> None:
        """Start it again, at the same address (a promoted replica behind the same name)."""
        _run(["pg_ctlcluster", self.version, self.cluster, "start"], timeout=120)

    def start_worker(
        self,
        host: Host,
        app_path: str,
        args: Sequence[str],
        *,
        env: Mapping[str, str],
        log: Path,
    ) -> HostWorker:
        """Start ``soniq worker APP_PATH ARGS`` on ``host``; killed on exit if still alive."""
        worker = HostWorker(host, self.python, app_path, args, env, log)
        self.workers.append(worker)
        return worker

    def _kill_workers(self) -> None:
        """Kill every worker still alive (a namespace holding a process outlives
        ``ip netns del``, and its links with it)."""
        while self.workers:
            self.workers.pop().kill()


def _run(command: Sequence[str], timeout: float = 60) -> str:
    done = subprocess.run(list(command), capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)}: {(done.stderr or done.stdout).strip()}")
    return done.stdout


def _ip(*args: str) -> None:
    _run(["ip", *args])


def _quietly(command: Sequence[str], timeout: float = 30) -> None:
    """Run a teardown step; report a failure on stderr and go on with the next step."""
    try:
        _run(command, timeout=timeout)
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        print(f"fleet teardown: {exc}", file=sys.stderr)


def _postgres_version() -> str | None:
    """The newest PostgreSQL major version installed the Debian way."""
    root = Path("/usr/lib/postgresql")
    versions = [p.name for p in root.glob("*") if (p / "bin" / "postgres").exists()]
    numeric = [v for v in versions if v.isdigit()]
    return max(numeric, key=int) if numeric else None


def _free_subnet() -> str:
    """``10.77.N`` for an N that no address or route on this machine uses."""
    used = _run(["ip", "-o", "-4", "addr"]) + _run(["ip", "-o", "-4", "route"])
    taken = {int(n) for n in re.findall(r"\b10\.77\.(\d+)\.", used)}
    free = [n for n in range(1, 255) if n not in taken]
    if not free:
        raise FleetUnavailable("no free 10.77.N.0/24 subnet")
    return f"10.77.{random.choice(free)}"


def _free_port() -> int:
    """A port in PORTS that no cluster is configured for and nothing listens on."""
    configured = {
        int(line.split()[2])
        for line in _run(["pg_lsclusters", "--no-header"]).splitlines()
        if len(line.split()) > 2 and line.split()[2].isdigit()
    }
    candidates = [p for p in PORTS if p not in configured]
    random.shuffle(candidates)
    for port in candidates:
        with socket.socket() as sock:
            try:
                sock.bind(("0.0.0.0", port))
            except OSError:
                continue
            return port
    raise FleetUnavailable(f"no free port in {PORTS.start}-{PORTS.stop - 1}")


def host_env(fleet: Fleet, schema: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for a worker on a host: the fleet's database, ``schema``, this checkout
    importable, unbuffered output."""
    repo = Path(__file__).resolve().parent.parent
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SONIQ_", "FAULT_"))}
    env.update(
        SONIQ_DATABASE_URL=fleet.database_url,
        SONIQ_SCHEMA=schema,
        PYTHONPATH=os.pathsep.join([str(repo), os.environ.get("PYTHONPATH", "")]),
        PYTHONUNBUFFERED="1",
    )
    env.update(extra or {})
    return env
