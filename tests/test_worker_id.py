"""Worker ids: ``host:pid:random`` with 64 random bits, so that workers sharing a host name
and a process id (containers, PID namespaces) still get distinct ids. The fleet test
(tests/faults/test_fleet.py) shows it with four real hosts whose workers all run as pid 1."""

from __future__ import annotations

import os
import re
import socket

from soniq.worker.worker import new_worker_id
from tests.fault_support import worker_pid_of


def test_worker_id_is_host_pid_and_64_random_bits() -> None:
    worker_id = new_worker_id()
    host, pid, random = worker_id.split(":")
    assert host == socket.gethostname()
    assert int(pid) == os.getpid() == worker_pid_of(worker_id)
    assert re.fullmatch(r"[0-9a-f]{16}", random)


def test_worker_ids_of_one_host_and_pid_do_not_repeat() -> None:
    # With the former 24 random bits, 100,000 ids would repeat about 300 times.
    ids = {new_worker_id() for _ in range(100_000)}
    assert len(ids) == 100_000
