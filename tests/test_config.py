"""Configuration: where the database URL comes from, and the errors for bad settings."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from soniq import (
    ConfigurationError,
    DatabaseUnavailableError,
    InvalidNameError,
    RegistrationError,
    Soniq,
)
from tests.helpers import count_jobs, start_worker, stop_worker

UNREACHABLE = "postgresql://postgres:s3cret@127.0.0.1:1/postgres"


async def test_no_url_and_no_env_is_a_configuration_error_at_first_use(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SONIQ_DATABASE_URL", raising=False)
    app = Soniq()  # a module-level app imports before its environment is configured
    message = (
        "no database configured: pass Soniq(database_url='postgresql://user@host/db'), or set "
        "SONIQ_DATABASE_URL; use database_url='embedded' to run a local PostgreSQL inside "
        "this environment (pip install 'soniq-jobs[embedded]')"
    )
    with pytest.raises(ConfigurationError) as first_use:
        await app.enqueue("some.task")
    assert str(first_use.value) == message
    with pytest.raises(ConfigurationError, match="no database configured"):
        await app.status()
    monkeypatch.setenv("SONIQ_DATABASE_URL", "")
    with pytest.raises(ConfigurationError, match="no database configured"):
        await Soniq().status()


async def test_env_url_set_after_the_app_is_created_is_used(
    monkeypatch: pytest.MonkeyPatch, database_url: str, schema: str, db: asyncpg.Connection
) -> None:
    monkeypatch.delenv("SONIQ_DATABASE_URL", raising=False)
    app = Soniq(schema=schema)
    monkeypatch.setenv("SONIQ_DATABASE_URL", database_url)
    try:
        await app.setup()
        job_id = await app.enqueue("env.task")
    finally:
        await app.close()
    assert await count_jobs(db, schema, "id = $1", job_id) == 1


def test_a_malformed_env_url_is_still_refused_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SONIQ_DATABASE_URL", "mysql://x@y/z")
    with pytest.raises(ConfigurationError, match="is not a PostgreSQL URL"):
        Soniq()


async def test_env_url_is_used_when_no_argument_is_given(
    monkeypatch: pytest.MonkeyPatch, database_url: str, schema: str, db: asyncpg.Connection
) -> None:
    monkeypatch.setenv("SONIQ_DATABASE_URL", database_url)
    app = Soniq(schema=schema)
    try:
        await app.setup()
        job_id = await app.enqueue("env.task")
    finally:
        await app.close()
    assert await count_jobs(db, schema, "id = $1", job_id) == 1


async def test_explicit_url_wins_over_env(
    monkeypatch: pytest.MonkeyPatch, database_url: str, schema: str, db: asyncpg.Connection
) -> None:
    monkeypatch.setenv("SONIQ_DATABASE_URL", UNREACHABLE)
    app = Soniq(database_url, schema=schema)
    try:
        await app.setup()
        await app.enqueue("explicit.task")
    finally:
        await app.close()
    assert await count_jobs(db, schema) == 1


async def test_schema_comes_from_soniq_schema_env_when_not_given(
    monkeypatch: pytest.MonkeyPatch, database_url: str, schema: str, db: asyncpg.Connection
) -> None:
    monkeypatch.setenv("SONIQ_SCHEMA", schema)
    app = Soniq(database_url)
    try:
        assert app.schema == schema
        await app.setup()
        await app.enqueue("env.task")
    finally:
        await app.close()
    assert await count_jobs(db, schema) == 1


@pytest.mark.parametrize(
    "url",
    [
        "mysql://root:s3cret@localhost/db",
        "sqlite:///tmp/x.db",
        "127.0.0.1:5432",
        "postgresq://postgres@localhost/db",
    ],
)
def test_non_postgres_url_is_a_configuration_error_without_the_password(url: str) -> None:
    with pytest.raises(ConfigurationError, match="postgresql://") as info:
        Soniq(url)
    assert "s3cret" not in str(info.value)


async def test_unreachable_server_is_database_unavailable_without_the_password(
    schema: str,
) -> None:
    app = Soniq(UNREACHABLE, schema=schema)
    try:
        with pytest.raises(DatabaseUnavailableError) as info:
            await app.enqueue("any.task")
        assert "s3cret" not in str(info.value)
        assert "127.0.0.1:1" in str(info.value)
        with pytest.raises(DatabaseUnavailableError) as info:
            await app.setup()
        assert "s3cret" not in str(info.value)
    finally:
        await app.close()


async def test_wrong_database_name_is_a_configuration_error(database_url: str, schema: str) -> None:
    parts = urlsplit(database_url)
    missing = urlunsplit(parts._replace(path="/soniq_no_such_database_x"))
    app = Soniq(missing, schema=schema)
    try:
        with pytest.raises(ConfigurationError, match="soniq_no_such_database_x"):
            await app.enqueue("any.task")
    finally:
        await app.close()


@pytest.mark.parametrize(
    "bad", ["Soniq", "has-dash", "1leading_digit", "x; DROP TABLE y", "s" * 49, "a.b", "\u00e9"]
)
def test_invalid_schema_name_is_refused(
    monkeypatch: pytest.MonkeyPatch, database_url: str, bad: str
) -> None:
    with pytest.raises(InvalidNameError, match="schema"):
        Soniq(database_url, schema=bad)
    monkeypatch.setenv("SONIQ_SCHEMA", bad)
    with pytest.raises(InvalidNameError, match="schema"):
        Soniq(database_url)


def test_longest_valid_schema_name_is_accepted(database_url: str) -> None:
    assert Soniq(database_url, schema="s" * 48).schema == "s" * 48


def test_empty_schema_argument_is_refused_not_replaced_by_the_default(
    monkeypatch: pytest.MonkeyPatch, database_url: str
) -> None:
    # An explicit schema="" (say, a tenant setting left blank) must not silently fall
    # back to SONIQ_SCHEMA or "soniq", which would mix its jobs with another schema's.
    monkeypatch.setenv("SONIQ_SCHEMA", "someone_else")
    with pytest.raises(InvalidNameError, match="schema"):
        Soniq(database_url, schema="")


@pytest.mark.parametrize(
    "options",
    [
        {"default_retries": -1},
        {"default_retries": 1.5},
        {"default_retries": True},
        {"max_args_bytes": 0},
        {"pool_size": 0},
        {"retry_backoff": timedelta(0)},
        {"retry_backoff": 1},
        {"retry_backoff_max": timedelta(seconds=-1)},
        {"done_retention": timedelta(0)},
    ],
    ids=lambda o: "-".join(f"{k}={v!r}" for k, v in o.items()),
)
def test_bad_app_options_are_configuration_errors(
    database_url: str, options: dict[str, Any]
) -> None:
    with pytest.raises(ConfigurationError):
        Soniq(database_url, **options)


@pytest.mark.parametrize(
    "options",
    [
        {"concurrency": 0},
        {"concurrency": -2},
        {"concurrency": True},
        {"queues": []},
        {"lease": timedelta(0)},
        {"poll_interval": timedelta(seconds=-1)},
    ],
    ids=lambda o: "-".join(f"{k}={v!r}" for k, v in o.items()),
)
async def test_bad_worker_options_are_configuration_errors(
    app: Soniq, options: dict[str, Any]
) -> None:
    with pytest.raises(ConfigurationError):
        await app.run_worker(**options)


async def test_invalid_worker_queue_name_is_refused(app: Soniq) -> None:
    with pytest.raises(InvalidNameError):
        await app.run_worker(queues=["Bad Queue"])


def test_negative_retries_for_a_job_is_a_registration_error(database_url: str) -> None:
    app = Soniq(database_url)
    with pytest.raises(RegistrationError, match="retries"):

        @app.job(name="some.task", retries=-1)
        async def handler() -> None:
            return None


async def test_second_worker_on_the_same_app_is_refused(app: Soniq) -> None:
    ran = asyncio.Event()

    @app.job(name="probe.task")
    async def probe() -> None:
        ran.set()

    await app.enqueue("probe.task")
    worker = start_worker(app)
    try:
        await asyncio.wait_for(ran.wait(), 20)  # the first worker is certainly running
        with pytest.raises(ConfigurationError, match="already running"):
            await app.run_worker()
    finally:
        await stop_worker(worker)
