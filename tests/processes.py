"""Starting and stopping real worker processes (``python -m soniq worker``) in tests."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path


class WorkerProcess:
    """A ``soniq worker`` child process whose output goes to a log file."""

    def __init__(
        self,
        python: str,
        app_path: str,
        env: dict[str, str],
        log: Path,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.log = log
        self._log_file = log.open("wb")
        self.process = subprocess.Popen(
            [python, "-m", "soniq", "worker", app_path, *extra_args],
            env=env,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def signal(self, sig: signal.Signals) -> None:
        self.process.send_signal(sig)

    def wait(self, timeout: float = 30) -> int:
        try:
            return self.process.wait(timeout=timeout)
        finally:
            self._log_file.close()

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.wait()


def stop_all(workers: Sequence[WorkerProcess], sig: signal.Signals = signal.SIGTERM) -> list[int]:
    """Signal every worker, then wait for each; returns their exit codes."""
    for worker in workers:
        if worker.process.poll() is None:
            worker.signal(sig)
    return [worker.wait() for worker in workers]
