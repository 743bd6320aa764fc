"""The generated distribution's version: kept in the output's lock file, raised by
``build --bump auto`` by what changed; build outputs in the output directory survive a build."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from codegen_helpers import SCHEMAS, cli, edit, snapshot

import soniq
from soniq_codegen.version_lock import VERSION_LOCK


def _version(out: Path) -> str:
    lock = json.loads((out / VERSION_LOCK).read_text())
    pyproject = (out / "pyproject.toml").read_text()
    assert f'version = "{lock["version"]}"' in pyproject
    return str(lock["version"])


def test_check_reads_the_version_build_kept(tmp_path: Path) -> None:
    out = tmp_path / "billing_tasks"
    assert cli("build", SCHEMAS, "-o", out, "--version", "2.1.0").exit_code == 0
    assert _version(out) == "2.1.0"
    checked = cli("check", SCHEMAS, "-o", out)
    assert checked.exit_code == 0, checked.output
    again = cli("build", SCHEMAS, "-o", out)  # no --version: the kept one
    assert again.exit_code == 0 and "already up to date" in again.output
    assert cli("check", SCHEMAS, "-o", out, "--version", "2.1.1").exit_code == 1


def test_bump_auto_follows_the_kind_of_change(tmp_path: Path) -> None:
    contracts = shutil.copytree(SCHEMAS, tmp_path / "schemas")
    out = tmp_path / "billing_tasks"
    assert cli("build", contracts, "-o", out, "--version", "1.0.0").exit_code == 0

    unchanged = cli("build", contracts, "-o", out, "--bump", "auto")
    assert unchanged.exit_code == 0 and "already up to date" in unchanged.output
    assert _version(out) == "1.0.0"

    edit(contracts, "send_invoice.yaml", "Identifier of the order", "Id of the order")
    patch = cli("build", contracts, "-o", out, "--bump", "auto")
    assert patch.exit_code == 0, patch.output
    assert "version 1.0.0 -> 1.0.1 (patch: descriptions only)" in patch.output
    assert _version(out) == "1.0.1"

    (contracts / "ping.yaml").write_text(
        "task: ops.ping\nversion: 1\nargs:\n  type: object\n  properties: {}\n"
    )
    minor = cli("build", contracts, "-o", out, "--bump", "auto")
    assert "version 1.0.1 -> 1.1.0 (minor: task ops.ping added)" in minor.output
    assert _version(out) == "1.1.0"

    edit(contracts, "send_invoice.yaml", "maxLength: 64", "maxLength: 32")
    edit(contracts, "send_invoice.yaml", "version: 1", "version: 2")
    major = cli("build", contracts, "-o", out, "--bump", "auto")
    assert major.exit_code == 0, major.output
    assert "version 1.1.0 -> 2.0.0 (major: breaking: billing.send_invoice" in major.output
    assert _version(out) == "2.0.0"
    assert cli("check", contracts, "-o", out).exit_code == 0


def test_a_change_without_a_bump_keeps_the_version_and_says_so(tmp_path: Path) -> None:
    contracts = shutil.copytree(SCHEMAS, tmp_path / "schemas")
    out = tmp_path / "billing_tasks"
    assert cli("build", contracts, "-o", out).exit_code == 0
    edit(contracts, "send_invoice.yaml", "Identifier of the order", "Id of the order")
    kept = cli("build", contracts, "-o", out)
    assert kept.exit_code == 0
    assert (
        "warning: the package changed (patch: descriptions only) but its version stays 0.1.0: "
        "pass --bump auto, or --version" in kept.output
    )
    assert _version(out) == "0.1.0"
    both = cli("build", contracts, "-o", out, "--bump", "auto", "--version", "3.0.0")
    assert both.exit_code == 2 and "--version or --bump, not both" in both.output


def test_build_keeps_what_build_tools_left_in_the_output(tmp_path: Path) -> None:
    contracts = shutil.copytree(SCHEMAS, tmp_path / "schemas")
    out = tmp_path / "billing_tasks"
    assert cli("build", contracts, "-o", out).exit_code == 0
    (out / "dist").mkdir()
    (out / "dist" / "billing_tasks-0.1.0.tar.gz").write_bytes(b"sdist")
    (out / "build" / "lib").mkdir(parents=True)
    (out / "billing_tasks.egg-info").mkdir()
    (out / "billing_tasks.egg-info" / "PKG-INFO").write_text("info")
    edit(contracts, "send_invoice.yaml", "Identifier of the order", "Id of the order")
    assert cli("build", contracts, "-o", out, "--bump", "auto").exit_code == 0
    kept = snapshot(out)
    assert kept["dist/billing_tasks-0.1.0.tar.gz"] == b"sdist"
    assert kept["billing_tasks.egg-info/PKG-INFO"] == b"info"
    assert (out / "build" / "lib").is_dir()
    assert cli("check", contracts, "-o", out).exit_code == 0


def test_codegen_prints_its_version() -> None:
    shown = cli("--version")
    assert shown.exit_code == 0
    assert shown.output == f"soniq-codegen, version {soniq.__version__}\n"
