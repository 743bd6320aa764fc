"""Task contracts installed as packages: a generated contract package names its task module
in the ``soniq.contracts`` entry point group, and an app reads them all the first time a
bare task name needs them, so enqueue by name validates like enqueue by reference."""

from __future__ import annotations

import difflib
import logging
from importlib.metadata import entry_points
from typing import Any, Literal

from soniq.task_ref import TaskRef

GROUP = "soniq.contracts"
UnknownTasks = Literal["allow", "warn", "refuse"]
UNKNOWN_TASKS: tuple[UnknownTasks, ...] = ("allow", "warn", "refuse")

logger = logging.getLogger("soniq")


class UnknownTaskWarning(UserWarning):
    """A job was enqueued by a task name that no installed contract package and no handler
    of the app knows (``Soniq(unknown_tasks="warn")``, the default)."""


def _load() -> dict[str, TaskRef[Any]]:
    """Every TaskRef in the modules the ``soniq.contracts`` entry points name; of two refs
    of one task (two packages ship it), the higher contract version."""
    refs: dict[str, TaskRef[Any]] = {}
    for entry in entry_points(group=GROUP):
        try:
            module = entry.load()
        except Exception as exc:  # one broken package must not hide the others
            logger.warning("cannot load the task contracts of %r: %s", entry.value, exc)
            continue
        for value in vars(module).values():
            if isinstance(value, TaskRef):
                known = refs.get(value.name)
                if known is None or (value.version or 0) > (known.version or 0):
                    refs[value.name] = value
    return refs


class InstalledContracts:
    """The task refs of the installed contract packages, read on first use."""

    def __init__(self) -> None:
        self._refs: dict[str, TaskRef[Any]] | None = None

    def refs(self) -> dict[str, TaskRef[Any]]:
        if self._refs is None:
            self._refs = _load()
        return self._refs

    def get(self, name: str) -> TaskRef[Any] | None:
        return self.refs().get(name)

    def unknown(self, name: str, registered: list[str]) -> str:
        """Why ``name`` is unknown, with the closest known name when there is one."""
        close = difflib.get_close_matches(name, sorted({*self.refs(), *registered}), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"task {name!r} is in no installed contract package and has no handler here{hint}"
