"""A dedup key held by a live job is visible: enqueue says whether it created the job,
and ``on_conflict="raise"`` refuses the duplicate with nothing written."""

from __future__ import annotations

import secrets

import asyncpg
import pytest

from soniq import DuplicateJobError, EnqueueError, JobId, Soniq
from tests.helpers import count_jobs, set_up_to_migration
from tests.test_roles import PASSWORD, url_as


async def test_enqueue_says_whether_it_created_the_job(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    first = await app.enqueue("sync.account", {"account": 1}, dedup_key="acct-1")
    again = await app.enqueue("sync.account", {"account": 99}, dedup_key="acct-1")
    plain = await app.enqueue("sync.account", {"account": 2})
    assert isinstance(first, JobId) and isinstance(first, int)
    assert (first.created, again.created, plain.created) == (True, False, True)
    assert again == first and hash(again) == hash(first)
    assert await app.get_job(again) == await app.get_job(first)  # usable as a plain id
    assert (await app.get_job(first)).args == {"account": 1}  # the second args were dropped
    assert await count_jobs(db, schema) == 2


async def test_on_conflict_raise_refuses_a_duplicate_with_nothing_written(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    first = await app.enqueue(
        "sync.account", {"account": 1}, dedup_key="acct-1", on_conflict="raise"
    )
    assert first.created
    with pytest.raises(DuplicateJobError) as refused:
        await app.enqueue("sync.account", {"account": 2}, dedup_key="acct-1", on_conflict="raise")
    assert refused.value.job_id == first and refused.value.dedup_key == "acct-1"
    assert str(refused.value) == (
        f"dedup_key 'acct-1' is held by live job {first} ('sync.account' was not enqueued again)"
    )
    assert isinstance(refused.value, EnqueueError)
    assert await count_jobs(db, schema) == 1
    # Inside a caller's transaction, too: the caller decides what to do with it.
    async with app.connection() as conn, conn.transaction():
        with pytest.raises(DuplicateJobError):
            await app.enqueue(
                "sync.account", {}, dedup_key="acct-1", on_conflict="raise", connection=conn
            )
    assert await count_jobs(db, schema) == 1


async def test_a_bad_on_conflict_is_refused(app: Soniq) -> None:
    with pytest.raises(EnqueueError, match="on_conflict must be 'return' or 'raise'"):
        await app.enqueue("sync.account", dedup_key="k", on_conflict="ignore")  # type: ignore[arg-type]


async def test_a_producer_granted_before_the_upgrade_can_still_enqueue_with_a_key(
    database_url: str, db: asyncpg.Connection, schema: str
) -> None:
    if not database_url.startswith("postgres"):
        pytest.skip("needs a server that accepts new roles")
    # The schema as migration 0010 left it, with a producer granted what 0010 offered.
    await set_up_to_migration(db, schema, 10)
    role = f"soniq_test_old_producer_{secrets.token_hex(4)}"
    await db.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{PASSWORD}'")
    try:
        await db.execute(f"GRANT USAGE ON SCHEMA {schema} TO {role}")
        await db.execute(f"GRANT EXECUTE ON FUNCTION {schema}.enqueue TO {role}")
        async with Soniq(database_url, schema=schema) as owner:
            await owner.setup()  # applies 0011 and later
        async with Soniq(url_as(database_url, role), schema=schema) as producer:
            first = await producer.enqueue("sync.account", dedup_key="acct-1")
            again = await producer.enqueue("sync.account", dedup_key="acct-1")
        assert (first.created, again.created, again) == (True, False, first)
        # An unrelated role still cannot.
        assert not await db.fetchval(
            f"SELECT has_function_privilege('public', '{schema}.enqueue_job(text, json, text, "
            "integer, timestamptz, interval, text, integer, integer, text, json, integer)', "
            "'EXECUTE')"
        )
    finally:
        await db.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await db.execute(f"DROP ROLE {role}")
