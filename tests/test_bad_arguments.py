"""Documented inputs with bad values get one SoniqError (or a usage error from the CLI)
naming what is wrong, and nothing is written: never a raw ValueError, OverflowError or
driver error."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from soniq import ConfigurationError, EnqueueError, JobNotFoundError, Soniq
from tests.helpers import count_jobs
from tests.test_cli import soniq_cli

BEYOND_BIGINT = 2**63


@pytest.mark.parametrize(
    "options",
    [
        {"delay": float("nan")},
        {"delay": float("inf")},
        {"delay": 1e20},
        {"delay": timedelta(days=999_999_999)},
        {"delay": "5"},
        {"dedup_key": "\U0001f600" * 251},  # 251 characters, 1,004 bytes
        {"priority": 2**31},
    ],
    ids=repr,
)
async def test_bad_enqueue_options_are_enqueue_errors_with_nothing_written(
    app: Soniq, db: asyncpg.Connection, schema: str, options: dict[str, Any]
) -> None:
    with pytest.raises(EnqueueError):
        await app.enqueue("any.task", {}, **options)
    assert await count_jobs(db, schema) == 0


async def test_a_dedup_key_of_many_multibyte_characters_is_stored_up_to_its_byte_limit(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    key = "\U0001f600" * 250  # 1,000 bytes: the limit
    first = await app.enqueue("any.task", {}, dedup_key=key)
    assert await app.enqueue("any.task", {}, dedup_key=key) == first
    assert await count_jobs(db, schema, "dedup_key = $1", key) == 1


async def test_ids_no_job_can_have_are_missing_jobs_and_ids_that_are_not_numbers_are_refused(
    app: Soniq,
) -> None:
    with pytest.raises(JobNotFoundError):
        await app.get_job(BEYOND_BIGINT)
    assert await app.cancel(BEYOND_BIGINT) is False
    assert await app.dead_letter.replay(BEYOND_BIGINT) == []
    assert await app.dead_letter.replay([1, BEYOND_BIGINT]) == []
    assert await app.dead_letter.purge([BEYOND_BIGINT]) == 0
    for bad in ("12", 1.5, None, [1, "2"]):
        with pytest.raises(ConfigurationError, match="integer"):
            await app.dead_letter.replay(bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        await app.get_job("12")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"limit": -1}, "limit"),
        ({"limit": 0}, "limit"),
        ({"state": "bogus"}, "one of queued, running"),
    ],
)
async def test_bad_list_filters_are_configuration_errors(
    app: Soniq, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        await app.list_jobs(**options)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://postgres@127.0.0.1:99999/postgres",
        "postgresql://postgres@127.0.0.1:port/postgres",
        "postgresql://postgres:p@ss@[::1/postgres",
    ],
)
def test_a_malformed_url_is_a_configuration_error_at_once(url: str) -> None:
    with pytest.raises(ConfigurationError, match="malformed") as info:
        Soniq(url)
    assert "p@ss" not in str(info.value)


async def test_delay_counts_on_the_databases_clock(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    job_id = await app.enqueue("any.task", {}, delay=timedelta(seconds=2))
    # Both from the same now() of the inserting transaction: exact, whatever the
    # producer's clock says.
    assert await db.fetchval(
        f"SELECT scheduled_at - enqueued_at FROM {schema}.jobs WHERE id = $1", job_id
    ) == timedelta(seconds=2)


@pytest.mark.parametrize(
    "args",
    [
        ["dead-letter", "replay", "--all", "--older-than", "99999999999d"],
        ["worker", "tests.apps.counting_app:app", "--log-level", "verbose"],
    ],
)
def test_cli_usage_errors_print_no_traceback(
    python: str, subprocess_env: dict[str, str], args: list[str]
) -> None:
    result = soniq_cli(python, subprocess_env, *args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert "Error: Invalid value" in result.stderr

