"""Every statement on the job tables, reachable from one :class:`JobStore`.

The tables (migration 0009) hold a job in the table of its state: ``job_live``,
``job_scheduled``, ``job_dead`` and ``job_history``; :mod:`.moves` has the fragments that
move a row from one to the next.

The statements are grouped by who runs them, each written beside the method that runs it:

- ``writes`` (:mod:`.writes`): producers and the periodic scheduler insert jobs;
- ``claims`` (:mod:`.claims`): workers lock due jobs and promote scheduled ones;
- ``steering`` (:mod:`.steered`): workers claim from queues with limits;
- ``outcomes`` (:mod:`.outcomes`): workers record finished attempts or release jobs;
- ``maintenance`` (:mod:`.maintenance`): heartbeats, the rescuer, retention, recycling
  the live ring;
- ``reads`` (:mod:`.reads`): single jobs, lists and reports;
- ``actions`` (:mod:`.actions`): cancel, replay and purge;
- ``browse`` (:mod:`.browse`): what the web console's pages read.

Every state change is ONE statement whose WHERE clause checks its precondition: outcomes,
heartbeats and releases apply only while the writer's ``claim_token`` still owns a running
job, which is how a worker that lost its lease is fenced out instead of overwriting the
result of the worker that took the job over.
"""

from __future__ import annotations

from soniq.db.jobs.actions import JobActions
from soniq.db.jobs.browse import JobBrowse
from soniq.db.jobs.claims import JobClaims
from soniq.db.jobs.maintenance import JobMaintenance
from soniq.db.jobs.outcomes import JobOutcomes
from soniq.db.jobs.reads import JobReads
from soniq.db.jobs.steered import JobSteering
from soniq.db.jobs.writes import JobWrites


class JobStore:
    """The statements on the job tables of ``schema`` (the schema is a checked identifier), and the
    channels they notify."""

    def __init__(self, schema: str) -> None:
        self.schema = schema
        # Payload: the queue of a job that became claimable.
        self.channel = f"{schema}.jobs"
        # Payload: the id of a job that just finished (done, dead or cancelled), or '' for
        # a batch of successes.
        self.results_channel = f"{schema}.results"
        # Payload: the id of a running job that app.cancel() asked to stop.
        self.cancel_channel = f"{schema}.cancel"
        self.writes = JobWrites(schema)
        self.claims = JobClaims(schema)
        self.steering = JobSteering(schema)
        self.outcomes = JobOutcomes(schema)
        self.maintenance = JobMaintenance(schema)
        self.reads = JobReads(schema)
        self.actions = JobActions(schema)
        self.browse = JobBrowse(schema)


__all__ = ["JobStore"]
