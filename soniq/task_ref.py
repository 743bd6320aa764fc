"""Task references: the typed handle a producer and a consumer share for one task."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from pydantic import BaseModel

from soniq.checks import whole_number
from soniq.errors import RegistrationError
from soniq.names import check_queue_name, check_task_name

ArgsT = TypeVar("ArgsT", bound=BaseModel)


@dataclass(frozen=True)
class TaskRef(Generic[ArgsT]):
    """An immutable reference to a task: its canonical name, args model and default queue.

    ``version`` is the contract's major version and ``fingerprint`` the sha256 of its canonical
    args schema; both are stamped on every job enqueued through the ref. Create refs with
    :func:`task_ref` (generated stub packages do this for you).
    """

    name: str
    args_model: type[ArgsT]
    default_queue: str | None = None
    version: int | None = None
    fingerprint: str | None = None


def task_ref(
    *,
    name: str,
    args_model: type[ArgsT],
    default_queue: str | None = None,
    version: int | None = None,
    fingerprint: str | None = None,
) -> TaskRef[ArgsT]:
    """Create a :class:`TaskRef`, checking the name, queue, model and version.

    >>> from pydantic import BaseModel
    >>> class SendInvoiceArgs(BaseModel):
    ...     order_id: str
    >>> ref = task_ref(name="billing.send_invoice", args_model=SendInvoiceArgs,
    ...                default_queue="billing")
    >>> ref.name, ref.default_queue
    ('billing.send_invoice', 'billing')
    """
    check_task_name(name)
    if default_queue is not None:
        check_queue_name(default_queue)
    if not (isinstance(args_model, type) and issubclass(args_model, BaseModel)):
        raise RegistrationError(
            f"task_ref({name!r}): args_model must be a pydantic BaseModel subclass, "
            f"got {args_model!r}"
        )
    if version is not None:
        whole_number(version, f"task_ref({name!r}): version", minimum=1, error=RegistrationError)
    return TaskRef(
        name=name,
        args_model=args_model,
        default_queue=default_queue,
        version=version,
        fingerprint=fingerprint,
    )
