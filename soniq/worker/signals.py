"""SIGTERM and SIGINT for a running worker."""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Callable

logger = logging.getLogger("soniq")


def handle_signals(stop: Callable[[], None], hard_stop: Callable[[], None]) -> Callable[[], None]:
    """First SIGTERM/SIGINT: ``stop`` (graceful); second: ``hard_stop`` (cancel running jobs
    now). Installed only in the main thread and only when SIGTERM has no handler yet (a web
    server running the worker in its lifespan keeps its own), so it never steals another
    framework's signals. Returns the function that restores the previous handlers."""
    if threading.current_thread() is not threading.main_thread() or (
        signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
    ):
        return lambda: None
    loop = asyncio.get_running_loop()
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    received = 0

    def on_signal(sig: signal.Signals) -> None:
        nonlocal received
        received += 1
        if received == 1:
            logger.info("%s received: finishing running jobs (send again to stop now)", sig.name)
            stop()
        else:
            logger.info("%s received again: releasing running jobs now", sig.name)
            hard_stop()

    for sig in previous:
        loop.add_signal_handler(sig, on_signal, sig)

    def restore() -> None:
        for sig, handler in previous.items():
            loop.remove_signal_handler(sig)
            signal.signal(sig, handler)

    return restore
