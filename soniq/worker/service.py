"""The one lifecycle every service beside a worker's claim loop follows."""

from __future__ import annotations

import asyncio


class Service:
    """A loop that runs beside the claim loop: :meth:`start` launches :meth:`run` as a task,
    :meth:`stop` asks it to end, :meth:`wait` returns once it has ended."""

    _task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        """The loop; runs until cancelled (or, for some services, until asked to stop)."""
        raise NotImplementedError

    def start(self) -> None:
        self._task = asyncio.ensure_future(self.run())

    def stop(self) -> None:
        """Ask the loop to end: by default it is cancelled at once."""
        if self._task is not None:
            self._task.cancel()

    async def wait(self, timeout: float | None = None) -> None:
        """Wait for the loop to end; after ``timeout`` seconds it is cancelled."""
        task = self._task
        if task is None:
            return
        await asyncio.wait({task}, timeout=timeout)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
