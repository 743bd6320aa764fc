"""The job every pressure run enqueues and runs: the main benchmark's no-op task with its
pydantic args model, so the producer validates at enqueue and the workers at dispatch."""

from __future__ import annotations

from typing import Any

from bench.probe import BenchArgs
from soniq import Soniq

TASK = "pressure.noop"


def register(app: Soniq) -> Soniq:
    """``app`` with the no-op task registered (validated by :class:`BenchArgs`)."""

    @app.job(name=TASK, validate=BenchArgs)
    async def noop(**args: Any) -> None:
        """Does nothing: the run measures claiming, recording and the database."""

    return app
