"""What each console page shows, read from the database and the app's registrations.

Nothing here knows HTTP: each function takes the console's :class:`Parts` and returns the
values a template renders.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from soniq.db.connection import Database
from soniq.db.jobs import JobStore
from soniq.db.jobs.browse_values import (
    DeadGroup,
    FingerprintCount,
    JobFilter,
    JobRow,
    QueueOverview,
)
from soniq.db.periodic import PeriodicStore
from soniq.db.workers import WorkerStore
from soniq.dead_letter import DeadLetterQueue
from soniq.periodic import Schedule
from soniq.queues import QueueSettings
from soniq.registry import Registry
from soniq.status import WorkerRecord

PAGE_SIZE = 50
# A job list reads ids in windows: the first this wide, each next one twice the last, for at
# most this long per page (then it offers to look further back).
_FIRST_WINDOW = 5_000
_WINDOW_BUDGET_SECONDS = 0.1
_WAIT_SAMPLE = 10_000
DEAD_COUNT_CAP = 100_000
# The overview counts each queue's jobs in each table up to this many (shown as "at least").
COUNT_CAP = 10_000
# Dead-letter groups and contract versions are read among the newest this many of a table.
SAMPLE = 10_000


@dataclass(frozen=True)
class Parts:
    """What the console reads through: the app's database, statements and registrations
    (empty when the console runs from the database alone)."""

    database: Database
    store: JobStore
    registry: Registry
    schedules: list[Schedule]
    dead_letter: DeadLetterQueue
    cancel: Callable[[int], Any]
    hide_args: Callable[[str], bool]
    configure_queue: Callable[..., Awaitable[QueueSettings]]
    configured_queues: Callable[[], Awaitable[list[QueueSettings]]]


@dataclass(frozen=True)
class JobPage:
    """One page of a job list, and where the next one starts (None: no older jobs)."""

    rows: list[JobRow]
    next_before: int | None
    searched_down_to: int | None  # the lowest id looked at, when the page is not full


async def job_page(parts: Parts, jobs: JobFilter, before: int | None) -> JobPage:
    """Matching jobs below id ``before`` (None: the newest), newest first, found by walking
    id windows downwards until the page is full, the oldest job is passed, or the time
    budget is spent."""
    pool = await parts.database.pool()
    browse = parts.store.browse
    with parts.database.errors():
        bounds = await browse.bounds(pool)
        if bounds is None:
            return JobPage([], None, None)
        top, bottom = bounds
        upper = top + 1 if before is None else min(before, top + 1)
        rows: list[JobRow] = []
        width = _FIRST_WINDOW
        deadline = time.monotonic() + _WINDOW_BUDGET_SECONDS
        while upper > bottom:
            floor = max(upper - width, bottom)
            rows += await browse.window(
                pool, jobs, before=upper, floor=floor, limit=PAGE_SIZE - len(rows)
            )
            if len(rows) == PAGE_SIZE:
                return JobPage(rows, rows[-1].id, None)
            upper, width = floor, width * 2
            if time.monotonic() > deadline:
                break
    more = upper > bottom
    return JobPage(rows, upper if more else None, upper if more else None)


@dataclass(frozen=True)
class Overview:
    queues: list[QueueOverview]
    minutes: list[tuple[int, int, int]]  # (minutes ago, done, dead), 60 of them, oldest first
    p50_seconds: float | None
    p95_seconds: float | None
    wait_sample: int
    finished_estimate: int
    workers: int


async def overview(parts: Parts) -> Overview:
    pool = await parts.database.pool()
    browse = parts.store.browse
    with parts.database.errors():
        queues = await browse.overview(pool, COUNT_CAP)
        per_minute = {t.minutes_ago: t for t in await browse.throughput(pool)}
        waits = await browse.waits(pool, _WAIT_SAMPLE)
        estimate = await browse.finished_estimate(pool)
        workers = await WorkerStore(parts.store.schema).live(pool)
    minutes = []
    for ago in range(59, -1, -1):
        t = per_minute.get(ago)
        minutes.append((ago, t.done if t else 0, t.dead if t else 0))
    return Overview(
        queues=queues,
        minutes=minutes,
        p50_seconds=waits.p50_seconds,
        p95_seconds=waits.p95_seconds,
        wait_sample=waits.sampled,
        finished_estimate=estimate,
        workers=len(workers),
    )


@dataclass(frozen=True)
class ArgField:
    """One field of a job's args, with what its contract says about it."""

    name: str
    value: str  # pretty JSON
    description: str | None
    type: str | None
    in_contract: bool


