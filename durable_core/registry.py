"""The definitions of workflows and steps, and the registry of workflows and queues (plain
data, filled at import time by the decorators in ``decorators.py``)."""

from __future__ import annotations

import hashlib
import inspect
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ParamSpec, Protocol, TypeVar

from .errors import ConfigurationError
from .retries import RetryPolicy


@dataclass(slots=True)
class WorkflowDef:
    name: str
    fn: Callable[..., Any]
    is_async: bool
    max_recovery_attempts: int | None
    schedule: str | None = None
    schedule_iter: Any = None


P = ParamSpec("P")
R_co = TypeVar("R_co", covariant=True)


class Workflow(Protocol[P, R_co]):
    """What ``@workflow`` returns: the function itself (same parameters and return type, so
    editors and type checkers see them), run durably, with its definition attached."""

    __durable_workflow__: WorkflowDef

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R_co: ...


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
    using: str | None = None  # an integration's database name (Django: a DATABASES alias)
    jitter: float = 0.1
    retry_on: tuple[type[BaseException], ...] | None = None
    should_retry: Callable[[BaseException, int], bool] | None = None
    timeout: float | None = None  # seconds per attempt

    @property
    def policy(self) -> RetryPolicy:
        return RetryPolicy(
            self.retries,
            self.retry_delay,
            self.backoff,
            self.max_delay,
            self.jitter,
            self.retry_on,
            self.should_retry,
        )


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


def _source_id(fn: Callable[..., Any]) -> tuple[Any, ...]:
    code = getattr(fn, "__code__", None)
    return (
        getattr(fn, "__module__", None),
        getattr(fn, "__qualname__", None),
        getattr(code, "co_firstlineno", None),
    )


REGISTRY = Registry()


def default_name(fn: Callable[..., Any]) -> str:
    return f"{fn.__module__}.{fn.__qualname__}"


def resolve_workflow(fn_or_name: Any) -> WorkflowDef:
    if isinstance(fn_or_name, str):
        defn = REGISTRY.get(fn_or_name)
        if defn is None:
            raise ConfigurationError(
                f"No workflow named {fn_or_name!r} is registered in this process."
            )
        return defn
    defn = getattr(fn_or_name, "__durable_workflow__", None)
    if not isinstance(defn, WorkflowDef):
        raise ConfigurationError(
            f"{getattr(fn_or_name, '__qualname__', fn_or_name)!r} is not a workflow; decorate it with @workflow."
        )
    return defn
