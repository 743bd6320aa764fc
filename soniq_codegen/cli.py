"""``soniq-codegen``: build, check and validate task contract packages."""

from __future__ import annotations

from keyword import iskeyword
from pathlib import Path

import click

from soniq_codegen.check import ContractSet, check_contracts
from soniq_codegen.generate import DIST_NAME, VERSION, import_name, render_package
from soniq_codegen.problem import ContractError
from soniq_codegen.source import UnsafeSourceError
from soniq_codegen.write import OutputError, diff_tree, write_tree

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
    default="0.1.0",
    show_default=True,
    help="Version of the generated distribution.",
)


@click.group()
def main() -> None:
    """Turn task contracts (JSON Schema / YAML) into a typed, installable stub package."""


def _load(contracts: Path) -> ContractSet:
    try:
        return check_contracts(contracts)
    except ContractError as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        click.echo(f"{len(exc.problems)} problem(s) found; nothing written.", err=True)
        raise SystemExit(1) from None


def _render(contracts: Path, output: Path, name: str | None, version: str) -> dict[str, bytes]:
    dist = name or output.resolve().name
    package = import_name(dist)
    if not DIST_NAME.match(dist) or not package.isidentifier() or iskeyword(package):
        raise click.UsageError(f"{dist!r} is not a valid distribution name; pass --name")
    if not VERSION.match(version):
        raise click.UsageError(f"{version!r} is not a version such as 0.1.0")
    contract_set = _load(contracts)
    try:
        return render_package(contract_set, dist, version)
    except UnsafeSourceError as exc:
        click.echo(f"error: {exc}; refusing to write it", err=True)
        raise SystemExit(1) from None


@main.command()
@_SRC
@_OUT
@_NAME
@_VERSION
def build(contracts: Path, output: Path, name: str | None, version: str) -> None:
    """Generate the package for CONTRACTS into the output directory."""
    files = _render(contracts, output, name, version)
    try:
        changed = write_tree(files, output)
    except (OutputError, OSError) as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(1) from None
    state = "written" if changed else "already up to date"
    click.echo(f"{output}: {len(files)} files {state}.")


@main.command()
@_SRC
@_OUT
@_NAME
@_VERSION
def check(contracts: Path, output: Path, name: str | None, version: str) -> None:
    """Exit 1 and list the differing files if the package is stale (for CI)."""
    differences = diff_tree(_render(contracts, output, name, version), output)
    for line in differences:
        click.echo(line, err=True)
    if differences:
        click.echo(f"{output} is stale: run soniq-codegen build", err=True)
        raise SystemExit(1)
    click.echo(f"{output} is up to date.")


@main.command()
@_SRC
def validate(contracts: Path) -> None:
    """Check the contracts only; write nothing."""
    contract_set = _load(contracts)
    click.echo(f"{len(contract_set.tasks)} task contract(s) valid.")