@dataclass(frozen=True)
class ContractCheck:
    """How a job's contract stamp compares with the app's registered contract and the
    live workers."""

    registered: bool
    app_version: int | None
    app_fingerprint: str | None
    version_matches: bool | None
    fingerprint_matches: bool | None
    served_by: dict[str, int | None]  # live worker id -> version it serves


def _type_name(prop: dict[str, Any]) -> str | None:
    if "type" in prop:
        return str(prop["type"])
    if "$ref" in prop:
        return str(prop["$ref"]).rsplit("/", 1)[-1]
    options = prop.get("anyOf") or prop.get("oneOf")
    if options:
        names = [_type_name(option) for option in options]
        return " | ".join(name for name in names if name)
    return None


def arg_fields(parts: Parts, task_name: str, args: Any) -> list[ArgField]:
    """The job's args field by field, with the descriptions of the registered args model's
    JSON schema (none when the task is not registered on this app)."""
    spec = parts.registry.get(task_name)
    properties: dict[str, Any] = {}
    if spec is not None:
        properties = spec.args_model.model_json_schema().get("properties", {})
    values = args if isinstance(args, dict) else {}
    fields = []
    for name in [*properties, *(k for k in values if k not in properties)]:
        prop = properties.get(name, {})
        shown = json.dumps(values[name], indent=2, ensure_ascii=False) if name in values else ""
        fields.append(
            ArgField(
                name=name,
                value=shown,
                description=prop.get("description"),
                type=_type_name(prop) if prop else None,
                in_contract=name in properties,
            )
        )
    return fields


async def contract_check(parts: Parts, job: dict[str, Any]) -> ContractCheck:
    spec = parts.registry.get(job["task_name"])
    ref = spec.ref if spec is not None else None
    pool = await parts.database.pool()
    with parts.database.errors():
        workers = await WorkerStore(parts.store.schema).live(pool)
    served = {w.id: w.tasks[job["task_name"]] for w in workers if job["task_name"] in w.tasks}
    app_version = ref.version if ref else None
    app_fingerprint = ref.fingerprint if ref else None
    return ContractCheck(
        registered=spec is not None,
        app_version=app_version,
        app_fingerprint=app_fingerprint,
        version_matches=None
        if app_version is None or job["contract_version"] is None
        else app_version == job["contract_version"],
        fingerprint_matches=None
        if app_fingerprint is None or job["contract_fingerprint"] is None
        else app_fingerprint == job["contract_fingerprint"],
        served_by=served,
    )


def detail_text(detail: Any) -> str | None:
    """An error's detail as the job page shows it: a traceback as it is, pydantic's error
    list as indented JSON."""
    if detail is None or isinstance(detail, str):
        return detail
    return json.dumps(detail, indent=2, ensure_ascii=False)


def display_state(job: dict[str, Any]) -> str:
    """The console's state of a job row from the ``jobs`` view."""
    state = str(job["state"])
    if state == "queued":
        if job["attempts"] > 0:
            return "retrying"
        if job["scheduled_at"] > job["db_now"]:
            return "scheduled"
    return state


@dataclass(frozen=True)
class WorkerLine:
    record: WorkerRecord
    running: int


async def workers(parts: Parts) -> list[WorkerLine]:
    pool = await parts.database.pool()
    with parts.database.errors():
        live = await WorkerStore(parts.store.schema).live(pool)
        running = await parts.store.browse.running_by_worker(pool)
    return [WorkerLine(w, running.get(w.id, 0)) for w in live]


@dataclass(frozen=True)
class PeriodicLine:
    key: str
    task_name: str | None
    timing: str | None
    last_tick: datetime | None
    next_tick: datetime | None


async def periodic(parts: Parts) -> list[PeriodicLine]:
    """The app's schedules with their last and next tick, then schedules other apps' workers
    ran (known only by key and last tick)."""
    pool = await parts.database.pool()
    store = PeriodicStore(parts.store.schema)
    with parts.database.errors():
        now, _ = await store.last_ticks(pool, [])
        last = await store.all(pool)
    lines = []
    for schedule in parts.schedules:
        timing = (
            f"cron {schedule.cron.expression} ({schedule.zone.key})"
            if schedule.cron is not None
            else f"every {schedule.every}"
        )
        lines.append(
            PeriodicLine(
                key=schedule.key,
                task_name=schedule.job.task_name,
                timing=timing,
                last_tick=last.pop(schedule.key, None),
                next_tick=schedule.next_after(now),
            )
        )
    lines += [PeriodicLine(key, None, None, tick, None) for key, tick in last.items()]
    return lines


