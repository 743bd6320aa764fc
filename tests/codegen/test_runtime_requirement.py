"""A generated package requires this runtime by its own distribution name, and refuses at
import, in one sentence, a ``soniq`` that is another project or too old a release."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from codegen_helpers import REPO, SCHEMAS, cli

import soniq
from soniq_codegen.render import runtime_requirement

_REQUIREMENT = "soniq-jobs>=0.2.0"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("generated") / "billing_tasks"
    assert cli("build", SCHEMAS, "-o", out).exit_code == 0
    return out


def _fake_runtime(root: Path, body: str) -> Path:
    (root / "soniq").mkdir(parents=True)
    (root / "soniq" / "__init__.py").write_text(
        body + "\ndef task_ref(**kw):\n    return kw\n\nclass TaskRef:\n    pass\n", "utf-8"
    )
    return root


def _import(project: Path, *path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(p) for p in (*path, project))}
    return subprocess.run(
        [sys.executable, "-c", "import billing_tasks"],
        cwd=project,  # not the repository, whose soniq/ `-c` would find first
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_package_requires_this_distribution_at_the_version_it_checks(project: Path) -> None:
    pyproject = (REPO / "pyproject.toml").read_text("utf-8")
    name = re.search(r'^name = "([^"]+)"', pyproject, re.M)
    assert name is not None
    assert runtime_requirement() == f"{name.group(1)}>={_REQUIREMENT.split('>=')[1]}"
    assert runtime_requirement() == _REQUIREMENT
    assert f'dependencies = ["{_REQUIREMENT}", ' in (project / "pyproject.toml").read_text()
    # The generator never asks for a runtime newer than the one it ships with.
    needed = tuple(int(p) for p in _REQUIREMENT.split(">=")[1].split("."))
    assert needed <= tuple(int(p) for p in soniq.__version__.split(".")[:3])


def test_this_runtime_imports_the_package(project: Path) -> None:
    result = _import(project, REPO)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def test_another_project_named_soniq_fails_the_import_in_one_sentence(
    project: Path, tmp_path: Path
) -> None:
    foreign = _fake_runtime(tmp_path, '__version__ = "0.1.0"')
    result = _import(project, foreign)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last == (
        "ImportError: billing_tasks needs the Soniq runtime soniq-jobs>=0.2.0, but `import "
        "soniq` finds another project of that name (version 0.1.0, "
        f"{foreign / 'soniq' / '__init__.py'}): pip uninstall soniq && "
        "pip install 'soniq-jobs>=0.2.0'"
    )


def test_an_older_runtime_fails_the_import_saying_what_to_install(
    project: Path, tmp_path: Path
) -> None:
    old = _fake_runtime(tmp_path, '__version__ = "0.1.9"\n__distribution__ = "soniq-jobs"')
    result = _import(project, old)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "ImportError: billing_tasks needs the Soniq runtime soniq-jobs>=0.2.0, but "
        "soniq-jobs 0.1.9 is installed: pip install 'soniq-jobs>=0.2.0'"
    )


def test_a_newer_runtime_is_accepted(project: Path, tmp_path: Path) -> None:
    newer = _fake_runtime(tmp_path, '__version__ = "0.10.0rc1"\n__distribution__ = "soniq-jobs"')
    result = _import(project, newer)
    assert result.returncode == 0, result.stderr
