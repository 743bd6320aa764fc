"""The ``soniq`` command line: one module per command group, each a thin layer that parses
options and calls the app.

Exit codes: 0 success; 1 a Soniq error (printed as one line, never with a traceback or a
password); 2 a usage error; 130 interrupted before a worker was running.
"""

import click

from soniq.cli.console import console
from soniq.cli.contracts import contracts
from soniq.cli.dead_letter import dead_letter
from soniq.cli.enqueue import enqueue
from soniq.cli.jobs import cancel, jobs
from soniq.cli.queues import queues
from soniq.cli.setup import setup
from soniq.cli.status import status
from soniq.cli.worker import worker


@click.group()
@click.version_option(package_name="soniq-jobs")
def main() -> None:
    """Soniq: background jobs stored in PostgreSQL."""


for command in (
    setup,
    worker,
    enqueue,
    status,
    jobs,
    cancel,
    queues,
    dead_letter,
    contracts,
    console,
):
    main.add_command(command)

__all__ = ["main"]
