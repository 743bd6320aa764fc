"""Turning measurements into medians, the issue's target ratios, one table and a JSON file."""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.config import (
    BULK,
    LATENCY,
    LIMIT_COPY,
    LIMIT_DRAIN,
    RSS,
    SINGLE,
    STEERED_CONCURRENCY,
    STEERED_LIMITED,
    STEERED_PARTITIONED,
    STEERED_RATE,
    STEERED_RATE_PER_S,
    VALIDATION,
    drain_scenario,
)
from bench.scenarios import Measurement

# variant -> scenario -> metric -> median over the verified repeats
Results = dict[str, dict[str, dict[str, float]]]


@dataclass
class Target:
    """One target from the issue, judged on this run's medians (``passed`` None: not run).

    ``measured`` is the number judged (a ratio, a rate, a percentage); ``per_repeat`` the
    same number from each repeat's own measurements alone, for the spread."""

    name: str
    value: str
    passed: bool | None
    detail: str
    measured: float | None = None
    per_repeat: list[float | None] = field(default_factory=list)


def medians(measurements: list[Measurement]) -> Results:
    """Median of each metric over the repeats that verified (every job written and run)."""
    samples: dict[str, dict[str, dict[str, list[float]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(list))
    )
    for m in measurements:
        if m.verified and m.error is None:
            for metric, value in m.metrics.items():
                samples[m.variant][m.scenario][metric].append(value)
    return {
        variant: {
            scenario: {metric: statistics.median(values) for metric, values in metrics.items()}
            for scenario, metrics in scenarios.items()
        }
        for variant, scenarios in samples.items()
    }


def _get(results: Results, variant: str, scenario: str, metric: str) -> float | None:
    return results.get(variant, {}).get(scenario, {}).get(metric)


def best_drain(results: Results, variant: str) -> tuple[float, str] | None:
    """The fastest drain configuration of ``variant``: (jobs/s, scenario)."""
    drains = [
        (metrics["jobs_per_s"], scenario)
        for scenario, metrics in results.get(variant, {}).items()
        if scenario.startswith("drain_") and "jobs_per_s" in metrics
    ]
    return max(drains) if drains else None


def targets(results: Results) -> list[Target]:
    """The issue's targets, as ratios within this run where they name a peer or a limit."""
    soniq = best_drain(results, "soniq")
    bulk = _get(results, "soniq", BULK, "jobs_per_s")
    out = [
        _versus("drain", soniq, best_drain(results, "pgqueuer"), "pgqueuer's best", 2.0),
        _versus("drain", soniq, best_drain(results, "graphile"), "graphile-worker's best", 1.5),
        _of_limit(
            "drain", soniq, _get(results, "soniq", LIMIT_DRAIN, "jobs_per_s"),
            "the database's limit", 0.70, "Soniq's claim and outcome statements, 500 jobs each",
        ),
        _check(
            "bulk enqueue >= 100,000/s", bulk, "{:,.0f}/s", lambda v: v >= 100_000,
            _times(bulk, _get(results, "pgqueuer", BULK, "jobs_per_s"), "pgqueuer"),
        ),
        _versus(
            "bulk enqueue", _tagged(bulk, BULK),
            _tagged(_get(results, "graphile", BULK, "jobs_per_s"), "add_jobs"),
            "graphile-worker's add_jobs", 1.5,
        ),
        _of_limit(
            "bulk enqueue", _tagged(bulk, BULK),
            _get(results, "soniq", LIMIT_COPY, "jobs_per_s"),
            "a bare COPY", 0.85, "binary COPY of ready rows into job_live",
        ),
    ]  # fmt: skip
    out.append(
        _ratio(
            "single enqueue >= pgqueuer",
            _get(results, "soniq", SINGLE, "jobs_per_s"),
            _get(results, "pgqueuer", SINGLE, "jobs_per_s"),
        )
    )
    p50, pgq_p50 = (
        _get(results, "soniq", LATENCY, "p50_ms"),
        _get(results, "pgqueuer", LATENCY, "p50_ms"),
    )
    if p50 is not None and pgq_p50 is not None:
        out.append(
            Target("latency p50 <= pgqueuer's", f"{p50:.2f} ms", p50 <= pgq_p50,
                   f"pgqueuer {pgq_p50:.2f} ms", p50 / pgq_p50)
        )  # fmt: skip
    else:
        out.append(Target("latency p50 <= pgqueuer's", "n/a", None, "needs soniq + pgqueuer"))
    p99 = _get(results, "soniq", LATENCY, "p99_ms")
    out.append(_check("latency p99 < 5 ms", p99, "{:.2f} ms", lambda v: v < 5.0))

    out.append(_validation_cost(results))
    out.append(
        _of_limit(
            "limited drain", _tagged(_get(results, "soniq", STEERED_LIMITED, "jobs_per_s"),
                                     STEERED_LIMITED),
            _get(results, "soniq", drain_scenario(STEERED_CONCURRENCY), "jobs_per_s"),
            "the unlimited drain", 0.80,
            f"a concurrency limit that never binds vs none, both at c{STEERED_CONCURRENCY}",
        )
    )  # fmt: skip
    rss = _get(results, "soniq", RSS, "rss_mb")
    out.append(_check("worker RSS at c200 < 150 MB", rss, "{:.0f} MB", lambda v: v < 150))
    return out


def with_spread(found: list[Target], per_repeat: list[list[Target]]) -> list[Target]:
    """``found`` with each target's number from every repeat alone (``per_repeat``: the
    targets of each repeat's own medians, in the same order)."""
    for i, target in enumerate(found):
        target.per_repeat = [repeat[i].measured for repeat in per_repeat]
    return found


def _tagged(value: float | None, tag: str) -> tuple[float, str] | None:
    return None if value is None else (value, tag)


def _times(ours: float | None, theirs: float | None, peer: str) -> str:
    return f"{ours / theirs:.2f}x {peer}" if ours and theirs else ""


def _versus(
    what: str,
    ours: tuple[float, str] | None,
    theirs: tuple[float, str] | None,
    peer: str,
    goal: float,
) -> Target:
    """Soniq's ``what`` (rate, configuration) at least ``goal`` times a peer's."""
    name = f"{what} >= {goal:g}x {peer}"
    if ours is None or theirs is None:
        return Target(name, "n/a", None, f"needs soniq and {peer}")
    ratio = ours[0] / theirs[0]
    detail = f"soniq {ours[1]} {ours[0]:,.0f}/s vs {theirs[1]} {theirs[0]:,.0f}/s"
    return Target(name, f"{ratio:.2f}x", ratio >= goal, detail, ratio)


def _of_limit(
    what: str,
    ours: tuple[float, str] | None,
    limit: float | None,
    of: str,
    goal: float,
    how: str,
) -> Target:
    """Soniq's ``what`` at least ``goal`` of what the database allows (measured ``how``)."""
    name = f"{what} >= {goal:.2f} of {of}"
    if ours is None or limit is None:
        return Target(name, "n/a", None, "needs soniq and its limits scenarios")
    ratio = ours[0] / limit
    detail = f"soniq {ours[1]} {ours[0]:,.0f}/s vs {limit:,.0f}/s: {how}"
    return Target(name, f"{ratio:.2f}", ratio >= goal, detail, ratio)


def _check(
    name: str, value: float | None, fmt: str, ok: Callable[[float], bool], detail: str = ""
) -> Target:
    if value is None:
        return Target(name, "n/a", None, "not measured")
    return Target(name, fmt.format(value), ok(value), detail, value)


def _ratio(name: str, ours: float | None, theirs: float | None) -> Target:
    if ours is None or theirs is None:
        return Target(name, "n/a", None, "needs soniq + pgqueuer")
    ratio = ours / theirs
    return Target(name, f"{ratio:.2f}x", ratio >= 1, f"{ours:,.0f}/s vs {theirs:,.0f}/s", ratio)


def _validation_cost(results: Results) -> Target:
    """What validating args at dispatch costs the drain, against the same handler taking
    ``**kwargs`` with no model (the JSON is still parsed into a dict, as any queue must):
    the validation-cost scenario's back-to-back drains at soniq's best setting."""
    name = "validation cost < 10% of drain"
    cost = _get(results, "soniq", VALIDATION, "cost_pct")
    if cost is None:
        return Target(name, "n/a", None, "not measured")
    metric = results["soniq"][VALIDATION]
    detail = (
        f"{metric['with_model_per_s']:,.0f}/s with vs {metric['without_model_per_s']:,.0f}/s "
        f"without; worker CPU per job {metric['cpu_cost_pct']:+.1f}%"
    )
    if "dispatch_us_with_model" in metric:
        detail += (
            f"; dispatch alone {metric['dispatch_us_with_model']:.1f} us with vs "
            f"{metric['dispatch_us_without_model']:.1f} us without, "
            f"{metric['validation_share_of_job_cpu_pct']:.1f}% of a job's CPU"
        )
    if "union_model_us_per_job" in metric:
        detail += (
            f"; a union-heavy contract's model {metric['union_model_us_per_job']:.1f} us per "
            f"job vs {metric['plain_model_us_per_job']:.1f} us for plain fields"
        )
    return Target(name, f"{cost:.1f}%", cost < 10, detail, cost)


def _cell(value: float | None, fmt: str) -> str:
    return "-" if value is None else fmt.format(value)


def table(results: Results, labels: dict[str, str], found: list[Target]) -> str:
    """The results table (medians) followed by the targets, as aligned plain text."""
    columns = ["system", "single/s", "bulk/s", "drain c10/s", "drain c100/s", "drain best/s",
               "p50 ms", "p99 ms", "RSS MB"]  # fmt: skip
    rows = [columns]
    for variant, label in labels.items():
        best = best_drain(results, variant)
        rows.append([
            label,
            _cell(_get(results, variant, SINGLE, "jobs_per_s"), "{:,.0f}"),
            _cell(_get(results, variant, BULK, "jobs_per_s"), "{:,.0f}"),
            _cell(_get(results, variant, drain_scenario(10), "jobs_per_s"), "{:,.0f}"),
            _cell(_get(results, variant, drain_scenario(100), "jobs_per_s"), "{:,.0f}"),
            "-" if best is None else f"{best[0]:,.0f} ({best[1][6:]})",
            _cell(_get(results, variant, LATENCY, "p50_ms"), "{:.2f}"),
            _cell(_get(results, variant, LATENCY, "p99_ms"), "{:.2f}"),
            _cell(_get(results, variant, RSS, "rss_mb"), "{:.0f}"),
        ])  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(columns))]
    lines = [
        "  ".join(
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append("")
    if "pgqueuer" in labels:
        lines.append("pgqueuer has no concurrency cap of its own: its drain cC runs batch_size=C.")
    if "graphile" in labels:
        lines.append("graphile-worker drains with P Node processes x 24 jobs (PxC), its perfTest "
                     "settings; Node's start-up is not timed.")  # fmt: skip
    lines.extend(_limits(results))
    lines.extend(_steered(results))
    lines.extend(_cpu(results, labels))
    lines.append("")
    for t in found:
        mark = {True: "PASS", False: "FAIL", None: "n/a "}[t.passed]
        spread = sorted(v for v in t.per_repeat if v is not None)
        shown = t.value
        if len(spread) > 1:
            shown += f" (repeats {_number(spread[0])} to {_number(spread[-1])})"
        lines.append(f"[{mark}] {t.name}: {shown}" + (f"  ({t.detail})" if t.detail else ""))
    return "\n".join(lines)


def _number(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.2f}"


def _limits(results: Results) -> list[str]:
    drain = results.get("soniq", {}).get(LIMIT_DRAIN, {})
    copy = results.get("soniq", {}).get(LIMIT_COPY, {})
    if not drain and not copy:
        return []
    return [
        "database limits on Soniq's tables, one connection: claim + complete 500 a statement "
        f"{_cell(drain.get('jobs_per_s'), '{:,.0f}')}/s with Soniq's two statements, "
        f"{_cell(drain.get('one_statement_jobs_per_s'), '{:,.0f}')}/s in one; binary COPY "
        f"{_cell(copy.get('jobs_per_s'), '{:,.0f}')}/s "
        f"({_cell(copy.get('encode_and_copy_jobs_per_s'), '{:,.0f}')}/s with encoding)"
    ]


def _steered(results: Results) -> list[str]:
    """The drains of a queue with settings, against the unlimited one at their concurrency."""
    soniq = results.get("soniq", {})
    rates = [soniq.get(name, {}).get("jobs_per_s") for name in _STEERED_NAMES]
    if all(rate is None for rate in rates):
        return []
    unlimited = _cell(
        _get(results, "soniq", drain_scenario(STEERED_CONCURRENCY), "jobs_per_s"), "{:,.0f}"
    )
    limited, partitioned, rated = (_cell(rate, "{:,.0f}") for rate in rates)
    return [
        f"soniq steered drains at c{STEERED_CONCURRENCY}: unlimited {unlimited}/s, "
        f"concurrency limit (not binding) {limited}/s, one partition per job (limit 1 each) "
        f"{partitioned}/s, rate limit {STEERED_RATE_PER_S:,}/s {rated}/s (a sliding window: "
        f"the first {STEERED_RATE_PER_S:,} may start at once)"
    ]


_STEERED_NAMES = (STEERED_LIMITED, STEERED_PARTITIONED, STEERED_RATE)


def _cpu(results: Results, labels: dict[str, str]) -> list[str]:
    """CPU per job of the worker and of the database backends in each best drain."""
    lines = []
    for variant, label in labels.items():
        best = best_drain(results, variant)
        if best is None:
            continue
        metrics = results[variant][best[1]]
        worker, db = metrics.get("worker_cpu_us_per_job"), metrics.get("db_cpu_us_per_job")
        if worker is not None or db is not None:
            lines.append(
                f"{label} best drain ({best[1][6:]}): CPU per job worker "
                f"{_cell(worker, '{:.0f}')} us, database {_cell(db, '{:.0f}')} us"
            )
    return lines


def package_versions(names: list[str]) -> dict[str, str]:
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def machine(postgres: dict[str, str], packages: list[str]) -> dict[str, Any]:
    """What the numbers were measured on."""
    cpu = platform.processor() or platform.machine()
    ram = 0
    try:
        with open("/proc/cpuinfo") as f:
            models = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        cpu = models[0] if models else cpu
        with open("/proc/meminfo") as f:
            ram = int(next(line.split()[1] for line in f if line.startswith("MemTotal"))) * 1024
    except (OSError, StopIteration):
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_gb": round(ram / 2**30, 1),
        "os": platform.platform(),
        "python": f"{platform.python_implementation()} {sys.version.split()[0]}",
        "postgresql": postgres,
        "packages": package_versions(["soniq", *packages]),
        "load_average_at_start": list(os.getloadavg()),
    }


def write_json(path: Path, payload: dict[str, Any], measurements: list[Measurement]) -> None:
    payload = dict(payload, measurements=[asdict(m) for m in measurements])
    path.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n")
