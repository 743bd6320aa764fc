"""Registered job handlers: how ``@app.job`` turns a function into a runnable task."""

from __future__ import annotations

import inspect
import types
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar, get_type_hints

from pydantic import BaseModel, ConfigDict, create_model

from soniq.backoff import Backoff, BackoffFunction, check_backoff
from soniq.checks import duration, whole_number
from soniq.errors import RegistrationError
from soniq.job import JobContext
from soniq.names import check_queue_name, check_task_name
from soniq.task_ref import TaskRef

Handler = Callable[..., Any]
F = TypeVar("F", bound=Handler)
Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
CallNext = Callable[[], Awaitable[Any]]
Middleware = Callable[[JobContext, CallNext], Awaitable[Any]]


@dataclass(frozen=True)
class JobSpec:
    """One registered task: its handler and everything the worker needs to run it."""

    name: str
    handler: Handler
    args_model: type[BaseModel]
    queue: str | None
    retries: int
    timeout: timedelta | None
    priority: int | None
    is_async: bool
    context_param: str | None
    ref: TaskRef[Any] | None
    result_model: type[BaseModel] | None = None
    backoff: Backoff | BackoffFunction | None = None  # None: the app's
    # No model and no named parameters, only ``**kwargs``: ``args_model`` would accept any
    # object unchanged, so the worker hands the parsed args over without it.
    raw_args: bool = False
    # The handler takes ``**kwargs``: keys an open args model keeps beyond its fields are
    # passed on; otherwise they stay in the stored job and the handler gets its fields only.
    takes_extra_keys: bool = False

    @property
    def max_attempts(self) -> int:
        return self.retries + 1

    @property
    def version(self) -> int | None:
        """The contract major version this handler runs (None when registered without one)."""
        return self.ref.version if self.ref is not None else None


def _is_context_annotation(annotation: Any) -> bool:
    if annotation is JobContext:
        return True
    # Unresolvable string annotation (e.g. JobContext imported under TYPE_CHECKING).
    return isinstance(annotation, str) and annotation.rsplit(".", 1)[-1] == "JobContext"


def _annotations(fn: Handler) -> dict[str, Any]:
    try:
        return get_type_hints(fn)
    except Exception:
        pass
    # One unresolvable annotation (e.g. JobContext imported under TYPE_CHECKING) must not
    # cost the other parameters their types: resolve each on its own, and keep the raw
    # string of those that fail (they become Any, or mark the JobContext parameter).
    globalns = getattr(inspect.unwrap(fn), "__globals__", None)
    hints: dict[str, Any] = {}
    for key, annotation in dict(getattr(fn, "__annotations__", {})).items():
        holder = types.SimpleNamespace(__annotations__={key: annotation})
        try:
            hints[key] = get_type_hints(holder, globalns=globalns)[key]
        except Exception:
            hints[key] = annotation
    return hints


def _model_from_signature(
    name: str, params: list[inspect.Parameter], hints: dict[str, Any], open_ended: bool
) -> type[BaseModel]:
    fields: dict[str, Any] = {}
    for param in params:
        annotation = hints.get(param.name, Any)
        if isinstance(annotation, str):
            annotation = Any
        default = ... if param.default is inspect.Parameter.empty else param.default
        fields[param.name] = (annotation, default)
    config = ConfigDict(extra="allow" if open_ended else "forbid")
    model_name = "".join(part.title() for part in name.replace(".", "_").split("_")) + "Args"
    model: type[BaseModel] = create_model(model_name, __config__=config, **fields)
    return model


def _parameters(
    name: str, handler: Handler, hints: dict[str, Any]
) -> tuple[list[inspect.Parameter], str | None, bool]:
    """The handler's value parameters, the name of its JobContext parameter (if any), and
    whether it takes ``**kwargs``."""
    context_param = None
    value_params: list[inspect.Parameter] = []
    open_ended = False
    for param in inspect.signature(handler).parameters.values():
        annotation = hints.get(param.name, param.annotation)
        if param.kind is inspect.Parameter.VAR_KEYWORD:
            open_ended = True
        elif param.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.VAR_POSITIONAL):
            raise RegistrationError(
                f"job {name!r}: handler parameter {param.name!r} is positional-only or *args; "
                "handlers receive their arguments by keyword"
            )
        elif _is_context_annotation(annotation):
            context_param = param.name
        else:
            value_params.append(param)
    return value_params, context_param, open_ended


