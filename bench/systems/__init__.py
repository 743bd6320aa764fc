"""System adapters, imported lazily so a missing peer package only skips that system."""

from __future__ import annotations

import importlib
import importlib.util

from bench.systems.base import Drain, StartWorker, StopWorker, System, Variant

__all__ = ["Drain", "StartWorker", "StopWorker", "System", "Variant", "load"]

# system name -> (adapter module, adapter class, the Python package it needs, if any)
_ADAPTERS = {
    "soniq": ("bench.systems.soniq", "SoniqSystem", "soniq"),
    "pgqueuer": ("bench.systems.pgqueuer", "PgqueuerSystem", "pgqueuer"),
    "procrastinate": ("bench.systems.procrastinate", "ProcrastinateSystem", "procrastinate"),
    "graphile": ("bench.systems.graphile", "GraphileSystem", None),
}


def known() -> list[str]:
    return list(_ADAPTERS)


def load(name: str) -> type[System] | str:
    """The adapter class for ``name``, or the reason it cannot run here."""
    if name not in _ADAPTERS:
        return f"unknown system (known: {', '.join(_ADAPTERS)})"
    module_name, class_name, package = _ADAPTERS[name]
    if package is not None and importlib.util.find_spec(package) is None:
        return f"not installed (pip install '.[bench]' installs {package})"
    module = importlib.import_module(module_name)
    adapter: type[System] = getattr(module, class_name)
    return adapter.unavailable() or adapter
