"""The decorators: ``@workflow``, ``@step``, ``@transaction`` and ``@scheduled``.

They work at import time, before any engine exists: each records a definition in the registry
and wraps the function so that a call runs durably (``execution.py``).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar, cast, overload

from croniter import croniter

from . import execution, validation
from . import retries as retries_mod
from .errors import ConfigurationError
from .registry import REGISTRY, StepDef, Workflow, WorkflowDef, default_name

F = TypeVar("F", bound=Callable[..., Any])
P = ParamSpec("P")
R = TypeVar("R")
W = TypeVar("W", bound=Workflow[..., Any])


def _bare_or_called(
    decorate: Callable[..., Callable[[F], F]], fn: Any, kwargs: dict[str, Any]
) -> Any:
    if fn is not None and callable(fn):
        return decorate(**kwargs)(fn)
    if fn is not None:
        raise TypeError("decorator arguments must be given by keyword")
    return decorate(**kwargs)


@overload
def workflow(fn: Callable[P, R], /) -> Workflow[P, R]: ...


@overload
def workflow(
    fn: None = None, /, *, name: str | None = None, max_recovery_attempts: int | None = 50
) -> Callable[[Callable[P, R]], Workflow[P, R]]: ...


def workflow(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    max_recovery_attempts: int | None = 50,
) -> Any:
    """Declare a durable workflow: inputs, each step's outcome and the result are checkpointed.

    Called directly, it runs durably in the caller under a new ID and returns its result;
    called inside another workflow, it runs as a child workflow.
    """

    def decorate(*, name: str | None, max_recovery_attempts: int | None) -> Callable[[F], F]:
        def wrap(func: F) -> F:
            if getattr(func, "__durable_step__", None) is not None:
                raise ConfigurationError(
                    f"{default_name(func)} is already a step; it cannot also be a workflow"
                )
            validation.max_recovery_attempts(max_recovery_attempts)
            defn = WorkflowDef(
                name=validation.name(name or default_name(func), "workflow name"),
                fn=func,
                is_async=inspect.iscoroutinefunction(func),
                max_recovery_attempts=max_recovery_attempts,
            )
            REGISTRY.add_workflow(defn)
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
            return cast(F, wrapper)

        return wrap

    return _bare_or_called(
        decorate, fn, {"name": name, "max_recovery_attempts": max_recovery_attempts}
    )


def _make_step(defn: StepDef, func: Callable[..., Any]) -> Callable[..., Any]:
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
    return cast(Callable[..., Any], wrapper)


@overload
def step(fn: F, /) -> F: ...


@overload
def step(
    fn: None = None,
    /,
    *,
    name: str | None = None,
    retries: int = 0,
    retry_delay: float = 1.0,
    backoff: float = 2.0,
    max_delay: float = 60.0,
    jitter: float = 0.1,
    timeout: float | None = None,
    retry_on: type[BaseException] | tuple[type[BaseException], ...] | None = None,
    should_retry: Callable[[BaseException, int], bool] | None = None,
) -> Callable[[F], F]: ...


def step(
    fn: F | None = None,
    /,
    *,
    name: str | None = None,
    retries: int = 0,
    retry_delay: float = 1.0,
    backoff: float = 2.0,
    max_delay: float = 60.0,
    jitter: float = 0.1,
    timeout: float | None = None,
    retry_on: type[BaseException] | tuple[type[BaseException], ...] | None = None,
    should_retry: Callable[[BaseException, int], bool] | None = None,
) -> Any:
    """Declare a step: its outcome is checkpointed once it finishes and replayed, not re-run.

    ``retries`` retries after the first failure with exponential backoff (each delay times a
    jitter factor in ``[1 - jitter, 1]``); when all fail, ``StepRetriesExceeded`` (carrying the
    last error) is raised into the workflow. ``retry_on`` (exception classes) and
    ``should_retry(exc, attempt)`` choose which failures are retried; any other is raised at
    once. A body raising ``RetryAfter(seconds)`` sets that retry's delay. ``timeout`` bounds
    each attempt in seconds (``StepTimeout``, a failed attempt). Outside a workflow a step is a
    plain call.
    """

    def decorate(
        *,
        name: str | None,
        retries: int,
        retry_delay: float,
        backoff: float,
        max_delay: float,
        jitter: float,
        timeout: float | None,
        retry_on: type[BaseException] | tuple[type[BaseException], ...] | None,
        should_retry: Callable[[BaseException, int], bool] | None,
    ) -> Callable[[F], F]:
        retry_classes = retries_mod.check(
            retries, retry_delay, backoff, max_delay, jitter, retry_on, should_retry, timeout
        )

        def wrap(func: F) -> F:
            defn = StepDef(
                name=name or default_name(func),
                fn=func,
                is_async=inspect.iscoroutinefunction(func),
                retries=retries,
                retry_delay=retry_delay,
                backoff=backoff,
                max_delay=max_delay,
                jitter=jitter,
                retry_on=retry_classes,
                should_retry=should_retry,
                timeout=None if timeout is None else float(timeout),
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
            "jitter": jitter,
            "timeout": timeout,
            "retry_on": retry_on,
            "should_retry": should_retry,
        },
    )


@overload
def transaction(fn: F, /) -> F: ...


@overload
def transaction(
    fn: None = None,
    /,
    *,
    name: str | None = None,
    isolation: str | None = None,
    using: str | None = None,
) -> Callable[[F], F]: ...


def transaction(
    fn: F | None = None,
    /,
    *,
    name: str | None = None,
    isolation: str | None = None,
    using: str | None = None,
) -> Any:
    """Declare a step that runs in one transaction on the application database and writes its
    checkpoint in that same transaction, so its database effects happen exactly once.

    ``using`` names the database in a project with several (Django: a ``DATABASES`` alias;
    default ``DURABLE["DATABASE"]``): the step's transaction and its checkpoint are there."""

    def decorate(*, name: str | None, isolation: str | None, using: str | None) -> Callable[[F], F]:
        def wrap(func: F) -> F:
            defn = StepDef(
                name=name or default_name(func),
                fn=func,
                is_async=inspect.iscoroutinefunction(func),
                kind="transaction",
                isolation=isolation,
                using=using,
            )
            return cast(F, _make_step(defn, func))

        return wrap

    return _bare_or_called(decorate, fn, {"name": name, "isolation": isolation, "using": using})


def scheduled(cron: str) -> Callable[[W], W]:
    """Start the workflow below once per cron tick (UTC), exactly once across all workers.

    The workflow receives ``(scheduled_at, started_at)``. Place it above ``@workflow``.
    """

    def wrap(func: W) -> W:
        defn: WorkflowDef | None = getattr(func, "__durable_workflow__", None)
        if defn is None:
            raise ConfigurationError(
                f"@scheduled must be placed above @workflow (on {default_name(func)})"
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
