"""A PgBouncer of the test's own, in transaction pooling mode, in front of the test server.

Debian's ``pgbouncer`` (1.18: no ``max_prepared_statements``, so Soniq must run without a
prepared-statement cache through it). PgBouncer refuses to run as root, so as root it runs
as the ``postgres`` user from a directory that user owns.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

CONFIG = """\
[databases]
* = host={host} port={port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {listen_port}
unix_socket_dir =
auth_type = trust
auth_file = {dir}/users.txt
pool_mode = transaction
default_pool_size = {pool_size}
max_client_conn = 500
ignore_startup_parameters = extra_float_digits
logfile = {dir}/pgbouncer.log
pidfile = {dir}/pgbouncer.pid
"""


def _binary() -> str | None:
    return shutil.which("pgbouncer") or next(
        (p for p in ("/usr/sbin/pgbouncer",) if Path(p).exists()), None
    )


def pgbouncer_missing() -> bool:
    return _binary() is None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class PgBouncer:
    url: str  # the test database's URL, pointed at PgBouncer
    pid: int  # PgBouncer's own process (its server connections are its sockets)


@contextlib.contextmanager
def pgbouncer(database_url: str, *, pool_size: int = 4) -> Iterator[PgBouncer]:
    """Run PgBouncer in front of ``database_url``'s server, with at most ``pool_size``
    server connections per database and user."""
    binary = _binary()
    assert binary is not None, "PgBouncer is not installed"
    parts = urlsplit(database_url)
    user = parts.username or "postgres"
    listen_port = _free_port()
    directory = Path(tempfile.mkdtemp(prefix="soniq-pgbouncer-", dir="/tmp"))
    (directory / "users.txt").write_text(f'"{user}" ""\n')
    (directory / "pgbouncer.ini").write_text(
        CONFIG.format(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 5432,
            listen_port=listen_port,
            pool_size=pool_size,
            dir=directory,
        )
    )
    command = [binary, str(directory / "pgbouncer.ini")]
    if os.geteuid() == 0:
        account = pwd.getpwnam("postgres")
        for path in [directory, *directory.iterdir()]:
            os.chown(path, account.pw_uid, account.pw_gid)
        command = ["runuser", "-u", "postgres", "--", *command]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while True:
            if (directory / "pgbouncer.pid").exists():
                with (
                    contextlib.suppress(OSError),
                    socket.create_connection(("127.0.0.1", listen_port), timeout=0.2),
                ):
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                log = directory / "pgbouncer.log"
                raise RuntimeError(
                    f"pgbouncer did not start: {log.read_text() if log.exists() else ''}"
                )
            time.sleep(0.05)
        userinfo = parts.netloc.rpartition("@")[0] + "@" if "@" in parts.netloc else ""
        pid = int((directory / "pgbouncer.pid").read_text())
        yield PgBouncer(
            urlunsplit(parts._replace(netloc=f"{userinfo}127.0.0.1:{listen_port}")), pid
        )
    finally:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(10)
        if process.poll() is None:
            process.kill()
            process.wait()
        shutil.rmtree(directory, ignore_errors=True)
