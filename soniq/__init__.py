"""Soniq: background jobs for asyncio services, stored in the PostgreSQL they already run."""

from soniq.app import Soniq
from soniq.backoff import Backoff
from soniq.contracts import ContractsReport, VersionReport
from soniq.db.grants import RoleKind
from soniq.dead_letter import DeadLetterQueue
from soniq.errors import (
    ArgsNotJSONError,
    ArgsTooLargeError,
    ConfigurationError,
    DatabaseError,
    DatabaseUnavailableError,
    Discard,
    DuplicateJobError,
    EnqueueError,
    InvalidArgumentsError,
    InvalidNameError,
    JobControl,
    JobFailedError,
    JobNotFoundError,
    MigrationError,
    PermissionDeniedError,
    RegistrationError,
    ResultTimeoutError,
    Retry,
    SchemaNotReadyError,
    Snooze,
    SoniqError,
    UnknownTaskError,
)
from soniq.installed import UnknownTaskWarning
from soniq.job import Attempt, Job, JobContext, JobError, JobId, JobState
from soniq.queues import QueueSettings
from soniq.status import QueueStats, Status, VersionCount, WorkerRecord
from soniq.task_ref import TaskRef, task_ref

__version__ = "0.2.0"
# Generated contract packages check this to tell this runtime from another project that is
# also imported as `soniq` (PyPI's `soniq` distribution).
__distribution__ = "soniq-jobs"

__all__ = [
    "ArgsNotJSONError",
    "ArgsTooLargeError",
    "Attempt",
    "Backoff",
    "ConfigurationError",
    "ContractsReport",
    "DatabaseError",
    "DatabaseUnavailableError",
    "DeadLetterQueue",
    "Discard",
    "DuplicateJobError",
    "EnqueueError",
    "InvalidArgumentsError",
    "InvalidNameError",
    "Job",
    "JobContext",
    "JobControl",
    "JobError",
    "JobFailedError",
    "JobId",
    "JobNotFoundError",
    "JobState",
    "MigrationError",
    "PermissionDeniedError",
    "QueueSettings",
    "QueueStats",
    "RegistrationError",
    "ResultTimeoutError",
    "Retry",
    "RoleKind",
    "SchemaNotReadyError",
    "Snooze",
    "Soniq",
    "SoniqError",
    "Status",
    "TaskRef",
    "UnknownTaskError",
    "UnknownTaskWarning",
    "VersionCount",
    "VersionReport",
    "WorkerRecord",
    "task_ref",
]
