"""Decorators and the registry of workflows, steps and queues, filled at import time."""

from __future__ import annotations

import functools
import hashlib
import inspect
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from . import validation
from .errors import ConfigurationError, DurableError

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(slots=True)
class WorkflowDef:
    name: str
    fn: Callable[..., Any]
    is_async: bool
    max_recovery_attempts: int | None
    schedule: str | None = None
    schedule_iter: Any = None


@dataclass(slots=True)
class StepDef:
    name: str
    fn: Callable[..., Any]
    is_async: bool
    kind: str = "step"  # "step" or "transaction"
    retries: int = 0
    retry_delay: float = 1.0
    backoff: float = 2.0
    max_delay: float = 60.0
    isolation: str | None = None


@dataclass
class Registry:
    workflows: dict[str, WorkflowDef] = field(default_factory=dict)
    queues: dict[str, Any] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add_workflow(self, defn: WorkflowDef) -> None:
        with self.lock:
            existing = self.workflows.get(defn.name)
            if existing is not None and _source_id(existing.fn) != _source_id(defn.fn):
                raise ConfigurationError(
                    f"Two different functions are registered as workflow {defn.name!r}; "
                    "give one of them another name with @workflow(name=...)."
                )
            self.workflows[defn.name] = defn

    def get(self, name: str) -> WorkflowDef | None:
        return self.workflows.get(name)

    def version_digest(self) -> str:
        """A stable digest of the registered workflows' source, the same in every process."""
        digest = hashlib.sha256()
        for name in sorted(self.workflows):
            digest.update(name.encode())
            try:
                digest.update(inspect.getsource(self.workflows[name].fn).encode())
            except (OSError, TypeError):
                digest.update(b"<no source>")
        return digest.hexdigest()[:16]


def _source_id(fn: Callable) -> tuple:
    code = getattr(fn, "__code__", None)
    return (
        getattr(fn, "__module__", None),
        getattr(fn, "__qualname__", None),
        getattr(code, "co_firstlineno", None),
    )


REGISTRY = Registry()


def _default_name(fn: Callable) -> str:
    return f"{fn.__module__}.{fn.__qualname__}"


def _bare_or_called(decorate: Callable[..., Callable[[F], F]], fn: Any, kwargs: dict) -> Any:
    if fn is not None and callable(fn):
        return decorate(**kwargs)(fn)
    if fn is not None:
        raise TypeError("decorator arguments must be given by keyword")
    return decorate(**kwargs)


def workflow(
    fn: F | None = None, *, name: str | None = None, max_recovery_attempts: int | None = 50
) -> Any:
    """Declare a durable workflow: inputs, each step's outcome and the result are checkpointed.

    Called directly, it runs durably in the caller under a new ID and returns its result;
    called inside another workflow, it runs as a child workflow.
    """

    def decorate(*, name: str | None, max_recovery_attempts: int | None) -> Callable[[F], F]:
        def wrap(func: F) -> F:
            if getattr(func, "__durable_step__", None) is not None:
                raise ConfigurationError(
                    f"{_default_name(func)} is already a step; it cannot also be a workflow"
                )
            validation.max_recovery_attempts(max_recovery_attempts)
            defn = WorkflowDef(
                name=validation.name(name or _default_name(func), "workflow name"),
                fn=func,
                is_async=inspect.iscoroutinefunction(func),
                max_recovery_attempts=max_recovery_attempts,
            )
            REGISTRY.add_workflow(defn)
            from . import execution

            if defn.is_async:

                @functools.wraps(func)
                async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                    return await execution.call_workflow_async(defn, args, kwargs)

                wrapper: Any = async_wrapper
            else:

                @functools.wraps(func)
                def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
                    return execution.call_workflow(defn, args, kwargs)

                wrapper = sync_wrapper
            wrapper.__durable_workflow__ = defn
            return wrapper

        return wrap

    return _bare_or_called(
        decorate, fn, {"name": name, "max_recovery_attempts": max_recovery_attempts}
    )


