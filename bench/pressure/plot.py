"""One PNG per scenario: throughput, pickup latency and the hot tables' dead tuples and size
over time, with the phases shaded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt

SHADES = {"warmup": "#d9d9d9", "clean": "#cfe8cf", "stress": "#f4c7c3", "recovery": "#cfe0f4"}


def draw(path: Path, scenario: str, report: dict[str, Any]) -> None:
    """Write the scenario's plot to ``path``; x is seconds since the warm-up started."""
    phases = report["phases"]
    origin = phases[0]["start"]
    series = report["series"]
    x = [s + 0.5 - origin for s in series["s"]]  # the middle of each second
    fig, (rates, latency, dead) = plt.subplots(3, 1, figsize=(11, 9), sharex=True)
    fig.suptitle(f"soniq pressure: {scenario} at {report['rate']:.0f} jobs/s")

    rates.plot(x, _nan(series["enqueued"]), label="enqueued/s", color="#888888", linewidth=1)
    rates.plot(x, _nan(series["completed"]), label="completed/s", color="#1f77b4", linewidth=1.2)
    depth = rates.twinx()
    depth.plot(x, _nan(series["depth"]), label="queue depth", color="#ff7f0e", linewidth=0.8)
    depth.set_ylabel("queued jobs")
    rates.set_ylabel("jobs/s")
    _legend(rates, depth)

    for key, colour in (("p50_ms", "#2ca02c"), ("p99_ms", "#d62728")):
        latency.plot(
            x,
            _nan(series[key]),
            label=f"pickup {key[:3]}",
            color=colour,
            linewidth=1,
        )
    latency.axhline(50, color="#d62728", linestyle=":", linewidth=0.8, label="50 ms goal")
    latency.set_yscale("log")
    latency.set_ylabel("ms (enqueue to start)")
    latency.legend(loc="upper left", fontsize=8)

    dead.plot(
        [t - origin for t in series["exact_dead_t"]],
        series["exact_dead"],
        color="#6a3d9a",
        linewidth=1.2,
        label="dead tuples (pgstattuple)",
    )
    # n_dead_tup only falls when VACUUM or TRUNCATE runs, not when a scan prunes a page
    dead.plot(
        x,
        _nan(series["hot_dead"]),
        ":",
        color="#9467bd",
        linewidth=1,
        label="dead tuples (statistics)",
    )
    size = dead.twinx()
    size.plot(
        x,
        [b / 2**20 if b is not None else float("nan") for b in series["hot_bytes"]],
        label="hot tables MB",
        color="#8c564b",
        linewidth=1,
    )
    size.set_ylabel("MB (table + indexes)")
    dead.set_ylabel("dead tuples")
    dead.set_xlabel("seconds since warm-up start")
    _legend(dead, size)

    for axis in (rates, latency, dead):
        for phase in phases:
            axis.axvspan(
                phase["start"] - origin,
                phase["end"] - origin,
                color=SHADES.get(phase["phase"], "#eeeeee"),
                alpha=0.5,
                linewidth=0,
            )
    for phase in phases:
        rates.text(
            (phase["start"] + phase["end"]) / 2 - origin,
            1.01,
            phase["phase"],
            transform=rates.get_xaxis_transform(),
            ha="center",
            fontsize=8,
        )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _legend(left: Any, right: Any) -> None:
    lines, labels = left.get_legend_handles_labels()
    more, more_labels = right.get_legend_handles_labels()
    left.legend(lines + more, labels + more_labels, loc="upper left", fontsize=8)


def _nan(values: list[float | None]) -> list[float]:
    return [float("nan") if v is None else v for v in values]
