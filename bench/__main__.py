"""``python -m bench``: Soniq and its peers through the same scenarios; one table, one JSON."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from bench.config import DEFAULT_SYSTEMS, default_database_url, sizes_for
from bench.runner import RunConfig, run


def parse_args(argv: list[str] | None = None) -> RunConfig:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark Soniq against pgqueuer and procrastinate (when installed).",
    )
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one repeat (CI)")
    parser.add_argument(
        "--systems",
        default=",".join(DEFAULT_SYSTEMS),
        help="comma-separated systems to run (default: %(default)s)",
    )
    parser.add_argument("--repeats", type=int, default=None, help="repeats (default 3; smoke 1)")
    parser.add_argument(
        "--sample-waits",
        action="store_true",
        help="diagnostics: during drains, sample what the database backends wait on every "
        "10 ms (costs the systems a little; the JSON's measurements get 'waits')",
    )
    parser.add_argument(
        "--json", type=Path, default=Path("bench-results.json"), help="where to write results"
    )
    parser.add_argument(
        "--database-url",
        default=default_database_url(),
        help="server to create scratch databases on (default: SONIQ_DATABASE_URL or the "
        "local server); needs CREATEDB",
    )
    args = parser.parse_args(argv)
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    if not systems:
        parser.error("--systems names no system")
    if args.repeats is not None and args.repeats < 1:
        parser.error("--repeats must be at least 1")
    return RunConfig(
        database_url=args.database_url,
        systems=systems,
        sizes=sizes_for(args.smoke, args.repeats, sample_waits=args.sample_waits),
        smoke=args.smoke,
        json_path=args.json,
    )


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["fleet"]:  # `python -m bench fleet --help`: worker hosts, bench/fleet.py
        from bench.fleet import main as fleet_main

        return fleet_main(args[1:])
    if args[:1] == ["growth"]:  # `python -m bench growth --help`: bench/growth.py
        from bench.growth import main as growth_main

        return growth_main(args[1:])
    if args[:1] == ["pressure"]:  # `python -m bench pressure --help`: bench/pressure/
        from bench.pressure.cli import main as pressure_main

        return pressure_main(args[1:])
    if args[:1] == ["console"]:  # `python -m bench console`: page timings, bench/console.py
        from bench.console import main as console_main

        return console_main(args[1:])
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    config = parse_args(argv)
    try:
        return asyncio.run(run(config))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted; scratch databases dropped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
