"""Soniq: background jobs for asyncio services, stored in the PostgreSQL they already run."""

from soniq.errors import (
    ArgsNotJSONError,
    ArgsTooLargeError,
    ConfigurationError,
    DatabaseError,
    DatabaseUnavailableError,
    EnqueueError,
    InvalidArgumentsError,
    InvalidNameError,
    JobNotFoundError,
    MigrationError,
    RegistrationError,
    SchemaNotReadyError,
    SoniqError,
    UnknownTaskError,
)
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
    "JobNotFoundError",
    "MigrationError",
    "RegistrationError",
    "SchemaNotReadyError",
    "SoniqError",
    "TaskRef",
    "UnknownTaskError",
    "task_ref",
]
