"""Soniq: background jobs for asyncio services, stored in the PostgreSQL they already run."""

from soniq.app import Soniq
from soniq.errors import (
    ArgsNotJSONError,
    ArgsTooLargeError,
    ConfigurationError,
    DatabaseError,
    DatabaseUnavailableError,
    EnqueueError,
    InvalidArgumentsError,
    InvalidNameError,
    JobFailedError,
    JobNotFoundError,
    MigrationError,
    RegistrationError,
    ResultTimeoutError,
    SchemaNotReadyError,
    SoniqError,
    UnknownTaskError,
)
from soniq.job import Job, JobContext, JobError, JobState
from soniq.task_ref import TaskRef, task_ref

__all__ = [
    "ArgsNotJSONError",
    "ArgsTooLargeError",
    "ConfigurationError",
    "DatabaseError",
    "DatabaseUnavailableError",
    "EnqueueError",
    "InvalidArgumentsError",
    "InvalidNameError",
    "Job",
    "JobContext",
    "JobError",
    "JobFailedError",
    "JobNotFoundError",
    "JobState",
    "MigrationError",
    "RegistrationError",
    "ResultTimeoutError",
    "SchemaNotReadyError",
    "Soniq",
    "SoniqError",
    "TaskRef",
    "UnknownTaskError",
    "task_ref",
]
