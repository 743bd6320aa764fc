"""``soniq contracts check``: can the current contracts run every job that exists?"""

from __future__ import annotations

import importlib
import json
import sys
from typing import Any

import click

from soniq.app import Soniq
from soniq.cli.common import (
    database_option,
    friendly_errors,
    json_option,
    load_app,
    run,
    schema_option,
)
from soniq.contracts import ContractsReport
from soniq.errors import ConfigurationError
from soniq.task_ref import TaskRef
from soniq.terminal import echo


def _refs_in_package(name: str) -> list[TaskRef[Any]]:
    try:
        module = importlib.import_module(name)
    except ImportError as exc:
        raise ConfigurationError(f"cannot import contract package {name!r}: {exc}") from exc
    refs = [value for value in vars(module).values() if isinstance(value, TaskRef)]
    if not refs:
        raise ConfigurationError(f"package {name!r} exports no TaskRef constants")
    return refs


def _print_contracts(report: ContractsReport) -> None:
    if not report.versions:
        echo("no waiting jobs of these tasks")
    for v in report.versions:
        counts = ", ".join(f"{n} {state}" for state, n in sorted(v.counts.items()))
        version = "unversioned" if v.contract_version is None else f"v{v.contract_version}"
        mark = "ok  " if v.runnable else "FAIL"
        line = f"{mark} {v.task_name} {version} ({counts}): {v.verdict}"
        if v.current_version is not None:
            line += f" [current v{v.current_version}]"
        if v.invalid:
            line += f"; {v.invalid} job(s) fail validation, e.g. {v.first_error}"
        echo(line)
    for name in report.uncovered_tasks:
        echo(f"skip {name}: waiting jobs, but no contract for it was given")


@click.group()
def contracts() -> None:
    """Check contracts against the jobs that exist."""


@contracts.command("check")
@click.argument("package", required=False)
@click.option(
    "--app",
    "app_path",
    default=None,
    metavar="MODULE:APP",
    help="The consumer app: its registered refs and upcasters are used.",
)
@database_option
@schema_option
@json_option
@friendly_errors
def contracts_check(
    package: str | None,
    app_path: str | None,
    database_url: str | None,
    schema: str | None,
    as_json: bool,
) -> None:
    """Check that the current contracts can run every job.

    Can the contracts of PACKAGE (and the upcasters of --app) run every queued, scheduled
    and dead-lettered job? Exit 1 when some cannot."""
    if package is None and app_path is None:
        raise click.UsageError("name a contract PACKAGE, or --app MODULE:APP, or both")
    refs = _refs_in_package(package) if package is not None else None
    app = load_app(app_path) if app_path is not None else Soniq(database_url, schema=schema)

    async def go() -> ContractsReport:
        try:
            return await app.check_contracts(refs)
        finally:
            await app.close()

    report = run(go)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "ok": report.ok,
                    "versions": [v.as_dict() for v in report.versions],
                    "uncovered_tasks": report.uncovered_tasks,
                },
                indent=2,
            )
        )
    else:
        _print_contracts(report)
    if not report.ok:
        sys.exit(1)
