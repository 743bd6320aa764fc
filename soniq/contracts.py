"""Can the current contracts run the jobs that actually exist?

For each task, every queued, scheduled and dead-lettered job is put through what a worker
would do at dispatch: the upcaster chain from its contract version to the current one,
then validation with the current args model. No registry can answer this; only the table
knows which versions are still waiting.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from pydantic import ValidationError

from soniq.db.jobs.reads import JobReads
from soniq.registry import Upcaster
from soniq.task_ref import TaskRef

# Verdicts for one (task, version) group of waiting jobs.
CURRENT = "current version"
UPCAST = "upcast to current"
UNVERSIONED = "unversioned (validated as current)"
NO_UPCASTER = "no upcaster path"
NEWER = "newer than these contracts"


@dataclass
class VersionReport:
    """The waiting jobs of one task at one contract version, and whether they can run."""

    task_name: str
    contract_version: int | None
    current_version: int | None
    verdict: str
    counts: dict[str, int] = field(default_factory=dict)  # by state
    invalid: int = 0  # jobs whose args fail the current model after upcasting
    first_error: str | None = None

    @property
    def runnable(self) -> bool:
        return self.verdict in (CURRENT, UPCAST, UNVERSIONED) and self.invalid == 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "task": self.task_name,
            "version": self.contract_version,
            "current_version": self.current_version,
            "verdict": self.verdict,
            "counts": self.counts,
            "invalid": self.invalid,
            "first_error": self.first_error,
            "runnable": self.runnable,
        }


@dataclass
class ContractsReport:
    versions: list[VersionReport]
    uncovered_tasks: list[str]  # tasks with waiting jobs but no contract among those checked

    @property
    def ok(self) -> bool:
        return all(v.runnable for v in self.versions)


def _verdict(version: int | None, current: int | None, upcasters: Mapping[int, Upcaster]) -> str:
    if version is None or current is None:
        return UNVERSIONED if version is None else CURRENT
    if version == current:
        return CURRENT
    if version > current:
        return NEWER
    if all(v in upcasters for v in range(version, current)):
        return UPCAST
    return NO_UPCASTER


def _dispatch_error(
    ref: TaskRef[Any], version: int | None, args_json: str, upcasters: Mapping[int, Upcaster]
) -> str | None:
    """Why a worker running ``ref`` would refuse these args (None: it would run them)."""
    try:
        if version is not None and ref.version is not None and version < ref.version:
            args: Any = json.loads(args_json)
            for step in range(version, ref.version):
                args = upcasters[step](args)
            ref.args_model.model_validate(args)
        else:
            ref.args_model.model_validate_json(args_json)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "(args)"
        return f"{where}: {first['msg']}"
    except Exception as exc:
        return f"upcaster raised {type(exc).__name__}: {exc}"
    return None


async def check_waiting_jobs(
    conn: asyncpg.Connection,
    reads: JobReads,
    refs: Iterable[TaskRef[Any]],
    upcasters: Mapping[str, Mapping[int, Upcaster]],
) -> ContractsReport:
    """Group waiting jobs by task and version, and test each job as a worker would."""
    by_name = {ref.name: ref for ref in refs}
    groups: dict[tuple[str, int | None], VersionReport] = {}
    uncovered: set[str] = set()
    for count in await reads.contract_versions(conn):
        ref = by_name.get(count.task_name)
        if ref is None:
            uncovered.add(count.task_name)
            continue
        key = (count.task_name, count.contract_version)
        if key not in groups:
            groups[key] = VersionReport(
                task_name=count.task_name,
                contract_version=count.contract_version,
                current_version=ref.version,
                verdict=_verdict(
                    count.contract_version, ref.version, upcasters.get(count.task_name, {})
                ),
            )
        groups[key].counts[count.state] = count.count

    checkable = sorted({name for name, _ in groups})
    async for task_name, job in reads.waiting_jobs(conn, checkable):
        group = groups[(task_name, job.contract_version)]
        if group.verdict not in (CURRENT, UPCAST, UNVERSIONED):
            continue
        error = _dispatch_error(
            by_name[task_name], job.contract_version, job.args_json, upcasters.get(task_name, {})
        )
        if error is not None:
            group.invalid += 1
            group.first_error = group.first_error or f"job {job.id}: {error}"
    return ContractsReport(
        versions=[groups[key] for key in sorted(groups, key=lambda k: (k[0], k[1] or 0))],
        uncovered_tasks=sorted(uncovered),
    )
