"""Building the realistic schemas/ set: the package's content, typing, lint and packaging."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from codegen_helpers import REPO, SCHEMAS, cli, run_python, snapshot

from soniq_codegen import check_contracts

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("build") / "billing_tasks"
    result = cli("build", SCHEMAS, "-o", out)
    assert result.exit_code == 0, result.output
    return out


def test_layout(built: Path) -> None:
    files = set(snapshot(built))
    assert {
        "pyproject.toml",
        "README.md",
        "billing_tasks/__init__.py",
        "billing_tasks/models.py",
        "billing_tasks/tasks.py",
        "billing_tasks/py.typed",
        "billing_tasks/soniq.lock.json",
        "billing_tasks/contracts/common/money.yaml",
        "billing_tasks/contracts/send_invoice.yaml",
    } <= files
    for path in files - {"billing_tasks/py.typed"}:
        text = (built / path).read_text("utf-8")
        if path.endswith((".py", ".toml", ".md")):
            assert "DO NOT EDIT" in text.splitlines()[0], path
    pyproject = (built / "pyproject.toml").read_text()
    assert 'name = "billing_tasks"' in pyproject and 'version = "0.1.0"' in pyproject
    assert '"soniq-jobs>=0.2.0"' in pyproject and "pydantic" in pyproject
    readme = (built / "README.md").read_text()
    for name in ("billing.send_invoice", "billing.refund_payment", "SEND_INVOICE"):
        assert name in readme


def test_lock_file_matches_contracts(built: Path) -> None:
    lock = json.loads((built / "billing_tasks/soniq.lock.json").read_text())
    contracts = check_contracts(SCHEMAS)
    assert lock["tasks"] == {
        t.task: {"version": t.version, "fingerprint": t.fingerprint} for t in contracts.tasks
    }
    assert list(lock["tasks"]) == sorted(lock["tasks"])
    assert lock["tasks"]["billing.refund_payment"]["version"] == 2


def test_package_imports_and_validates(built: Path) -> None:
    code = """
import datetime, json
import billing_tasks as pkg
from soniq import TaskRef
assert sorted(pkg.__all__) == sorted(set(pkg.__all__))
for name in pkg.__all__:
    getattr(pkg, name)
ref = pkg.SEND_INVOICE
assert isinstance(ref, TaskRef)
assert (ref.name, ref.default_queue, ref.version) == ("billing.send_invoice", "billing", 1)
assert ref.args_model is pkg.SendInvoiceArgs and ref.fingerprint.startswith("sha256:")
# Money is one shared class, used by both tasks that reference it.
users = (pkg.SendInvoiceArgs, pkg.RefundPaymentArgs)
hints = {t: t.model_fields["amount"].annotation for t in users}
assert set(hints.values()) == {pkg.Money}, hints
m = pkg.SendInvoiceArgs(order_id="o-1", customer="a@example.com",
                        amount=pkg.Money(amount_cents=100, currency="EUR"),
                        due_at=datetime.datetime(2024, 1, 31, tzinfo=datetime.timezone.utc))
data = json.loads(m.model_dump_json(by_alias=True))
assert data["due_at"] == "2024-01-31T00:00:00Z" and data["copies"] == 1
assert pkg.SendInvoiceArgs.model_validate_json(m.model_dump_json(by_alias=True)) == m
for bad in ({"plan": "gold"}, {"period_start": "2024-13-01"}, {"subscription_id": "x"}):
    args = {"subscription_id": "sub_1", "plan": "pro", "period_start": "2024-01-01", **bad}
    try:
        pkg.ChargeSubscriptionArgs.model_validate(args)
    except ValueError:
        pass
    else:
        raise AssertionError(bad)
print("ok")
"""
    result = run_python(code, path=built)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_generated_package_passes_mypy_strict_and_ruff(built: Path) -> None:
    env_path = f"{REPO}"
    mypy = subprocess.run(
        [
            str(BIN / "mypy"),
            "--strict",
            "--follow-imports=silent",
            "--no-incremental",
            "billing_tasks",
        ],
        cwd=built,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={"MYPYPATH": env_path, "PATH": str(BIN)},
    )
    assert mypy.returncode == 0, mypy.stdout + mypy.stderr
    ruff = subprocess.run(
        [
            str(BIN / "ruff"),
            "check",
            "--isolated",
            "--no-cache",
            "--select",
            "E,F,W,I,B,UP,SIM,RUF",
            ".",
        ],
        cwd=built,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ruff.returncode == 0, ruff.stdout + ruff.stderr


def test_sdist_builds_and_ships_contracts(built: Path, tmp_path: Path) -> None:
    project = tmp_path / "billing_tasks"
    shutil.copytree(built, project)
    result = subprocess.run(
        [sys.executable, "-m", "build", "--sdist", "--no-isolation", "-o", str(tmp_path / "d")],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (sdist,) = (tmp_path / "d").glob("*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = {n.split("/", 1)[1] for n in archive.getnames() if "/" in n}
    assert "billing_tasks/contracts/common/money.yaml" in names
    assert "billing_tasks/soniq.lock.json" in names and "billing_tasks/py.typed" in names


def test_rebuild_without_changes_is_a_no_op_and_check_passes(built: Path) -> None:
    before = {p: p.stat().st_mtime_ns for p in built.rglob("*") if p.is_file()}
    result = cli("build", SCHEMAS, "-o", built)
    assert result.exit_code == 0 and "up to date" in result.output
    assert before == {p: p.stat().st_mtime_ns for p in built.rglob("*") if p.is_file()}
    assert cli("check", SCHEMAS, "-o", built).exit_code == 0
    assert cli("validate", SCHEMAS).exit_code == 0


def test_check_reports_stale_files(tmp_path: Path) -> None:
    out = tmp_path / "billing_tasks"
    assert cli("build", SCHEMAS, "-o", out).exit_code == 0
    (out / "billing_tasks/models.py").write_text("# edited\n")
    (out / "billing_tasks/tasks.py").unlink()
    (out / "billing_tasks/stray.py").write_text("")
    result = cli("check", SCHEMAS, "-o", out)
    assert result.exit_code == 1
    assert "changed: billing_tasks/models.py" in result.output
    assert "missing: billing_tasks/tasks.py" in result.output
    assert "extra: billing_tasks/stray.py" in result.output
    assert cli("check", SCHEMAS, "-o", out, "--version", "0.2.0").exit_code == 1


def test_name_and_version_options(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = cli("build", SCHEMAS, "-o", out, "--name", "acme-billing", "--version", "2.1.0")
    assert result.exit_code == 0, result.output
    assert (out / "acme_billing/__init__.py").is_file()
    pyproject = (out / "pyproject.toml").read_text()
    assert 'name = "acme-billing"' in pyproject and 'version = "2.1.0"' in pyproject
    assert cli("build", SCHEMAS, "-o", out, "--version", "not a version").exit_code == 2
    assert cli("build", SCHEMAS, "-o", tmp_path / "x", "--name", "class").exit_code == 2
