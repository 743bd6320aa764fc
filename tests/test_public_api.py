"""The public surface of the ``soniq`` package: what it exports, and the error hierarchy."""

from __future__ import annotations

import importlib
import inspect
import typing

import soniq
import soniq.errors

EXPECTED_ALL = [
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


def test_all_is_sorted_and_unique() -> None:
    assert soniq.__all__ == sorted(soniq.__all__)
    assert len(soniq.__all__) == len(set(soniq.__all__))


def test_all_equals_the_expected_public_names() -> None:
    assert soniq.__all__ == EXPECTED_ALL


def test_every_name_in_all_is_importable_from_the_package() -> None:
    module = importlib.import_module("soniq")
    for name in soniq.__all__:
        assert getattr(module, name, None) is not None, name
    namespace: dict[str, object] = {}
    exec("from soniq import *", namespace)
    assert set(soniq.__all__) <= set(namespace)


def test_every_exported_exception_derives_from_soniq_error() -> None:
    exported = [getattr(soniq, name) for name in soniq.__all__]
    errors = [
        obj
        for obj in exported
        if inspect.isclass(obj)
        and issubclass(obj, BaseException)
        and not issubclass(obj, Warning)  # warnings are filtered as UserWarning, not caught
    ]
    assert soniq.SoniqError in errors
    assert issubclass(soniq.UnknownTaskWarning, UserWarning)
    for error in errors:
        assert issubclass(error, soniq.SoniqError), error


def test_every_error_defined_in_soniq_errors_is_exported() -> None:
    defined = {
        name
        for name, obj in vars(soniq.errors).items()
        if inspect.isclass(obj)
        and issubclass(obj, BaseException)
        and obj.__module__ == "soniq.errors"
    }
    assert defined <= set(soniq.__all__)


def test_error_hierarchy_matches_the_documented_tree() -> None:
    parents = {
        soniq.ConfigurationError: soniq.SoniqError,
        soniq.DatabaseError: soniq.SoniqError,
        soniq.DatabaseUnavailableError: soniq.DatabaseError,
        soniq.SchemaNotReadyError: soniq.DatabaseError,
        soniq.PermissionDeniedError: soniq.DatabaseError,
        soniq.MigrationError: soniq.DatabaseError,
        soniq.RegistrationError: soniq.SoniqError,
        soniq.InvalidNameError: soniq.RegistrationError,
        soniq.EnqueueError: soniq.SoniqError,
        soniq.InvalidArgumentsError: soniq.EnqueueError,
        soniq.ArgsNotJSONError: soniq.EnqueueError,
        soniq.ArgsTooLargeError: soniq.EnqueueError,
        soniq.UnknownTaskError: soniq.EnqueueError,
        soniq.JobNotFoundError: soniq.SoniqError,
        soniq.JobFailedError: soniq.SoniqError,
        soniq.ResultTimeoutError: soniq.SoniqError,
    }
    for error, parent in parents.items():
        assert error.__bases__ == (parent,), error
    assert soniq.SoniqError.__bases__ == (Exception,)


def _soniq_types_in(annotation: object) -> set[type]:
    """The classes defined inside the soniq package that an annotation mentions."""
    found: set[type] = set()
    if inspect.isclass(annotation) and annotation.__module__.startswith("soniq"):
        found.add(annotation)
    for arg in typing.get_args(annotation):
        found |= _soniq_types_in(arg)
    return found


def test_every_type_a_public_method_returns_is_exported() -> None:
    returned: set[type] = set()
    for cls in (soniq.Soniq, soniq.DeadLetterQueue):
        for name, member in inspect.getmembers(cls, inspect.isfunction):
            if not name.startswith("_"):
                hints = typing.get_type_hints(member)
                returned |= _soniq_types_in(hints.get("return"))
    assert returned, "no soniq types found: the check itself is broken"
    exported = {getattr(soniq, name) for name in soniq.__all__}
    assert returned <= exported, sorted(t.__name__ for t in returned - exported)