@dataclass
class TaskContracts:
    """Everything known about one task's contract: registered, served, and in the table."""

    name: str
    registered: bool = False
    app_version: int | None = None
    app_fingerprint: str | None = None
    upcasters: list[int] = field(default_factory=list)  # versions an upcaster reads
    served: dict[int | None, list[str]] = field(default_factory=dict)  # version -> workers
    waiting: list[FingerprintCount] = field(default_factory=list)
    in_history: bool = False

    def problems(self) -> list[str]:
        """Drift between what waits in the table and what this app and its workers run."""
        found = []
        for group in self.waiting:
            version, fingerprint = group.contract_version, group.contract_fingerprint
            if self.app_version is not None and version is not None:
                if version > self.app_version:
                    found.append(
                        f"{group.count} {group.state} job(s) of v{version} are newer than this "
                        f"app's v{self.app_version}"
                    )
                elif version < self.app_version and not all(
                    v in self.upcasters for v in range(version, self.app_version)
                ):
                    found.append(
                        f"{group.count} {group.state} job(s) of v{version} have no upcaster "
                        f"path to v{self.app_version}"
                    )
            if (
                version == self.app_version
                and fingerprint is not None
                and self.app_fingerprint is not None
                and fingerprint != self.app_fingerprint
            ):
                found.append(
                    f"{group.count} {group.state} job(s) of v{version} were written with "
                    f"fingerprint {fingerprint[:12]}, this app has {self.app_fingerprint[:12]}"
                )
        served_versions = [v for v in self.served if v is not None]
        for group in self.waiting:
            if (
                group.state != "dead"
                and group.contract_version is not None
                and self.served
                and None not in self.served
                and max(served_versions, default=0) < group.contract_version
            ):
                found.append(
                    f"{group.count} job(s) of v{group.contract_version} wait for a newer "
                    "consumer: no live worker serves that version"
                )
        return found


async def contracts(parts: Parts) -> list[TaskContracts]:
    pool = await parts.database.pool()
    with parts.database.errors():
        counts = await parts.store.browse.fingerprints(pool, SAMPLE)
        history = await parts.store.browse.history_tasks(pool)
        live = await WorkerStore(parts.store.schema).live(pool)
    tasks: dict[str, TaskContracts] = {}

    def task(name: str) -> TaskContracts:
        return tasks.setdefault(name, TaskContracts(name))

    for name in parts.registry.names():
        spec = parts.registry.get(name)
        assert spec is not None
        entry = task(name)
        entry.registered = True
        entry.app_version = spec.version
        entry.app_fingerprint = spec.ref.fingerprint if spec.ref else None
        entry.upcasters = sorted(parts.registry.upcasters(name))
    for worker in live:
        for name, version in worker.tasks.items():
            task(name).served.setdefault(version, []).append(worker.id)
    for count in counts:
        task(count.task_name).waiting.append(count)
    for name in history:
        task(name).in_history = True
    return [tasks[name] for name in sorted(tasks)]


@dataclass(frozen=True)
class DeadPage:
    groups: list[DeadGroup]
    rows: list[JobRow]
    next_before: int | None
    matching: int
    capped: bool

    @property
    def groups_sampled(self) -> bool:
        """Whether the groups were counted among the newest :data:`SAMPLE` dead letters
        only (there may be more, and older groups)."""
        return sum(group.count for group in self.groups) >= SAMPLE


async def dead_letters(
    parts: Parts, task_name: str | None, reason: str | None, before: int | None
) -> DeadPage:
    pool = await parts.database.pool()
    browse = parts.store.browse
    with parts.database.errors():
        groups = await browse.dead_groups(pool, None, 200, SAMPLE)
        rows = await browse.dead_page(
            pool,
            task_name=task_name,
            reason=reason,
            before=2**63 - 1 if before is None else before,
            limit=PAGE_SIZE,
        )
        matching = await browse.dead_count(
            pool, task_name=task_name, reason=reason, cap=DEAD_COUNT_CAP + 1
        )
    return DeadPage(
        groups=groups,
        rows=rows,
        next_before=rows[-1].id if len(rows) == PAGE_SIZE else None,
        matching=min(matching, DEAD_COUNT_CAP),
        capped=matching > DEAD_COUNT_CAP,
    )


async def bulk_dead(parts: Parts, action: str, task_name: str | None, reason: str | None) -> int:
    """Replay or purge every dead letter of a task and reason (None: any), 1,000 at a time;
    returns how many were moved or deleted."""
    pool = await parts.database.pool()
    done, before = 0, 2**63 - 1
    while True:
        with parts.database.errors():
            ids = await parts.store.browse.dead_ids(
                pool, task_name=task_name, reason=reason, before=before, limit=1000
            )
        if not ids:
            return done
        if action == "replay":
            done += len(await parts.dead_letter.replay(ids))
        else:
            done += await parts.dead_letter.purge(ids)
        before = ids[-1]
