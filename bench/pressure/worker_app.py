"""The app each worker process of ``python -m bench pressure`` runs
(``soniq worker bench.pressure.worker_app:app``); database and schema come from
SONIQ_DATABASE_URL and SONIQ_SCHEMA."""

from __future__ import annotations

from bench.pressure.task import register
from soniq import Soniq

app = register(Soniq())
