"""``soniq-codegen breaking`` and the gate in ``build``: sources of OLD, output, exit codes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from codegen_helpers import SCHEMAS, cli, edit, snapshot

from soniq_codegen.compatibility import RULES


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path]:
    """The billing schemas before and after a breaking change to the shared Money type."""
    old = shutil.copytree(SCHEMAS, tmp_path / "old")
    new = shutil.copytree(SCHEMAS, tmp_path / "new")
    edit(new, "common/money.yaml", "enum: [EUR, GBP, USD]", "enum: [EUR, USD]")
    return old, new


def git(repo: Path, *args: str) -> None:
    subprocess.run(
        [
            "git",
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.com",
            "-c",
            "commit.gpgsign=false",
            *args,
        ],
        cwd=repo,
        check=True,
        capture_output=True,
    )


def test_text_output_and_exit_code(pair: tuple[Path, Path]) -> None:
    old, new = pair
    result = cli("breaking", new, "--against", old)
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[:2] == [
        "error: billing.refund_payment /properties/amount/properties/currency/enum: "
        "enum-value-removed (breaks backward): 'GBP' removed: new workers would reject jobs "
        "already queued [in common/money.yaml#/properties/currency]",
        "error: billing.send_invoice /properties/amount/properties/currency/enum: "
        "enum-value-removed (breaks backward): 'GBP' removed: new workers would reject jobs "
        "already queued [in common/money.yaml#/properties/currency]",
    ]
    assert lines[2].startswith("2 breaking change(s) in 2 task(s) without a version bump")
    assert lines[3] == "bump `version` in the contracts of those tasks, or revert the change"
    assert "Traceback" not in result.output
    # refund_payment is version 2 in the old set too; a bump makes its finding allowed.
    edit(new, "refund_payment.json", '"version": 2', '"version": 3')
    edit(new, "send_invoice.yaml", "version: 1", "version: 2")
    result = cli("breaking", new, "--against", old)
    assert result.exit_code == 0, result.output
    assert result.output.count("allowed (version") == 2
    assert result.output.splitlines()[-1].startswith("ok: no breaking change")


def test_modes(pair: tuple[Path, Path]) -> None:
    old, new = pair
    assert cli("breaking", new, "--against", old, "--mode", "backward").exit_code == 1
    forward = cli("breaking", new, "--against", old, "--mode", "forward")
    assert forward.exit_code == 0 and forward.output.startswith("ok:")
    # The reverse change (a value added) breaks forward only.
    assert cli("breaking", old, "--against", new, "--mode", "forward").exit_code == 1
    assert cli("breaking", old, "--against", new, "--mode", "backward").exit_code == 0
    assert cli("breaking", old, "--against", new, "--mode", "sideways").exit_code == 2
    assert cli("breaking", old).exit_code == 2


def test_unchanged_set_is_ok(tmp_path: Path) -> None:
    result = cli("breaking", SCHEMAS, "--against", SCHEMAS)
    assert result.exit_code == 0
    assert result.output == (
        "ok: no breaking change without a version bump (5 task(s) compared, 0 changed, "
        f"0 added, 0 removed; 0 allowed, 0 warning(s); mode full, against {SCHEMAS})\n"
    )


def test_json_output(pair: tuple[Path, Path]) -> None:
    old, new = pair
    edit(new, "send_invoice.yaml", "default_queue: billing", "default_queue: invoices")
    result = cli("breaking", new, "--against", old, "--json")
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert set(report) == {"against", "mode", "ok", "summary", "findings"}
    assert (report["against"], report["mode"], report["ok"]) == (str(old), "full", False)
    assert report["summary"] == {
        "compared": 5,
        "added": [],
        "removed": [],
        "changed": ["billing.refund_payment", "billing.send_invoice"],
        "failing": 2,
        "allowed": 0,
        "warnings": 1,
    }
    first = report["findings"][0]
    assert first == {
        "task": "billing.refund_payment",
        "pointer": "/properties/amount/properties/currency/enum",
        "rule": "enum-value-removed",
        "severity": "error",
        "breaks": ["backward"],
        "status": "failing",
        "allowed_by": None,
        "message": "'GBP' removed: new workers would reject jobs already queued",
        "via": "common/money.yaml#/properties/currency",
    }
    statuses = {(f["task"], f["rule"]): f["status"] for f in report["findings"]}
    assert statuses[("billing.send_invoice", "default-queue-changed")] == "warning"
    assert all(f["rule"] in RULES for f in report["findings"])


def test_package_directory_and_lock_file_sources(pair: tuple[Path, Path], tmp_path: Path) -> None:
    old, new = pair
    package = tmp_path / "billing_tasks"
    assert cli("build", old, "-o", package).exit_code == 0
    for against in (package, package / "billing_tasks"):
        result = cli("breaking", new, "--against", against)
        assert result.exit_code == 1
        assert result.output.count("enum-value-removed") == 2
        assert f"against {against}/contracts" in result.output
    lock = tmp_path / "soniq.lock.json"
    shutil.copy(package / "billing_tasks" / "soniq.lock.json", lock)
    coarse = cli("breaking", new, "--against", lock)
    assert coarse.exit_code == 1
    assert coarse.output.count("fingerprint-changed") == 2
    assert "pass --against the package or contract directory" in coarse.output
    assert cli("breaking", old, "--against", lock).exit_code == 0
    # A package without its contracts copy is compared through its lock file.
    shutil.rmtree(package / "billing_tasks" / "contracts")
    assert "fingerprint-changed" in cli("breaking", new, "--against", package).output


def test_git_revision_source(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    schemas = repo / "services" / "schemas"
    shutil.copytree(SCHEMAS, schemas)
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "one")
    edit(schemas, "subscriptions.yaml", "enum: [free, pro, enterprise]", "enum: [free, pro]")
    git(repo, "commit", "-q", "-am", "two")
    edit(schemas, "send_invoice.yaml", "maxLength: 500", "maxLength: 100")  # not committed
    result = cli("breaking", schemas, "--against", "git:HEAD~1")
    assert result.exit_code == 1, result.output
    assert "billing.charge_subscription /properties/plan/enum: enum-value-removed" in result.output
    assert "/properties/note/maxLength: max-length-tightened" in result.output
    assert "against git:HEAD~1:services/schemas" in result.output
    head = cli("breaking", schemas, "--against", "git:HEAD")
    assert head.exit_code == 1 and "enum-value-removed" not in head.output
    for rev, message in (
        ("nope", "unknown git revision 'nope'"),
        ("--output=x", "is not a git revision"),
    ):
        bad = cli("breaking", schemas, "--against", f"git:{rev}")
        assert bad.exit_code == 1 and message in bad.output, bad.output
        assert "Traceback" not in bad.output
    other = repo / "elsewhere"
    shutil.copytree(SCHEMAS, other)
    missing = cli("breaking", other, "--against", "git:HEAD")
    assert missing.exit_code == 1
    assert "the contract directory 'elsewhere' does not exist at HEAD" in missing.output
    not_repo = shutil.copytree(SCHEMAS, tmp_path / "plain")
    result = cli("breaking", not_repo, "--against", "git:HEAD")
    assert result.exit_code == 1 and "is not inside a git repository" in result.output


def test_git_revision_with_a_link_out_is_refused(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(SCHEMAS, repo / "schemas")
    os.symlink("/etc/passwd", repo / "schemas" / "evil.yaml")
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "one")
    (repo / "schemas" / "evil.yaml").unlink()
    result = cli("breaking", repo / "schemas", "--against", "git:HEAD")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "git:HEAD: /: cannot unpack 'schemas' at HEAD" in result.output


def test_bad_old_input(pair: tuple[Path, Path], tmp_path: Path) -> None:
    old, new = pair
    missing = cli("breaking", new, "--against", tmp_path / "nothing")
    assert missing.exit_code == 1 and "no such file or directory" in missing.output
    (old / "broken.yaml").write_text("task: a.b\nargs: [unclosed\n")
    broken = cli("breaking", new, "--against", old)
    assert broken.exit_code == 1
    assert f"{old}/broken.yaml:" in broken.output and "invalid YAML" in broken.output
    assert f"cannot compare against {old}" in broken.output
    not_lock = tmp_path / "x.json"
    not_lock.write_text("{}")
    result = cli("breaking", new, "--against", not_lock)
    assert result.exit_code == 1 and "not a lock file" in result.output


def test_allow_removed(tmp_path: Path) -> None:
    old = shutil.copytree(SCHEMAS, tmp_path / "old")
    new = shutil.copytree(SCHEMAS, tmp_path / "new")
    (new / "refund_payment.json").unlink()
    result = cli("breaking", new, "--against", old)
    assert result.exit_code == 1 and "billing.refund_payment /: task-removed" in result.output
    assert result.output.splitlines()[-1].endswith("--allow-removed TASK")
    allowed = cli("breaking", new, "--against", old, "--allow-removed", "billing.refund_payment")
    assert allowed.exit_code == 0 and "allowed (--allow-removed)" in allowed.output


def test_build_refuses_a_breaking_change_and_writes_nothing(
    pair: tuple[Path, Path], tmp_path: Path
) -> None:
    old, new = pair
    out = tmp_path / "billing_tasks"
    assert cli("build", old, "-o", out).exit_code == 0
    before = snapshot(out)
    refused = cli("build", new, "-o", out)
    assert refused.exit_code == 1
    assert refused.output.count("enum-value-removed") == 2
    assert "nothing written (--allow-breaking writes anyway)" in refused.output
    assert snapshot(out) == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".billing_tasks")]
    forced = cli("build", new, "-o", out, "--allow-breaking")
    assert forced.exit_code == 0, forced.output
    assert "allowed (--allow-breaking)" in forced.output
    assert snapshot(out) != before
    # The package now holds the new contracts: building them again is no change.
    again = cli("build", new, "-o", out)
    assert again.exit_code == 0 and "already up to date" in again.output


def test_build_accepts_compatible_changes_and_version_bumps(tmp_path: Path) -> None:
    contracts = shutil.copytree(SCHEMAS, tmp_path / "schemas")
    out = tmp_path / "billing_tasks"
    assert cli("build", contracts, "-o", out).exit_code == 0
    edit(contracts, "send_invoice.yaml", "maximum: 5", "maximum: 5\n      description: At most 5.")
    assert cli("build", contracts, "-o", out).exit_code == 0
    edit(contracts, "send_invoice.yaml", "default_queue: billing", "default_queue: invoices")
    warned = cli("build", contracts, "-o", out)
    assert (
        warned.exit_code == 0 and "warning: billing.send_invoice /: default-queue" in warned.output
    )
    edit(contracts, "send_invoice.yaml", "maxLength: 64", "maxLength: 32")
    assert cli("build", contracts, "-o", out).exit_code == 1
    edit(contracts, "send_invoice.yaml", "version: 1", "version: 2")
    bumped = cli("build", contracts, "-o", out)
    assert bumped.exit_code == 0 and "allowed (version 1 -> 2)" in bumped.output
    lock = json.loads((out / "billing_tasks" / "soniq.lock.json").read_text())
    assert lock["tasks"]["billing.send_invoice"]["version"] == 2


def test_build_with_unreadable_previous_contracts(tmp_path: Path) -> None:
    out = tmp_path / "billing_tasks"
    assert cli("build", SCHEMAS, "-o", out).exit_code == 0
    (out / "billing_tasks" / "contracts" / "bad.yaml").write_text("task: [\n")
    before = snapshot(out)
    result = cli("build", SCHEMAS, "-o", out)
    assert result.exit_code == 1 and "bad.yaml" in result.output
    assert "--allow-breaking skips this" in result.output and snapshot(out) == before
    assert cli("build", SCHEMAS, "-o", out, "--allow-breaking").exit_code == 0