def _check_model_fits(
    name: str,
    handler: Handler,
    model: type[BaseModel],
    value_params: list[inspect.Parameter],
    open_ended: bool,
) -> None:
    """Every field of ``model`` reaches a parameter, and every parameter without a default
    is a field."""
    fields = set(model.model_fields)
    missing = sorted(fields - {p.name for p in value_params})
    if missing and not open_ended:
        raise RegistrationError(
            f"job {name!r}: handler {handler.__name__}() has no parameter for model "
            f"field(s) {', '.join(missing)} of {model.__name__}; add them or **kwargs"
        )
    unfilled = sorted(p.name for p in value_params if p.name not in fields and p.default is p.empty)
    if unfilled:
        raise RegistrationError(
            f"job {name!r}: handler parameter(s) {', '.join(unfilled)} are not fields of "
            f"{model.__name__}; give them defaults or add them to the model"
        )


def build_spec(
    handler: Handler,
    *,
    name: str,
    validate: type[BaseModel] | None,
    queue: str | None,
    retries: int,
    timeout: timedelta | float | None,
    priority: int | None,
    ref: TaskRef[Any] | None,
    result_model: type[BaseModel] | None = None,
    backoff: object = None,
) -> JobSpec:
    """Check a handler against its name, model and options, and describe it as a JobSpec."""
    check_task_name(name)
    if queue is not None:
        check_queue_name(queue)
    if not callable(handler):
        raise RegistrationError(f"@app.job({name!r}) must decorate a function")
    if result_model is not None and not (
        isinstance(result_model, type) and issubclass(result_model, BaseModel)
    ):
        raise RegistrationError(f"job {name!r}: result= must be a pydantic model class")
    whole_number(retries, f"job {name!r}: retries", minimum=0, error=RegistrationError)
    if timeout is not None:
        timeout = duration(timeout, f"job {name!r}: timeout", seconds=True, error=RegistrationError)
    if priority is not None:
        whole_number(priority, f"job {name!r}: priority", error=RegistrationError)
    task_backoff = check_backoff(backoff, f"job {name!r}")
    if validate is not None and not (
        isinstance(validate, type) and issubclass(validate, BaseModel)
    ):
        raise RegistrationError(
            f"job {name!r}: validate= must be a pydantic BaseModel subclass, got {validate!r}"
        )

    hints = _annotations(handler)
    value_params, context_param, open_ended = _parameters(name, handler, hints)
    if validate is None:
        args_model = _model_from_signature(name, value_params, hints, open_ended)
    else:
        _check_model_fits(name, handler, validate, value_params, open_ended)
        args_model = validate

    return JobSpec(
        name=name,
        handler=handler,
        args_model=args_model,
        queue=queue,
        retries=retries,
        timeout=timeout,
        priority=priority,
        is_async=inspect.iscoroutinefunction(handler),
        context_param=context_param,
        ref=ref,
        result_model=result_model,
        backoff=task_backoff,
        raw_args=validate is None and open_ended and not value_params,
        takes_extra_keys=open_ended,
    )


# Where a job goes when neither the call, its contract nor its handler names a queue.
DEFAULT_QUEUE = "default"


