"""Prometheus metrics: counters and histograms scraped from the real /metrics endpoint."""

from __future__ import annotations

import asyncio
import re
import sys
import urllib.request
from pathlib import Path

import asyncpg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from soniq import ConfigurationError, Soniq
from tests.helpers import start_worker, stop_worker, wait_state, wait_until
from tests.processes import WorkerProcess, stop_all

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(port: int) -> Samples:
    """Every sample the endpoint serves, keyed by name and labels."""

    def get() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            return str(response.read().decode())

    text = await asyncio.to_thread(get)
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def sample(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_worker_counts_enqueues_outcomes_and_times(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    port = app.serve_metrics(0)
    seen: list[int] = []

    @app.job(name="m.ok")
    def ok(n: int) -> int:
        return n

    @app.job(name="m.flaky", retries=1)
    def flaky(n: int) -> None:
        seen.append(n)
        if len(seen) == 1:
            raise RuntimeError("first attempt fails")

    @app.job(name="m.broken", retries=0)
    def broken(n: int) -> None:
        raise ValueError("always")

    ok_ids = await app.enqueue_many("m.ok", [{"n": 1}, {"n": 2}])
    flaky_id = await app.enqueue("m.flaky", {"n": 3})
    broken_id = await app.enqueue("m.broken", {"n": 4}, queue="other")
    worker = start_worker(app)
    for job_id in ok_ids:
        await wait_state(db, schema, job_id, "done")
    await wait_state(db, schema, flaky_id, "done")
    await wait_state(db, schema, broken_id, "dead")
    await stop_worker(worker)

    m = await scrape(port)
    assert sample(m, "soniq_jobs_enqueued_total", task="m.ok", queue="default") == 2
    assert sample(m, "soniq_jobs_enqueued_total", task="m.broken", queue="other") == 1
    assert sample(m, "soniq_jobs_started_total", task="m.ok", queue="default") == 2
    assert sample(m, "soniq_jobs_succeeded_total", task="m.ok", queue="default") == 2
    assert sample(m, "soniq_jobs_started_total", task="m.flaky", queue="default") == 2
    assert sample(m, "soniq_jobs_succeeded_total", task="m.flaky", queue="default") == 1
    assert sample(m, "soniq_jobs_retried_total", task="m.flaky", queue="default") == 1
    failed = "soniq_jobs_failed_total"
    assert sample(m, failed, task="m.flaky", queue="default", reason="exception") == 1
    assert sample(m, failed, task="m.broken", queue="other", reason="exception") == 1
    dead = "soniq_jobs_dead_lettered_total"
    assert sample(m, dead, task="m.broken", queue="other", reason="exception") == 1
    assert sample(m, dead, task="m.flaky", queue="default", reason="exception") == 0
    assert sample(m, "soniq_job_run_seconds_count", task="m.ok") == 2
    assert sample(m, "soniq_job_run_seconds_count", task="m.flaky") == 2
    assert sample(m, "soniq_job_queue_wait_seconds_count", task="m.ok") == 2
    assert sample(m, "soniq_job_queue_wait_seconds_sum", task="m.ok") > 0


async def test_close_stops_the_metrics_server(app: Soniq) -> None:
    port = app.serve_metrics(0)
    await app.enqueue("m.any", {})
    assert sample(await scrape(port), "soniq_jobs_enqueued_total", task="m.any", queue="default")
    with pytest.raises(ConfigurationError, match="already serves metrics"):
        app.serve_metrics(0)
    await app.close()
    with pytest.raises(OSError):
        await scrape(port)


async def test_missing_extra_is_a_configuration_error(
    app: Soniq, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    with pytest.raises(ConfigurationError, match=r"pip install 'soniq-jobs\[metrics\]'"):
        app.serve_metrics(0)


async def test_cli_worker_serves_metrics(
    app: Soniq, python: str, subprocess_env: dict[str, str], tmp_path: Path
) -> None:
    job_id = await app.enqueue("cli.unknown", {})
    worker = WorkerProcess(
        python,
        "tests.apps.counting_app:app",
        subprocess_env,
        tmp_path / "worker.log",
        ["--metrics-port", "0"],
    )
    try:

        async def served_port() -> int | None:
            found = re.search(r"serving metrics at http://127\.0\.0\.1:(\d+)/", worker.output())
            return int(found.group(1)) if found else None

        port = await wait_until(served_port)

        async def dead() -> bool:
            return (await app.get_job(job_id)).state == "dead"

        await wait_until(dead)
        m = await scrape(port)
        dead_lettered = "soniq_jobs_dead_lettered_total"
        labels = {"task": "cli.unknown", "queue": "default", "reason": "Job not registered"}
        assert sample(m, dead_lettered, **labels) == 1
    finally:
        assert stop_all([worker]) == [0]


async def test_an_outcome_discarded_by_fencing_is_counted_as_fenced_not_as_succeeded(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    port = app.serve_metrics(0)
    release = asyncio.Event()

    @app.job(name="m.slow")
    async def slow() -> None:
        await release.wait()

    job_id = await app.enqueue("m.slow")
    worker = start_worker(app)
    try:
        await wait_state(db, schema, job_id, "running")
        # As if the lease had run out and another worker had claimed the job meanwhile.
        await db.execute(
            f"UPDATE {schema}.job_live SET claim_token = gen_random_uuid() WHERE id = $1", job_id
        )
        release.set()
        await wait_until(lambda: _fenced_count(port), timeout=20)  # the discarded write is reported
    finally:
        await stop_worker(worker)
    samples = await scrape(port)
    labels = {"task": "m.slow", "queue": "default"}
    assert sample(samples, "soniq_outcomes_fenced_total", **labels) == 1
    assert sample(samples, "soniq_jobs_succeeded_total", **labels) == 0
    assert await db.fetchval(f"SELECT state FROM {schema}.jobs WHERE id = $1", job_id) == "running"


async def _fenced_count(port: int) -> float:
    return sample(await scrape(port), "soniq_outcomes_fenced_total", task="m.slow", queue="default")
