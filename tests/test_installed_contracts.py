"""Enqueue by bare task name uses the installed contract packages: a real package generated
from schemas/ and pip-installed into a directory put on sys.path, found through its
``soniq.contracts`` entry point."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path

import asyncpg
import pytest
from click.testing import CliRunner

from soniq import InvalidArgumentsError, Soniq, UnknownTaskError, UnknownTaskWarning
from soniq_codegen.cli import main as codegen
from tests.helpers import REPO, count_jobs, job_row

ARGS = {
    "order_id": "o-1",
    "customer": "ap@acme.example",
    "amount": {"amount_cents": 1299, "currency": "EUR"},
}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding the installed billing_tasks distribution (code and dist-info)."""
    root = tmp_path_factory.mktemp("contracts")
    project = root / "billing_tasks"
    result = CliRunner().invoke(codegen, ["build", str(REPO / "schemas"), "-o", str(project)])
    assert result.exit_code == 0, result.output
    target = root / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check",
         "--no-deps", "--no-build-isolation", "--target", str(target), str(project)],
        check=True,
        timeout=300,
    )  # fmt: skip
    return target


@pytest.fixture
def installed(site: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.syspath_prepend(str(site))
    yield
    for name in [m for m in sys.modules if m == "billing_tasks" or m.startswith("billing_tasks.")]:
        del sys.modules[name]


@pytest.fixture
async def strict(database_url: str, schema: str) -> Iterator[Soniq]:
    app = Soniq(database_url, schema=schema, unknown_tasks="refuse")
    await app.setup()
    yield app
    await app.close()


async def test_a_known_name_is_validated_by_its_contract(
    installed: None, app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    with pytest.raises(InvalidArgumentsError, match="customer"):
        await app.enqueue("billing.send_invoice", args={**ARGS, "customer": "not an email"})
    assert await count_jobs(db, schema) == 0


async def test_a_known_name_goes_to_its_default_queue_stamped_with_its_version(
    installed: None, app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    from billing_tasks import REFUND_PAYMENT, SEND_INVOICE

    job_id = await app.enqueue("billing.send_invoice", args=ARGS)
    row = await job_row(db, schema, job_id)
    assert row["queue"] == SEND_INVOICE.default_queue == "billing"
    assert row["contract_version"] == SEND_INVOICE.version
    assert row["contract_fingerprint"] == SEND_INVOICE.fingerprint
    [refund] = await app.enqueue_many(
        "billing.refund_payment",
        [
            {
                "payment_id": "0b5f5a4e-4f39-4c8e-9a57-7f0c2b0f6d11",
                "amount": {"amount_cents": 2500, "currency": "USD"},
                "reason": "requested_by_customer",
            }
        ],
    )
    assert (await job_row(db, schema, refund))["contract_version"] == REFUND_PAYMENT.version == 2


async def test_a_typo_is_warned_about_with_the_closest_name(
    installed: None, app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    with pytest.warns(UnknownTaskWarning) as warned:
        job_id = await app.enqueue("billing.send_invoce", args=ARGS)
    assert str(warned[0].message) == (
        "task 'billing.send_invoce' is in no installed contract package and has no handler "
        "here (did you mean 'billing.send_invoice'?); enqueued anyway"
    )
    assert warned[0].filename == __file__
    assert (await job_row(db, schema, job_id))["queue"] == "default"


async def test_a_typo_is_refused_with_nothing_written(
    installed: None, strict: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    with pytest.raises(UnknownTaskError) as refused:
        await strict.enqueue("billing.send_invoce", args=ARGS)
    assert str(refused.value) == (
        "task 'billing.send_invoce' is in no installed contract package and has no handler "
        "here (did you mean 'billing.send_invoice'?); nothing written"
    )
    with pytest.raises(UnknownTaskError):
        await strict.enqueue_many("billing.send_invoce", [ARGS])
    assert await count_jobs(db, schema) == 0
    await strict.enqueue("billing.send_invoice", args=ARGS)  # known names still go through

    @strict.job(name="local.only")
    async def local_only() -> None: ...

    await strict.enqueue("local.only")  # as do names the app has a handler for
    assert await count_jobs(db, schema) == 2


async def test_allow_enqueues_unknown_names_silently(
    installed: None, database_url: str, schema: str, db: asyncpg.Connection
) -> None:
    async with Soniq(database_url, schema=schema, unknown_tasks="allow") as app:
        await app.setup()
        await app.enqueue("billing.send_invoce", args={"anything": 1})
        job_id = await app.enqueue("billing.send_invoice", args=ARGS)
    assert (await job_row(db, schema, job_id))["queue"] == "billing"


async def test_without_contract_packages_bare_names_behave_as_before(
    app: Soniq, db: asyncpg.Connection, schema: str
) -> None:
    assert not list(entry_points(group="soniq.contracts"))
    # No warning (warnings are errors here), any args, the default queue.
    job_id = await app.enqueue("billing.send_invoce", args={"anything": 1})
    row = await job_row(db, schema, job_id)
    assert (row["queue"], row["contract_version"]) == ("default", None)


def test_unknown_tasks_is_checked() -> None:
    from soniq import ConfigurationError

    with pytest.raises(ConfigurationError, match="unknown_tasks must be one of"):
        Soniq("postgresql://x@localhost/x", unknown_tasks="ignore")  # type: ignore[arg-type]