def _make_step(defn: StepDef, func: Callable) -> Callable:
    from . import execution

    if defn.is_async:
        # A plain function returning the coroutine: the step ID is taken when the step is
        # called, not when it is awaited, so asyncio.gather of steps replays deterministically.
        @functools.wraps(func)
        def async_step(*args: Any, **kwargs: Any) -> Any:
            return execution.call_step_async(defn, args, kwargs)

        wrapper: Any = async_step
    else:

        @functools.wraps(func)
        def sync_step(*args: Any, **kwargs: Any) -> Any:
            return execution.call_step(defn, args, kwargs)

        wrapper = sync_step
    wrapper.__durable_step__ = defn
    return wrapper


def step(
    fn: F | None = None,
    *,
    name: str | None = None,
    retries: int = 0,
    retry_delay: float = 1.0,
    backoff: float = 2.0,
    max_delay: float = 60.0,
) -> Any:
    """Declare a step: its outcome is checkpointed once it finishes and replayed, not re-run.

    ``retries`` retries after the first failure with exponential backoff; when all fail,
    ``StepRetriesExceeded`` (carrying the last error) is raised into the workflow.
    Outside a workflow a step is a plain call.
    """

    def decorate(*, name, retries, retry_delay, backoff, max_delay) -> Callable[[F], F]:
        if retries < 0 or retry_delay < 0 or backoff < 1 or max_delay < 0:
            raise ConfigurationError(
                "step retries and retry_delay must be >= 0, backoff >= 1 and max_delay >= 0"
            )

        def wrap(func: F) -> F:
            defn = StepDef(
                name=name or _default_name(func),
                fn=func,
                is_async=inspect.iscoroutinefunction(func),
                retries=retries,
                retry_delay=retry_delay,
                backoff=backoff,
                max_delay=max_delay,
            )
            return cast(F, _make_step(defn, func))

        return wrap

    return _bare_or_called(
        decorate,
        fn,
        {
            "name": name,
            "retries": retries,
            "retry_delay": retry_delay,
            "backoff": backoff,
            "max_delay": max_delay,
        },
    )


def transaction(
    fn: F | None = None, *, name: str | None = None, isolation: str | None = None
) -> Any:
    """Declare a step that runs in one transaction on the application database and writes its
    checkpoint in that same transaction, so its database effects happen exactly once."""

    def decorate(*, name, isolation) -> Callable[[F], F]:
        def wrap(func: F) -> F:
            defn = StepDef(
                name=name or _default_name(func),
                fn=func,
                is_async=inspect.iscoroutinefunction(func),
                kind="transaction",
                isolation=isolation,
            )
            return cast(F, _make_step(defn, func))

        return wrap

    return _bare_or_called(decorate, fn, {"name": name, "isolation": isolation})


def scheduled(cron: str) -> Callable[[F], F]:
    """Start the workflow below once per cron tick (UTC), exactly once across all workers.

    The workflow receives ``(scheduled_at, started_at)``. Place it above ``@workflow``.
    """
    from croniter import croniter

    def wrap(func: F) -> F:
        defn: WorkflowDef | None = getattr(func, "__durable_workflow__", None)
        if defn is None:
            raise ConfigurationError(
                f"@scheduled must be placed above @workflow (on {_default_name(func)})"
            )
        if (
            not isinstance(cron, str)
            or not croniter.is_valid(cron)
            or len(cron.split()) not in (5, 6)
        ):
            raise ConfigurationError(
                f"invalid cron expression {cron!r} for scheduled workflow {defn.name!r}"
            )
        defn.schedule = cron
        return func

    return wrap


def resolve_workflow(fn_or_name: Any) -> WorkflowDef:
    if isinstance(fn_or_name, str):
        defn = REGISTRY.get(fn_or_name)
        if defn is None:
            raise DurableError(f"No workflow named {fn_or_name!r} is registered in this process.")
        return defn
    defn = getattr(fn_or_name, "__durable_workflow__", None)
    if defn is None:
        raise DurableError(
            f"{getattr(fn_or_name, '__qualname__', fn_or_name)!r} is not a workflow; decorate it with @workflow."
        )
    return defn
