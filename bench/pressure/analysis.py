"""From what a run left in the database and what it sampled to per-second series, phase
summaries, the exactly-once check, and the goals. Every time is the database clock's
(epoch seconds), so pickup latency (``started_at - enqueued_at`` of each done job) and the
phase boundaries are on one clock."""

from __future__ import annotations

import math
import statistics
from collections import Counter
from dataclasses import dataclass
from typing import Any

import asyncpg

from bench.pressure.samplers import Sampler

STRESS_P99_MS = 50.0  # the goal for the stress phase's p99 pickup latency
RECOVER_WITHIN_S = 60.0
THROUGHPUT_KEPT = 0.8  # stress throughput at least this share of the clean phase's
SIZE_SLACK = 0.2  # hot tables at the end of recovery within this of the clean phase's
RING_TURN_S = 40.0  # 4 partitions x 10 s: the hot tables' sizes cycle with this period


@dataclass(frozen=True)
class Phase:
    """One phase of a scenario, on the database clock."""

    name: str  # warmup, clean, stress, recovery
    start: float
    end: float
    offered_rate: float
    # How busy the machine's cores were over the phase, every process counted (the
    # benchmark's and anyone else's): the noise a number was measured in.
    machine_busy_percent: float | None = None

    @property
    def seconds(self) -> float:
        return self.end - self.start


_LATENCY = "extract(epoch FROM started_at - enqueued_at) * 1000"

_PHASE = f"""
SELECT count(*) FILTER (WHERE enqueued_at >= to_timestamp($1) AND enqueued_at < to_timestamp($2))
           AS enqueued,
       count(*) FILTER (WHERE finished_at >= to_timestamp($1) AND finished_at < to_timestamp($2))
           AS completed,
       percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY {_LATENCY})
           FILTER (WHERE started_at >= to_timestamp($1) AND started_at < to_timestamp($2))
           AS pickup_ms,
       max({_LATENCY}) FILTER (WHERE started_at >= to_timestamp($1)
                               AND started_at < to_timestamp($2)) AS pickup_max_ms,
       count(*) FILTER (WHERE attempts > 1 AND started_at >= to_timestamp($1)
                        AND started_at < to_timestamp($2)) AS retried
FROM {{schema}}.job_history"""

_PER_SECOND = f"""
WITH h AS (SELECT enqueued_at, started_at, finished_at, {_LATENCY} AS ms
           FROM {{schema}}.job_history
           WHERE finished_at >= to_timestamp($1))
SELECT s, coalesce(e.n, 0) AS enqueued, coalesce(c.n, 0) AS completed, l.pct, l.top
FROM generate_series(ceil($1)::bigint, floor($2)::bigint - 1) AS s
LEFT JOIN (SELECT floor(extract(epoch FROM enqueued_at))::bigint AS s, count(*) AS n
           FROM h GROUP BY 1) AS e USING (s)
LEFT JOIN (SELECT floor(extract(epoch FROM finished_at))::bigint AS s, count(*) AS n
           FROM h GROUP BY 1) AS c USING (s)
LEFT JOIN (SELECT floor(extract(epoch FROM started_at))::bigint AS s,
                  percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY ms) AS pct,
                  max(ms) AS top
           FROM h GROUP BY 1) AS l USING (s)
ORDER BY s"""

# A full join, not NOT IN: NOT IN over a subquery too big to hash is quadratic.
_ACCOUNTING = """
WITH e AS (SELECT DISTINCT unnest($1::bigint[]) AS id),
     h AS (SELECT id, count(*) AS n, max(attempts) AS attempts
           FROM {schema}.job_history GROUP BY id)
SELECT count(e.id) AS enqueued,
       count(*) FILTER (WHERE e.id IS NOT NULL AND h.n = 1) AS done_once,
       count(*) FILTER (WHERE h.id IS NULL) AS missing,
       count(*) FILTER (WHERE e.id IS NOT NULL AND h.n > 1) AS duplicated,
       count(*) FILTER (WHERE e.id IS NOT NULL AND h.attempts > 1) AS retried,
       count(*) FILTER (WHERE e.id IS NULL) AS unexpected,
       (SELECT count(*) FROM {schema}.job_dead) AS dead,
       (SELECT count(*) FROM {schema}.job_live) AS left_live,
       (SELECT count(*) FROM {schema}.job_scheduled) AS left_scheduled
FROM e FULL JOIN h ON h.id = e.id"""


async def per_second(
    conn: asyncpg.Connection, schema: str, start: float, end: float
) -> list[dict[str, Any]]:
    """Enqueued (by enqueued_at), completed (by finished_at) and pickup latency percentiles
    (by started_at) of the done jobs, per whole second between ``start`` and ``end``."""
    rows = await conn.fetch(_PER_SECOND.replace("{schema}", schema), start, end)
    out = []
    for row in rows:
        pct = row["pct"] or [None, None, None]
        out.append(
            {
                "s": row["s"],
                "enqueued": row["enqueued"],
                "completed": row["completed"],
                "p50_ms": _round(pct[0]),
                "p95_ms": _round(pct[1]),
                "p99_ms": _round(pct[2]),
                "max_ms": _round(row["top"]),
            }
        )
    return out


