"""The threads blocking (``def``) handlers run on."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


class Contained(Exception):
    """Carries a handler's ``BaseException`` that is not an ``Exception`` (``SystemExit``,
    ``KeyboardInterrupt``, ``GeneratorExit``, a custom one) to where its attempt is
    recorded as failed. Raised as themselves, ``KeyboardInterrupt`` and ``SystemExit`` from
    a task end the event loop, and a ``GeneratorExit`` from a thread's future escapes the
    coroutine that catches it (CPython 3.11)."""

    def __init__(self, raised: BaseException) -> None:
        super().__init__(repr(raised))
        self.raised = raised


class HandlerThreads(Executor):
    """Runs each call of a blocking (sync) handler on a daemon thread of its own.

    A thread cannot be interrupted: a sync handler whose attempt was cancelled (timeout,
    shutdown) keeps running until it returns. On a daemon thread of its own it neither
    holds a slot that the next job would queue behind (with that job's timeout already
    running), nor keeps a stopped worker process alive: pool threads are joined at
    interpreter exit, which would ignore the shutdown timeout and a second signal. An
    abandoned handler ends with the process; its job was released and runs again.
    """

    def __init__(self, name_prefix: str) -> None:
        self._name_prefix = name_prefix
        self._numbers = itertools.count(1)

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        future: Future[T] = Future()

        def call() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                result = fn(*args, **kwargs)
            except Exception as exc:
                future.set_exception(exc)
            except BaseException as exc:
                future.set_exception(Contained(exc))
            else:
                future.set_result(result)

        name = f"{self._name_prefix}-{next(self._numbers)}"
        threading.Thread(target=call, name=name, daemon=True).start()
        return future
