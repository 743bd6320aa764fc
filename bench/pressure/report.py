"""A scenario's results as data (per-second series for the JSON and the plot) and as the
printed table: one line per phase, then the goals."""

from __future__ import annotations

from typing import Any

from bench.pressure import analysis
from bench.pressure.samplers import Sampler


def series(history: list[dict[str, Any]], sampler: Sampler) -> dict[str, Any]:
    """Per-second arrays for the JSON and the plot (None where nothing was sampled)."""
    at = {int(s["t"]): s for s in sampler.seconds}
    seconds = [h["s"] for h in history]
    sampled = [at.get(s) for s in seconds]
    rings = sorted({n for s in sampler.seconds for n in s["tables"] if n.startswith("job_live_")})
    return {
        "s": seconds,
        **{
            key: [h[key] for h in history]
            for key in ("enqueued", "completed", "p50_ms", "p95_ms", "p99_ms", "max_ms")
        },
        "depth": [s["depth"] if s else None for s in sampled],
        "running": [s["running"] if s else None for s in sampled],
        "oldest_xact_s": [_tenth(s["oldest_xact_s"]) if s else None for s in sampled],
        "hot_bytes": [analysis.hot_total(s, 0) if s else None for s in sampled],
        "hot_dead": [analysis.hot_total(s, 1) if s else None for s in sampled],
        "history_bytes": [s["history"][0] if s else None for s in sampled],
        "ring_bytes": {
            r: [s["tables"].get(r, [0])[0] if s else None for s in sampled] for r in rings
        },
        "exact_dead_t": [round(t["t"], 2) for t in sampler.tuples],
        "exact_dead": [sum(v[1] for v in t["tables"].values()) for t in sampler.tuples],
        "exact_dead_by_table": [t["tables"] for t in sampler.tuples],
        "history_tuples": [
            [round(t["t"], 2), *t["history"]] for t in sampler.tuples if "history" in t
        ],
    }


def _tenth(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def table(report: dict[str, Any]) -> str:
    """The per-phase table and the goals of one scenario."""
    head = (
        f"{'phase':<9}{'secs':>6}{'offer/s':>8}{'enq/s':>8}{'done/s':>8}{'p50ms':>7}"
        f"{'p95ms':>7}{'p99ms':>8}{'maxms':>8}{'depth':>7}{'dmax':>7}{'hotMB':>7}"
        f"{'dead':>8}{'oldtx':>7}{'busy':>6}  top waits (mean active backends)"
    )
    lines = [f"{report['scenario']} at {report['rate']:.0f} jobs/s", head]
    for p in report["phases"]:
        waits = ", ".join(f"{k} {v:.2f}" for k, v in list(p["waits"].items())[:3])
        lines.append(
            f"{p['phase']:<9}{p['seconds']:>6.0f}{p['offered_per_s']:>8.0f}"
            f"{p['enqueued_per_s']:>8.0f}{p['completed_per_s']:>8.0f}{_f(p['pickup_p50_ms'])}"
            f"{_f(p['pickup_p95_ms'])}{_f(p['pickup_p99_ms'], 8)}{_f(p['pickup_max_ms'], 8, 0)}"
            f"{_f(p['depth_mean'], 7, 0)}{_f(p['depth_max'], 7, 0)}"
            f"{_f((p['hot_bytes_max'] or 0) / 2**20, 7)}{_f(p['hot_dead_exact_max'], 8, 0)}"
            f"{_f(p['oldest_xact_s_max'], 7, 0)}{_f(p['machine_busy_percent'], 5, 0)}%  {waits}"
        )
    lines.append(
        "dead: dead tuples of the hot tables (pgstattuple, max); oldtx: oldest transaction "
        "holding the horizon, s (max); hotMB: ring partitions + job_scheduled + job_dedup, max; "
        "busy: the machine's cores, every process counted"
    )
    extra = []
    if report["drain_seconds"] is not None:
        extra.append(f"depth back under threshold {report['drain_seconds']:.0f}s after stress")
    if report["recovered_after_s"] is not None:
        extra.append(f"recovered {report['recovered_after_s']:.0f}s after stress")
    if report["hot_size_ratio"] is not None:
        extra.append(
            f"hot tables over recovery's last ring turn {report['hot_size_ratio']:.2f}x clean"
        )
    if extra:
        lines.append("; ".join(extra))
    for goal in report["goals"]:
        lines.append(f"  {'PASS' if goal['pass'] else 'FAIL'}  {goal['goal']}: {goal['value']}")
    return "\n".join(lines)


def _f(value: float | None, width: int = 7, digits: int = 1) -> str:
    return f"{'-':>{width}}" if value is None else f"{value:>{width}.{digits}f}"