async def accounting(conn: asyncpg.Connection, schema: str, ids: list[int]) -> dict[str, int]:
    """Did every enqueued job end done exactly once? Counts of the ids the producer got back
    against job_history (and what is left anywhere else)."""
    row = await conn.fetchrow(_ACCOUNTING.replace("{schema}", schema), ids)
    assert row is not None
    return {**dict(row), "ids_returned_twice": len(ids) - len(set(ids))}


async def phase_summary(
    conn: asyncpg.Connection, schema: str, phase: Phase, sampler: Sampler, rate_sla: float
) -> dict[str, Any]:
    """One phase in numbers: rates, pickup latency, queue depth, sizes, dead tuples, waits."""
    row = await conn.fetchrow(_PHASE.replace("{schema}", schema), phase.start, phase.end)
    assert row is not None
    pct = row["pickup_ms"] or [None, None, None]
    seconds = [s for s in sampler.seconds if phase.start <= s["t"] < phase.end]
    tuples = [s for s in sampler.tuples if phase.start <= s["t"] < phase.end]
    hot_bytes = [hot_total(s, 0) for s in seconds]
    hot_dead = [hot_total(s, 1) for s in seconds]
    exact_dead = [sum(v[1] for v in s["tables"].values()) for s in tuples]
    depth = [s["depth"] for s in seconds]
    oldest = [s["oldest_xact_s"] or 0.0 for s in seconds]
    waits: Counter[str] = Counter()
    for second, counts in sampler.waits.items():
        if phase.start <= second < phase.end:
            waits.update(counts)
    samples = max(1, round(phase.seconds / 0.2))
    return {
        "phase": phase.name,
        "start": phase.start,
        "end": phase.end,
        "seconds": round(phase.seconds, 2),
        "offered_per_s": phase.offered_rate,
        "machine_busy_percent": phase.machine_busy_percent,
        "enqueued_per_s": round(row["enqueued"] / phase.seconds, 1),
        "completed_per_s": round(row["completed"] / phase.seconds, 1),
        "pickup_p50_ms": _round(pct[0]),
        "pickup_p95_ms": _round(pct[1]),
        "pickup_p99_ms": _round(pct[2]),
        "pickup_max_ms": _round(row["pickup_max_ms"]),
        "retried_jobs_started": row["retried"],
        "depth_mean": round(statistics.fmean(depth), 1) if depth else None,
        "depth_max": max(depth, default=None),
        "hot_bytes_max": max(hot_bytes, default=None),
        "hot_bytes_end": hot_bytes[-1] if hot_bytes else None,
        "hot_dead_stats_max": max(hot_dead, default=None),
        "hot_dead_exact_max": max(exact_dead, default=None),
        "history_bytes_end": seconds[-1]["history"][0] if seconds else None,
        "oldest_xact_s_max": round(max(oldest), 1) if oldest else None,
        # Mean active backends of each kind doing each thing (samples / sampling ticks).
        "waits": {k: round(n / samples, 3) for k, n in waits.most_common(8)},
        "rate_held": abs(row["enqueued"] / phase.seconds - phase.offered_rate)
        <= rate_sla * phase.offered_rate,
    }


def hot_total(second: dict[str, Any], index: int) -> int:
    """Sum over the hot tables of one sampled second: bytes (``index`` 0) or dead tuples (1)."""
    return int(sum(v[index] for v in second["tables"].values()))


def depth_threshold(clean: dict[str, Any], rate: float) -> float:
    """Queue depth that counts as "no backlog": twice the clean phase's worst, and never
    less than 50 ms of work at the clean rate."""
    return max(2.0 * (clean["depth_max"] or 0), rate * 0.05)


def drain_seconds(sampler: Sampler, stress: Phase, end: float, threshold: float) -> float | None:
    """Seconds from the end of ``stress`` until the sampled queue depth is back under
    ``threshold`` (None: not before ``end``)."""
    for s in sampler.seconds:
        if stress.end <= s["t"] < end and s["depth"] <= threshold:
            return round(max(0.0, s["t"] - stress.end), 1)
    return None


def recovered_after(
    series: list[dict[str, Any]],
    sampler: Sampler,
    clean: dict[str, Any],
    stress: Phase,
    recovery: Phase,
    window: int,
    rate: float,
) -> float | None:
    """Seconds from the end of stress until the first ``window``-second stretch that looks
    like the clean phase: completed/s within 20% of clean's, every second's p99 pickup at
    most 1.5x clean's p99 (+5 ms), and the queue depth under :func:`depth_threshold`.
    None: no such stretch before the recovery phase ended."""
    p99_limit = 1.5 * (clean["pickup_p99_ms"] or 0.0) + 5.0
    depth_limit = depth_threshold(clean, rate)
    depth_at = {int(s["t"]): s["depth"] for s in sampler.seconds}
    seconds = [s for s in series if stress.end <= s["s"] and s["s"] + 1 <= recovery.end]
    for i in range(len(seconds) - window + 1):
        stretch = seconds[i : i + window]
        done = statistics.fmean(s["completed"] for s in stretch)
        if abs(done - clean["completed_per_s"]) > 0.2 * clean["completed_per_s"]:
            continue
        if any((s["p99_ms"] or 0.0) > p99_limit for s in stretch):
            continue
        if any(depth_at.get(s["s"], 0) > depth_limit for s in stretch):
            continue
        return round(max(0.0, stretch[0]["s"] - stress.end), 1)
    return None


