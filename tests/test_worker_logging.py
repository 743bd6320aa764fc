"""Operators read logs too: one line per failed attempt (a retry with its delay, a dead
letter with its reason), each carrying the job's id, task, queue and attempt, and
``soniq worker --log-format json`` writes them as JSON objects."""

from __future__ import annotations

import json
import logging

import pytest

from soniq import Soniq
from soniq.cli.worker import JsonFormatter


def _job_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "soniq.worker" and hasattr(r, "soniq")]


async def test_each_failed_attempt_logs_one_line_then_the_dead_letter(
    app: Soniq, caplog: pytest.LogCaptureFixture
) -> None:
    @app.job(name="mail.send", queue="mail", retries=1)
    async def send(to: str) -> None:
        raise ValueError(f"no mailbox {to}")

    job_id = await app.enqueue("mail.send", {"to": "x@example.com"})
    with caplog.at_level(logging.INFO, logger="soniq.worker"):
        await app.drain()  # the first attempt; its retry waits out the backoff
        while (await app.get_job(job_id)).state.value != "dead":
            await app.drain()
    retry, dead = _job_records(caplog)
    assert retry.levelno == logging.WARNING
    assert retry.soniq == {  # type: ignore[attr-defined]
        "job_id": job_id,
        "task": "mail.send",
        "queue": "mail",
        "attempt": 1,
        "outcome": "queued",
        "reason": "exception",
        "retry_delay": retry.soniq["retry_delay"],  # type: ignore[attr-defined]
    }
    assert 0 < retry.soniq["retry_delay"] < 1  # type: ignore[attr-defined]
    assert "retrying in" in retry.getMessage() and "no mailbox" in retry.getMessage()
    assert dead.levelno == logging.ERROR
    assert dead.soniq["attempt"] == 2 and dead.soniq["outcome"] == "dead"  # type: ignore[attr-defined]
    assert f"job {job_id} (mail.send, queue mail, attempt 2) dead-lettered (exception)" in (
        dead.getMessage()
    )


async def test_a_done_job_logs_nothing(app: Soniq, caplog: pytest.LogCaptureFixture) -> None:
    @app.job(name="mail.ok")
    async def ok() -> None:
        return None

    await app.enqueue("mail.ok", {})
    with caplog.at_level(logging.DEBUG, logger="soniq.worker"):
        assert await app.drain() == 1
    assert _job_records(caplog) == []


def test_the_json_format_carries_the_job_fields() -> None:
    record = logging.LogRecord(
        "soniq.worker", logging.ERROR, __file__, 1, "job %d dead", (7,), None
    )
    record.soniq = {"job_id": 7, "task": "mail.send", "queue": "mail", "attempt": 3}
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "job 7 dead"
    assert line["level"] == "ERROR"
    assert (line["job_id"], line["task"], line["queue"], line["attempt"]) == (
        7,
        "mail.send",
        "mail",
        3,
    )
    assert line["time"].endswith("+00:00")
