"""A worker process for the RSS scenario: runs one system's worker until N jobs finished,
then prints one JSON line (jobs run, peak RSS from getrusage, seconds).

Usage: ``python -m bench.worker_process SYSTEM --database-url URL --jobs N ...``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import resource
import sys
import time

from bench.config import RSS
from bench.probe import PROBE
from bench.scenarios import all_finished
from bench.systems import Drain, load


async def _run(args: argparse.Namespace) -> dict[str, float]:
    adapter = load(args.system)
    if isinstance(adapter, str):
        raise SystemExit(f"{args.system}: {adapter}")
    system = adapter(args.database_url)
    await system.open(install=False)
    started = time.perf_counter()
    try:
        PROBE.arm(args.jobs, sleep=args.sleep)
        stop = await system.start_worker(
            args.variant, Drain(RSS, args.concurrency, f"c{args.concurrency}")
        )
        try:
            if not await PROBE.wait_while_progressing(15.0):
                raise SystemExit(f"{PROBE.count} of {args.jobs} jobs ran, then none for 15s")
            await all_finished(system, 30.0)
        finally:
            await stop()
    finally:
        await system.close()
    return {
        "ran": PROBE.count,
        "maxrss_bytes": peak_rss(),
        "seconds": time.perf_counter() - started,
    }


def peak_rss() -> int:
    """This process's peak resident memory in bytes.

    Linux's VmHWM, not getrusage: ru_maxrss survives exec, so a child would report its
    parent's size at fork time whenever that was larger.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, else KiB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.worker_process")
    parser.add_argument("system")
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--variant", required=True)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--jobs", type=int, required=True)
    parser.add_argument("--sleep", type=float, default=0.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    print(json.dumps(asyncio.run(_run(args))), flush=True)


if __name__ == "__main__":
    main()