def hot_sizes(sampler: Sampler) -> list[tuple[float, int]]:
    """(time, bytes) of the hot tables, each sampled second."""
    return [(s["t"], hot_total(s, 0)) for s in sampler.seconds]


def hot_size_ratio(sizes: list[tuple[float, int]], clean: Phase, recovery: Phase) -> float | None:
    """The hot tables' largest size over the last turn of the ring in recovery, over their
    largest size in the clean phase."""
    tail = max(recovery.start, recovery.end - RING_TURN_S)
    before = [b for t, b in sizes if clean.start <= t < clean.end]
    after = [b for t, b in sizes if tail <= t < recovery.end]
    if not before or not after or max(before) == 0:
        return None
    return round(max(after) / max(before), 3)


def size_back_after(
    sizes: list[tuple[float, int]], clean: Phase, stress: Phase, recovery: Phase
) -> float | None:
    """Seconds from the end of stress until the hot tables are within
    :data:`SIZE_SLACK` of the clean phase's largest size and stay there to the end of
    recovery. A ring partition bloated during stress is truncated only once it has left
    the two partitions in use, so this takes up to a ring turn; None: not by the end."""
    before = [b for t, b in sizes if clean.start <= t < clean.end]
    if not before:
        return None
    limit = (1 + SIZE_SLACK) * max(before)
    back: float | None = None
    for t, size in sizes:
        if not stress.end <= t < recovery.end:
            continue
        if size > limit:
            back = None
        elif back is None:
            back = t
    return None if back is None else round(max(0.0, back - stress.end), 1)


def goals(
    scenario: str,
    phases: dict[str, dict[str, Any]],
    accounts: dict[str, int],
    drain_s: float | None,
    recovered_s: float | None,
    size_back_s: float | None,
) -> list[dict[str, Any]]:
    """The goals, each PASS or FAIL, with the value it was judged on."""
    clean, stress = phases["clean"], phases["stress"]
    out = []
    if scenario == "overload":
        out.append(
            _goal(
                f"excess drained within {RECOVER_WITHIN_S:.0f}s of stress end",
                "not drained" if drain_s is None else f"{drain_s:.1f}s",
                drain_s is not None and drain_s <= RECOVER_WITHIN_S,
            )
        )
    else:
        kept = (
            stress["completed_per_s"] / clean["completed_per_s"] if clean["completed_per_s"] else 0
        )
        out.append(
            _goal(
                f"stress throughput >= {THROUGHPUT_KEPT:.0%} of clean",
                f"{kept:.1%} ({stress['completed_per_s']:.0f} vs {clean['completed_per_s']:.0f}/s)",
                kept >= THROUGHPUT_KEPT,
            )
        )
    p99 = stress["pickup_p99_ms"]
    out.append(
        _goal(
            f"stress p99 pickup < {STRESS_P99_MS:.0f} ms",
            "no jobs" if p99 is None else f"{p99:.1f} ms",
            p99 is not None and p99 < STRESS_P99_MS,
        )
    )
    lost, twice = accounts["missing"], accounts["duplicated"]
    out.append(
        _goal(
            "no lost or duplicated job",
            f"{accounts['done_once']}/{accounts['enqueued']} done once, {lost} lost, "
            f"{twice} duplicated, {accounts['retried']} retried",
            lost == 0 and twice == 0 and accounts["unexpected"] == 0,
        )
    )
    out.append(
        _goal(
            f"back to clean baseline within {RECOVER_WITHIN_S:.0f}s",
            "not within recovery" if recovered_s is None else f"{recovered_s:.0f}s",
            recovered_s is not None and recovered_s <= RECOVER_WITHIN_S,
        )
    )
    out.append(
        _goal(
            f"hot tables back within {SIZE_SLACK:.0%} of clean size within "
            f"{RECOVER_WITHIN_S:.0f}s, and staying",
            "not by the end of recovery" if size_back_s is None else f"{size_back_s:.0f}s",
            size_back_s is not None and size_back_s <= RECOVER_WITHIN_S,
        )
    )
    return out


def _goal(name: str, value: str, passed: bool) -> dict[str, Any]:
    return {"goal": name, "value": value, "pass": passed}


def _round(value: float | None, digits: int = 2) -> float | None:
    if value is None or math.isnan(value):
        return None
    return round(float(value), digits)