class Registry:
    """The tasks this app can run, by name and by handler function."""

    def __init__(self) -> None:
        self._by_name: dict[str, JobSpec] = {}
        self._by_handler: dict[Handler, JobSpec] = {}
        self._upcasters: dict[str, dict[int, Upcaster]] = {}
        self.middleware: list[Middleware] = []

    def add(self, spec: JobSpec) -> None:
        existing = self._by_name.get(spec.name)
        if existing is not None and existing.handler is not spec.handler:
            raise RegistrationError(
                f"task {spec.name!r} is already registered to {existing.handler.__qualname__}(); "
                "each task name has exactly one handler per app"
            )
        self._by_name[spec.name] = spec
        self._by_handler[spec.handler] = spec

    def get(self, name: str) -> JobSpec | None:
        return self._by_name.get(name)

    def for_handler(self, handler: Handler) -> JobSpec | None:
        return self._by_handler.get(handler)

    def names(self) -> list[str]:
        return sorted(self._by_name)

    def unserved(self, queues: Sequence[str]) -> dict[str, list[str]]:
        """The tasks whose jobs go, when enqueued without ``queue=``, to a queue not in
        ``queues`` (the contract's default queue, else the handler's, else ``default``),
        by queue."""
        outside: dict[str, list[str]] = {}
        for name, spec in sorted(self._by_name.items()):
            queue = (spec.ref.default_queue if spec.ref is not None else None) or spec.queue
            queue = queue or DEFAULT_QUEUE
            if queue not in queues:
                outside.setdefault(queue, []).append(name)
        return outside

    def max_attempts_by_task(self) -> dict[str, int]:
        return {name: spec.max_attempts for name, spec in self._by_name.items()}

    def refs(self) -> list[TaskRef[Any]]:
        """The task references handlers were registered from."""
        return [spec.ref for spec in self._by_name.values() if spec.ref is not None]

    def versions_by_task(self) -> dict[str, int]:
        """The contract version each versioned task runs: newer jobs are left for others."""
        return {
            name: spec.version for name, spec in self._by_name.items() if spec.version is not None
        }

    def job_decorator(
        self,
        ref: TaskRef[Any] | None,
        *,
        name: str | None,
        validate: type[BaseModel] | None,
        queue: str | None,
        retries: int,
        timeout: timedelta | float | None,
        priority: int | None,
        result: type[BaseModel] | None,
        backoff: Backoff | BackoffFunction | None = None,
    ) -> Callable[[F], F]:
        """What ``@app.job(...)`` returns: a decorator registering its function (see
        :meth:`soniq.Soniq.job`); name, model and queue come from ``ref`` when given."""
        if ref is not None:
            if not isinstance(ref, TaskRef):
                raise RegistrationError(
                    "@app.job() takes a TaskRef positionally or name=...; "
                    f"got {ref!r} (did you mean @app.job(name={ref!r})?)"
                )
            if name is not None and name != ref.name:
                raise RegistrationError(f"@app.job({ref.name!r}) got a different name={name!r}")
            name = ref.name
            validate = validate or ref.args_model
            queue = queue or ref.default_queue
        if name is None:
            raise RegistrationError("@app.job needs a task name: @app.job(name='billing.send')")
        task_name = name

        def register(handler: F) -> F:
            self.add(
                build_spec(
                    handler,
                    name=task_name,
                    validate=validate,
                    queue=queue,
                    retries=retries,
                    timeout=timeout,
                    priority=priority,
                    ref=ref,
                    result_model=result,
                    backoff=backoff,
                )
            )
            return handler

        return register

    def upcaster_decorator(
        self, ref: TaskRef[Any], from_version: int
    ) -> Callable[[Upcaster], Upcaster]:
        """What ``@app.upcaster(...)`` returns (see :meth:`soniq.Soniq.upcaster`)."""
        if not isinstance(ref, TaskRef) or ref.version is None:
            raise RegistrationError(
                "@app.upcaster() needs a versioned TaskRef (from a generated contract package "
                "or task_ref(..., version=N))"
            )
        whole_number(
            from_version,
            f"@app.upcaster({ref.name!r}) of a version {ref.version} ref: from_version",
            minimum=1,
            maximum=ref.version - 1,
            error=RegistrationError,
        )

        def register(upcaster: Upcaster) -> Upcaster:
            if not callable(upcaster):
                raise RegistrationError(f"@app.upcaster({ref.name!r}) must decorate a function")
            self.add_upcaster(ref.name, from_version, upcaster)
            return upcaster

        return register

    def add_middleware(self, middleware: Middleware) -> Middleware:
        if not callable(middleware):
            raise RegistrationError("@app.middleware must decorate an async function")
        self.middleware.append(middleware)
        return middleware

    def add_upcaster(self, name: str, from_version: int, upcaster: Upcaster) -> None:
        chain = self._upcasters.setdefault(name, {})
        if from_version in chain and chain[from_version] is not upcaster:
            raise RegistrationError(
                f"task {name!r} already has an upcaster from version {from_version}"
            )
        chain[from_version] = upcaster

    def upcasters(self, name: str) -> dict[int, Upcaster]:
        """Upcasters of one task by the version they read (each returns version + 1 args)."""
        return self._upcasters.get(name, {})
