"""``soniq-codegen``: build, check and validate task contract packages, and gate breaking
changes."""

from __future__ import annotations

import json
from dataclasses import replace
from keyword import iskeyword
from pathlib import Path
from typing import NoReturn

import click

from soniq.terminal import echo
from soniq_codegen.baseline import Baseline, find_package, load_baseline, package_baseline
from soniq_codegen.compatibility import MODES, Report, compare
from soniq_codegen.contract_set import ContractSet, check_contracts
from soniq_codegen.problem import ContractError
from soniq_codegen.render import DIST_NAME, VERSION, import_name, render_package
from soniq_codegen.source import UnsafeSourceError
from soniq_codegen.version_lock import (
    FIRST_VERSION,
    VERSION_LOCK,
    VersionError,
    bumped,
    classify,
    lock_text,
    locked_version,
)
from soniq_codegen.write import OutputError, diff_tree, is_generated, write_tree

_SRC = click.argument("contracts", type=click.Path(exists=True, file_okay=False, path_type=Path))
_OUT = click.option(
    "-o",
    "--output",
    "output",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory of the generated project.",
)
_NAME = click.option(
    "--name", default=None, help="Distribution name (default: the output directory's name)."
)
_VERSION = click.option(
    "--version",
    "version",
    default=None,
    help=f"Version of the generated distribution (default: the one in the output's "
    f"{VERSION_LOCK}, else {FIRST_VERSION}).",
)
_HINT = "bump `version` in the contracts of those tasks, or revert the change"


@click.group()
@click.version_option(package_name="soniq-jobs", prog_name="soniq-codegen")
def main() -> None:
    """Turn task contracts (JSON Schema / YAML) into a typed, installable stub package."""


def _load(contracts: Path, outcome: str = "nothing written") -> ContractSet:
    try:
        return check_contracts(contracts)
    except ContractError as exc:
        _fail(exc, outcome)


def _fail(exc: ContractError, outcome: str) -> NoReturn:
    for problem in exc.problems:
        echo(str(problem), err=True)
    echo(f"{len(exc.problems)} problem(s) found; {outcome}.", err=True)
    raise SystemExit(1) from None


def _render(
    contracts: Path, output: Path, name: str | None, version: str
) -> tuple[ContractSet, dict[str, bytes]]:
    _check_options(output, name, version)
    contract_set = _load(contracts)
    return contract_set, _render_checked(contract_set, output, name, version)


def _check_options(output: Path, name: str | None, version: str) -> None:
    dist = name or output.resolve().name
    package = import_name(dist)
    if not DIST_NAME.match(dist) or not package.isidentifier() or iskeyword(package):
        raise click.UsageError(f"{dist!r} is not a valid distribution name; pass --name")
    if not VERSION.match(version):
        raise click.UsageError(f"{version!r} is not a version such as 0.1.0")


def _render_checked(
    contract_set: ContractSet, output: Path, name: str | None, version: str
) -> dict[str, bytes]:
    """The project's files, with the lock file of ``version``."""
    try:
        files = render_package(contract_set, name or output.resolve().name, version)
    except UnsafeSourceError as exc:
        echo(f"error: {exc}; refusing to write it", err=True)
        raise SystemExit(1) from None
    files[VERSION_LOCK] = lock_text(version)
    return files


def _locked(output: Path) -> str | None:
    try:
        return locked_version(output)
    except VersionError as exc:
        echo(f"error: {exc}", err=True)
        raise SystemExit(1) from None


@main.command()
@_SRC
@_OUT
@_NAME
@_VERSION
@click.option(
    "--bump",
    type=click.Choice(["auto"]),
    default=None,
    help="Raise the version by what changed: breaking -> major, addition -> minor, "
    "descriptions -> patch.",
)
@click.option(
    "--allow-breaking",
    is_flag=True,
    help="Write even if the change breaks the package in the output without a version bump.",
)
def build(
    contracts: Path,
    output: Path,
    name: str | None,
    version: str | None,
    bump: str | None,
    allow_breaking: bool,
) -> None:
    """Generate the package for CONTRACTS into the output directory.

    When the output already holds a generated package, the contracts are first compared with
    the ones it ships (as `breaking --mode full` does); a breaking change in a task whose
    version was not bumped is refused unless --allow-breaking. The version is kept in the
    output's lock file; --bump auto raises it by what changed. Build outputs there (dist/,
    build/, *.egg-info) are kept.
    """
    if version is not None and bump is not None:
        raise click.UsageError("pass --version or --bump, not both")
    current = _locked(output)
    contract_set, files = _render(contracts, output, name, version or current or FIRST_VERSION)
    old = _gate(contract_set, output, allow_breaking)
    if version is None and old is not None:
        files = _follow(old, contract_set, files, output, current, bump is not None, name)
    try:
        changed = write_tree(files, output)
    except (OutputError, OSError) as exc:
        echo(f"error: {exc}", err=True)
        raise SystemExit(1) from None
    state = "written" if changed else "already up to date"
    echo(f"{output}: {len(files)} files {state}.")


