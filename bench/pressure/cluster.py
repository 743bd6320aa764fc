"""The PostgreSQL cluster a pressure run owns: made with Debian's ``pg_createcluster`` (so
``max_connections`` and logging can be set without touching the shared server), started,
and dropped on the way out, also after an error or Ctrl-C."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

TOOLS = ("pg_createcluster", "pg_ctlcluster", "pg_dropcluster")

# What every run sets; --server-setting adds to or overrides these.
BASE_SETTINGS = {
    "max_connections": "400",  # 300 idle connections beside the workers and the harness
    # Each autovacuum run is logged with what it removed and what it could not (dead but
    # not yet removable): the evidence when a pinned horizon is suspected.
    "log_autovacuum_min_duration": "0",
}


class ClusterUnavailable(Exception):
    """This machine cannot create a cluster for the run (not root, tools missing)."""


def cluster_unavailable() -> str | None:
    """Why no cluster can be made here, or None when one can."""
    if not sys.platform.startswith("linux"):
        return "needs Linux with Debian's postgresql-common"
    if os.geteuid() != 0:
        return "needs root (pg_createcluster runs the cluster as the postgres user)"
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        return f"needs {', '.join(missing)} (postgresql-common)"
    if postgres_version() is None:
        return "needs a PostgreSQL server under /usr/lib/postgresql"
    return None


def postgres_version() -> str | None:
    """The newest PostgreSQL major version installed the Debian way."""
    root = Path("/usr/lib/postgresql")
    versions = [p.name for p in root.glob("*") if (p / "bin" / "postgres").exists()]
    numeric = [v for v in versions if v.isdigit()]
    return max(numeric, key=int) if numeric else None


class Cluster:
    """``with Cluster(5493) as cluster:`` a running cluster with trust auth on 127.0.0.1;
    dropped on exit. Its server log is copied to ``keep_log`` (when given) first."""

    def __init__(
        self, port: int, settings: Mapping[str, str], *, keep_log: Path | None = None
    ) -> None:
        self.port = port
        self.version = postgres_version() or ""
        self.name = f"soniq-pressure-{secrets.token_hex(3)}"
        self.settings = {**BASE_SETTINGS, **settings}
        self._keep_log = keep_log
        self._created = False

    def url(self, database: str = "postgres", user: str = "postgres") -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{database}"

    @property
    def log_path(self) -> Path:
        return Path(f"/var/log/postgresql/postgresql-{self.version}-{self.name}.log")

    def __enter__(self) -> Cluster:
        reason = cluster_unavailable()
        if reason is not None:
            raise ClusterUnavailable(reason)
        with socket.socket() as sock:
            # as PostgreSQL binds: the last run's connections in TIME_WAIT do not count
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", self.port))
            except OSError as exc:
                raise ClusterUnavailable(f"port {self.port} is taken ({exc}); pass --port") from exc
        options = [arg for k, v in self.settings.items() for arg in ("-o", f"{k}={v}")]
        _run(
            [
                "pg_createcluster",
                self.version,
                self.name,
                "--port",
                str(self.port),
                *options,
                "--",
                "--auth=trust",
                "--no-sync",
            ]
        )
        self._created = True
        try:
            _run(
                ["pg_ctlcluster", "--skip-systemctl-redirect", self.version, self.name, "start"],
                timeout=120,
            )
            self._wait_ready()
        except BaseException:
            self.drop()
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), 1),
            ):
                return
            time.sleep(0.1)
        raise RuntimeError(f"cluster {self.name} did not listen on port {self.port}")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.drop()

    def drop(self) -> None:
        """Stop and remove the cluster (its data directory and configuration)."""
        if not self._created:
            return
        if self._keep_log is not None:
            with contextlib.suppress(OSError):
                self._keep_log.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(self.log_path, self._keep_log)
        try:
            _run(["pg_dropcluster", self.version, self.name, "--stop"], timeout=120)
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            print(f"pressure: could not drop cluster {self.name}: {exc}", file=sys.stderr)
            return
        self._created = False
        with contextlib.suppress(OSError):
            self.log_path.unlink()


def _run(command: list[str], timeout: float = 60) -> str:
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)}: {(done.stderr or done.stdout).strip()}")
    return done.stdout
