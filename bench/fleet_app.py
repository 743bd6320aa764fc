"""The app every host of ``python -m bench fleet`` runs (``soniq worker bench.fleet_app:app``):
the main benchmark's no-op task, with the same args model, so its drain rates compare with
``drain_c*``. Database and schema come from SONIQ_DATABASE_URL and SONIQ_SCHEMA."""

from __future__ import annotations

from typing import Any

from bench.probe import BenchArgs
from soniq import Soniq

TASK = "fleet.noop"

app = Soniq()


@app.job(name=TASK, validate=BenchArgs)
async def noop(**args: Any) -> None:
    """Does nothing: the drain measures claiming and recording, not handlers."""
