"""What one benchmark run does: sizes, repeats and the scenarios each system goes through."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

LOCAL_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_SYSTEMS = ("soniq", "pgqueuer", "procrastinate", "graphile")
DRAIN_CONCURRENCIES = (10, 100)
RSS_CONCURRENCY = 200

# Scenario keys, as they appear in the JSON file.
SINGLE = "enqueue_single"
BULK = "enqueue_bulk"
LATENCY = "latency"
RSS = "worker_rss"
VALIDATION = "validation_cost"
# What the database allows on Soniq's tables (bench/limits.py).
LIMIT_DRAIN = "limit_drain"
LIMIT_COPY = "limit_copy"


# Drains of a queue with settings (docs/runtime.md, "Steering queues"), at c500 as the
# unlimited drain_c500 they are compared with: a concurrency limit that never binds, one
# partition per job (limit 1 each, so never binding either), and a rate limit that binds.
STEERED_CONCURRENCY = 500
STEERED_LIMITED = "steered_limited"
STEERED_PARTITIONED = "steered_partitioned"
STEERED_RATE = "steered_rate"
STEERED_RATE_PER_S = 5000


def drain_scenario(concurrency: int) -> str:
    return f"drain_c{concurrency}"


@dataclass(frozen=True)
class Sizes:
    """How much work each scenario does (per system, per repeat)."""

    single_jobs: int  # at most this many one-at-a-time enqueues...
    single_seconds: float  # ...or stop after this long, whichever comes first
    bulk_jobs: int  # one enqueue_many call of this many jobs
    drain_jobs: int  # jobs queued before the worker starts
    latency_samples: int
    latency_gap: float  # idle time between two latency samples, seconds
    rss_jobs: int
    rss_job_seconds: float  # each RSS job sleeps this long so all slots fill
    repeats: int
    # For a system that runs a few hundred jobs/s (procrastinate), so a run stays short:
    slow_bulk_jobs: int
    slow_drain_jobs: int
    slow_rss_jobs: int
    # Diagnostics: sample pg_stat_activity this often during drains (0: not at all).
    wait_sample_every: float = 0.0

    def for_system(self, slow: bool) -> Sizes:
        """These sizes, scaled down for a slow system."""
        if not slow:
            return self
        return replace(
            self,
            bulk_jobs=self.slow_bulk_jobs,
            drain_jobs=self.slow_drain_jobs,
            rss_jobs=self.slow_rss_jobs,
        )


DEFAULT_SIZES = Sizes(
    single_jobs=2000,
    single_seconds=0.8,
    bulk_jobs=20_000,
    drain_jobs=20_000,  # large enough that worker start-up is a small part of the time
    latency_samples=300,
    latency_gap=0.002,
    rss_jobs=3000,
    rss_job_seconds=0.02,
    repeats=3,
    slow_bulk_jobs=10_000,
    slow_drain_jobs=400,
    slow_rss_jobs=600,
)

SMOKE_SIZES = Sizes(
    single_jobs=20,
    single_seconds=0.5,
    bulk_jobs=200,
    drain_jobs=200,
    latency_samples=10,
    latency_gap=0.002,
    rss_jobs=60,
    rss_job_seconds=0.01,
    repeats=1,
    slow_bulk_jobs=100,
    slow_drain_jobs=40,
    slow_rss_jobs=40,
)


def sizes_for(smoke: bool, repeats: int | None, *, sample_waits: bool = False) -> Sizes:
    sizes = SMOKE_SIZES if smoke else DEFAULT_SIZES
    if sample_waits:
        sizes = replace(sizes, wait_sample_every=0.01)
    return sizes if repeats is None else replace(sizes, repeats=repeats)


def default_database_url() -> str:
    return os.environ.get("SONIQ_DATABASE_URL") or LOCAL_URL