def _follow(
    old: Baseline,
    contract_set: ContractSet,
    files: dict[str, bytes],
    output: Path,
    current: str | None,
    bump: bool,
    name: str | None,
) -> dict[str, bytes]:
    """``files`` at the version that follows from the change to the package in ``output``:
    raised by it with ``bump``, else kept (with a warning when the package changed)."""
    change = classify(old, contract_set, bool(diff_tree(files, output)))
    if change.level is None:
        return files
    if not bump:
        echo(
            f"warning: the package changed ({change.level}: {change.why}) but its version stays "
            f"{current or FIRST_VERSION}: pass --bump auto, or --version",
            err=True,
        )
        return files
    if current is None:
        echo(f"error: {output} has no {VERSION_LOCK} to bump: pass --version once", err=True)
        raise SystemExit(1)
    try:
        version = bumped(current, change.level)
    except VersionError as exc:
        echo(f"error: {exc}", err=True)
        raise SystemExit(1) from None
    echo(f"version {current} -> {version} ({change.level}: {change.why})")
    return _render_checked(contract_set, output, name, version)


@main.command()
@_SRC
@_OUT
@_NAME
@_VERSION
def check(contracts: Path, output: Path, name: str | None, version: str | None) -> None:
    """Exit 1 and list the differing files if the package is stale (for CI).

    The version is the one in the output's lock file unless --version is given."""
    version = version or _locked(output) or FIRST_VERSION
    differences = diff_tree(_render(contracts, output, name, version)[1], output)
    for line in differences:
        echo(line, err=True)
    if differences:
        echo(f"{output} is stale: run soniq-codegen build", err=True)
        raise SystemExit(1)
    echo(f"{output} is up to date.")


@main.command()
@_SRC
def validate(contracts: Path) -> None:
    """Check the contracts only; write nothing."""
    contract_set = _load(contracts)
    echo(f"{len(contract_set.tasks)} task contract(s) valid.")


@main.command()
@_SRC
@click.option(
    "--against",
    required=True,
    metavar="OLD",
    help="The contracts before the change: a contract directory, a generated package, its "
    "soniq.lock.json, or git:REV (CONTRACTS at that git revision).",
)
@click.option(
    "--mode",
    type=click.Choice(list(MODES)),
    default="full",
    show_default=True,
    help="backward: new workers read queued jobs; forward: old workers read new jobs; full: both.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option(
    "--allow-removed",
    multiple=True,
    metavar="TASK",
    help="Acknowledge that TASK was removed (or renamed) on purpose; repeatable.",
)
def breaking(
    contracts: Path, against: str, mode: str, as_json: bool, allow_removed: tuple[str, ...]
) -> None:
    """Exit 1 if CONTRACTS break OLD without a version bump (see docs/breaking-changes.md)."""
    new = _load(contracts, "nothing compared")
    try:
        old = load_baseline(against, contracts)
    except ContractError as exc:
        _fail(exc, f"cannot compare against {against}")
    report = compare(old, new, mode, frozenset(allow_removed))
    if as_json:
        click.echo(json.dumps(report.as_json(), indent=2))
    else:
        for finding in report.findings:
            echo(finding.line())
        echo(report.summary())
        if report.failing:
            echo(_HINT)
        if any(f.rule in ("task-removed", "task-renamed") for f in report.failing):
            echo("acknowledge a task removed on purpose with --allow-removed TASK")
    if report.failing:
        raise SystemExit(1)


def _gate(contract_set: ContractSet, output: Path, allow_breaking: bool) -> Baseline | None:
    """Refuse a breaking change to the package already in ``output`` without a version bump;
    returns that package's contracts, if there is a package."""
    old = _existing(output, allow_breaking)
    if old is None:
        return None
    report = compare(old, contract_set)
    if allow_breaking:
        report = _excused(report)
    for finding in report.findings:
        echo(finding.line(), err=True)
    if report.failing:
        echo(report.summary(), err=True)
        echo(f"{_HINT}; nothing written (--allow-breaking writes anyway)", err=True)
        raise SystemExit(1)
    return old


def _existing(output: Path, allow_breaking: bool) -> Baseline | None:
    """The package a previous build left in ``output``, if there is one to compare with."""
    if not is_generated(output):
        return None
    try:
        package = find_package(output)
        return None if package is None else package_baseline(package, str(package))
    except ContractError as exc:
        if allow_breaking:
            return None
        _fail(exc, f"cannot compare with the package in {output}; --allow-breaking skips this")


def _excused(report: Report) -> Report:
    findings = [
        f if f.status != "failing" else replace(f, allowed_by="--allow-breaking")
        for f in report.findings
    ]
    return replace(report, findings=findings)
