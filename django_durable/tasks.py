"""A backend for Django's task framework that runs ``@task`` functions as durable workflows.

``TASKS = {"default": {"BACKEND": "django_durable.tasks.DurableBackend"}}``. Each task result
is a workflow (its ID is the result ID) on the durable queue named by the task's
``queue_name``, declared when the task is defined; ``durable_worker`` runs them. Django 6 ships
``django.tasks``; on Django 5.2 the ``django-tasks`` backport provides the same API.

The contract kept, as Django's reference backends keep it: arguments and return values are
normalized to JSON (tuples become lists; a value JSON cannot hold is refused before anything
is stored, or fails the task when returned); the result carries the options set with
``using()``; a failure's ``TaskError`` has the real traceback and the exception's import path;
``SystemExit`` fails the task; ``attempts`` counts every run, recoveries included; the
``task_enqueued``, ``task_started`` and ``task_finished`` signals are sent; ``async def``
tasks run.

Options Django's ``Task`` has no field for (a partitioned queue's key, debounce) are given
around the enqueue: ``with enqueue_options(partition_key="tenant-42"): send_email.enqueue(...)``.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import logging
import traceback as tb
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

from django.apps import apps
from django.core import checks
from django.utils import timezone
from django.utils.module_loading import import_string

try:  # Django >= 6.0
    from django.tasks import TaskResultStatus
    from django.tasks.backends.base import BaseTaskBackend
    from django.tasks.base import TaskContext, TaskError, TaskResult
    from django.tasks.exceptions import TaskResultDoesNotExist
    from django.tasks.signals import task_enqueued, task_finished, task_started
except ImportError:  # Django 5.2 with the backport
    from django_tasks import TaskResultStatus
    from django_tasks.backends.base import BaseTaskBackend
    from django_tasks.base import TaskContext, TaskError, TaskResult
    from django_tasks.exceptions import TaskResultDoesNotExist
    from django_tasks.signals import task_enqueued, task_finished, task_started

from durable_core import Queue, set_event, workflow
from durable_core import workflow_id as current_workflow_id
from durable_core.errors import WorkflowNotFound
from durable_core.integration import REGISTRY, decode_error

log = logging.getLogger("django_durable.tasks")

RUN_TASK = "django_durable.tasks.run_task"
ERROR_EVENT = "django_task.error"  # set by run_task before a failure is recorded

STATUS_MAP = {
    "ENQUEUED": TaskResultStatus.READY,
    "PENDING": TaskResultStatus.RUNNING,
    "SUCCESS": TaskResultStatus.SUCCESSFUL,
    "ERROR": TaskResultStatus.FAILED,
    "CANCELLED": TaskResultStatus.FAILED,
    "MAX_RECOVERY_ATTEMPTS_EXCEEDED": TaskResultStatus.FAILED,
}


_ENQUEUE_OPTIONS: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "django_durable_enqueue_options", default=None
)


@contextlib.contextmanager
def enqueue_options(
    *,
    partition_key: str | None = None,
    debounce_key: str | None = None,
    debounce: float | None = None,
    debounce_max_wait: float | None = None,
) -> Iterator[None]:
    """Durable options for the tasks enqueued in this block (this thread or task only), as
    ``Queue.enqueue`` takes them: ``partition_key`` (required when the task's queue is
    declared ``Queue(name, partitioned=True)``), and ``debounce_key`` with ``debounce``
    seconds (enqueues of the key coalesce into one task run with the latest arguments; the
    ``TaskResult`` returned is that one's)."""
    given = {
        name: value
        for name, value in (
            ("partition_key", partition_key),
            ("debounce_key", debounce_key),
            ("debounce", debounce),
            ("debounce_max_wait", debounce_max_wait),
        )
        if value is not None
    }
    token = _ENQUEUE_OPTIONS.set({**(_ENQUEUE_OPTIONS.get() or {}), **given})
    try:
        yield
    finally:
        _ENQUEUE_OPTIONS.reset(token)


class TaskExited(Exception):
    """A task called ``sys.exit()``: Django counts that as a failure, and so does the
    workflow (a ``SystemExit`` escaping a worker thread would leave it RUNNING for good)."""


def normalize_json(value: Any) -> Any:
    """JSON types only, as Django's backends store them (tuples become lists); anything
    else raises ``TypeError`` naming the type."""
    if isinstance(value, dict):
        return {normalize_json(k): normalize_json(v) for k, v in value.items()}
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(f"Unsupported value: {type(value)}") from exc
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, list | tuple):
        return [normalize_json(v) for v in value]
    raise TypeError(f"Unsupported type: {type(value)}")


def _module_path(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _queue(name: str) -> Queue:
    """The durable queue for a task queue name, declared on first use."""
    existing = REGISTRY.queues.get(name)
    return existing if existing is not None else Queue(name, priority_enabled=True)


@workflow(name=RUN_TASK)
def run_task(
    module_path: str,
    backend_alias: str,
    args: list[Any],
    kwargs: dict[str, Any],
    takes_context: bool,
    options: dict[str, Any] | None = None,
) -> Any:
    """The durable workflow behind every Django task: import the task and call it."""
    backend = _backend(backend_alias)
    result = backend.get_result(current_workflow_id())
    task_started.send(type(backend), task_result=result)
    try:
        try:
            if takes_context:
                raw = result.task.call(TaskContext(task_result=result), *args, **kwargs)
            else:
                raw = result.task.call(*args, **kwargs)
            value = normalize_json(raw)
        except SystemExit as exc:
            raise TaskExited(f"the task called sys.exit({exc.code!r})") from exc
    except Exception as exc:
        failed = exc.__cause__ if isinstance(exc, TaskExited) and exc.__cause__ else exc
        error = {
            "exception_class_path": _module_path(type(failed)),
            "traceback": "".join(tb.format_exception(failed)),
        }
        set_event(ERROR_EVENT, error)
        result.errors.append(TaskError(**error))
        _finished(backend, result, TaskResultStatus.FAILED)
        raise
    _finished(backend, result, TaskResultStatus.SUCCESSFUL, value)
    return value


def _finished(backend: Any, result: TaskResult, status: Any, value: Any = None) -> None:
    """``task_finished`` with the outcome, sent before the workflow records it."""
    object.__setattr__(result, "status", status)
    object.__setattr__(result, "finished_at", timezone.now())
    if status == TaskResultStatus.SUCCESSFUL:
        object.__setattr__(result, "_return_value", value)
    task_finished.send(type(backend), task_result=result)


def durable_backends() -> list[DurableBackend]:
    """The ``TASKS`` backends of this project that are durable, instantiated: each declares
    its ``QUEUES`` on creation (so a worker serves them without importing any task)."""
    from django.conf import settings

    try:
        from django.tasks import task_backends
    except ImportError:
        from django_tasks import task_backends
    found = []
    for alias, params in (getattr(settings, "TASKS", None) or {}).items():
        try:
            backend_class = import_string(params["BACKEND"])
        except Exception:  # a bad TASKS entry is Django's own check to report
            continue
        if isinstance(backend_class, type) and issubclass(backend_class, DurableBackend):
            found.append(task_backends[alias])
    return found


def declare_queues(queue_names: Iterable[str]) -> None:
    """Declare these durable queues (with the task backend's defaults) unless a module did."""
    for name in queue_names:
        _queue(name)


class QueueDiscovery:
    """In a worker serving every queue: serve a task queue that is named only when a task is
    enqueued (a backend with ``QUEUES: []`` accepts any ``queue_name``, and the worker may
    never import the task that names it). Every ``interval`` seconds the queues holding
    ENQUEUED tasks are declared, which the worker's dequeue loop then serves."""

    def __init__(self, engine: Any, interval: float = 5.0) -> None:
        import threading

        self.engine = engine
        self.interval = interval
        self._thread = threading.Thread(target=self._run, name="durable-task-queues", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def discover(self) -> list[str]:
        """Declare the queues that hold ENQUEUED tasks; returns the names newly declared."""
        names = self.engine.store.enqueued_queue_names([RUN_TASK])
        new = [name for name in names if name not in REGISTRY.queues]
        declare_queues(new)
        return new

    def _run(self) -> None:
        while not self.engine.stopping.wait(self.interval):
            try:
                for name in self.discover():
                    log.info("serving task queue %r (named by an enqueued task)", name)
            except Exception as exc:  # a database hiccup: try again next time
                log.debug("task queue discovery skipped: %s", exc)


class TaskNames:
    """``manage.py durable``'s names for tasks (``durable_core.cli.WorkflowNames``): a task's
    own path instead of ``run_task``, in listings, ``show`` and ``--name``."""

    def label(self, status: Any) -> str | None:
        if status.name != RUN_TASK or not status.args or not isinstance(status.args[0], str):
            return None
        return status.args[0]

    def stored_name(self, name: str) -> str | None:
        # A name no workflow has here is taken for a task's path (no import of it needed).
        return None if name in REGISTRY.workflows else RUN_TASK


def accepts_any_queue() -> bool:
    """Whether a durable task backend accepts any ``queue_name`` (``QUEUES: []``)."""
    return any(not backend.queues for backend in durable_backends())


def _backend(alias: str) -> DurableBackend:
    try:
        from django.tasks import task_backends
    except ImportError:
        from django_tasks import task_backends
    return task_backends[alias]


class DurableBackend(BaseTaskBackend):
    """Enqueues Django tasks as durable workflows (see the module docstring)."""

    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        super().__init__(alias, params)
        # So that durable_worker serves them (every process instantiates the durable
        # backends at startup, see apps.py). With QUEUES empty any queue_name is valid, as in
        # Django's backends; the worker then finds such queues by their enqueued tasks.
        declare_queues(self.queues)

    def validate_task(self, task: Any) -> None:
        super().validate_task(task)
        # Called when a task is defined (and by using()): every process that imports the
        # task, durable_worker included, then serves its queue.
        _queue(task.queue_name)

    def check(self, **kwargs: Any) -> Iterable[checks.CheckMessage]:
        yield from super().check(**kwargs)
        if not apps.is_installed("django_durable"):
            yield checks.Error(
                f"TASKS[{self.alias!r}] uses django_durable.tasks.DurableBackend, but "
                "django_durable is not in INSTALLED_APPS.",
                hint='Add "django_durable" to INSTALLED_APPS and run `manage.py migrate`.',
                obj=f"settings.TASKS[{self.alias!r}]",
                id="django_durable.E010",
            )

    def _engine(self) -> Any:
        from .engine import get_engine

        return get_engine()

    def enqueue(self, task: Any, args: Any, kwargs: Any) -> TaskResult:
        self.validate_task(task)
        # Before anything is stored: a value JSON cannot hold is the caller's error.
        args, kwargs = normalize_json(list(args)), normalize_json(dict(kwargs))
        delay = None
        if task.run_after is not None:
            delay = max((task.run_after - timezone.now()).total_seconds(), 0.0)
        options = {
            "priority": task.priority,
            "queue_name": task.queue_name,
            "run_after": task.run_after.isoformat() if task.run_after else None,
        }
        self._engine()  # built (and set as the default engine) before the enqueue
        durable = dict(_ENQUEUE_OPTIONS.get() or {})
        result_id = str(uuid.uuid4())
        # A debounced enqueue may return another enqueue's workflow: its ID is the result's.
        handle = _queue(task.queue_name).enqueue(
            run_task,
            task.module_path,
            self.alias,
            args,
            kwargs,
            task.takes_context,
            options,
            workflow_id=None if "debounce_key" in durable else result_id,
            # Django: higher priority runs first; durable queues: lower runs first.
            priority=-task.priority if task.priority else None,
            delay=delay or None,
            **durable,
        )
        result_id = handle.workflow_id
        # Built here rather than read back: inside atomic() the row is not committed yet.
        result = TaskResult(
            task=task,
            id=result_id,
            status=TaskResultStatus.READY,
            enqueued_at=timezone.now(),
            started_at=None,
            finished_at=None,
            last_attempted_at=None,
            args=args,
            kwargs=kwargs,
            backend=self.alias,
            errors=[],
            worker_ids=[],
        )
        task_enqueued.send(type(self), task_result=result)
        return result

    def get_result(self, result_id: str) -> TaskResult:
        engine = self._engine()
        try:
            status = engine.retrieve_workflow(result_id).status()
        except WorkflowNotFound:
            raise TaskResultDoesNotExist(result_id) from None
        if status.name != RUN_TASK:
            raise TaskResultDoesNotExist(result_id)
        module_path, backend_alias, args, kwargs = status.args[:4]
        options = status.args[5] if len(status.args) > 5 else status.kwargs.get("options")
        task = import_string(module_path)
        if options:
            run_after = options.get("run_after")
            task = task.using(
                priority=options.get("priority"),
                queue_name=options.get("queue_name"),
                run_after=dt.datetime.fromisoformat(run_after) if run_after else None,
                backend=backend_alias,
            )
        elif task.backend != backend_alias:
            task = task.using(backend=backend_alias)
        errors = []
        if status.status in ("ERROR", "CANCELLED", "MAX_RECOVERY_ATTEMPTS_EXCEEDED"):
            errors.append(self._error(engine, result_id, status))
        # One worker ID per run: the first and each recovery (attempts = len(worker_ids)).
        runs = 0 if status.status == "ENQUEUED" else status.recovery_attempts + 1
        result = TaskResult(
            task=task,
            id=result_id,
            status=STATUS_MAP[str(status.status)],
            enqueued_at=status.created_at,
            started_at=status.started_at,
            finished_at=status.finished_at,
            last_attempted_at=status.updated_at if runs else None,
            args=list(args),
            kwargs=dict(kwargs),
            backend=backend_alias,
            errors=errors,
            worker_ids=[status.executor_id or ""] * runs,
        )
        if str(status.status) == "SUCCESS":
            object.__setattr__(result, "_return_value", status.result)
        return result

    def _error(self, engine: Any, result_id: str, status: Any) -> TaskError:
        recorded = engine.get_event(result_id, ERROR_EVENT, timeout=0)
        if isinstance(recorded, dict) and recorded.get("exception_class_path"):
            return TaskError(
                exception_class_path=recorded["exception_class_path"],
                traceback=recorded.get("traceback") or "",
            )
        # Cancelled, dead-lettered, or failed before the task ran (say, an unknown task).
        row = engine.store.get_workflow(result_id)
        exc: BaseException | None = None
        if row is not None and row.error:
            try:
                exc = decode_error(engine.serializer, row.error, result_id)
            except Exception:
                exc = None
        path = "durable_core.errors.WorkflowCancelled" if exc is None else _module_path(type(exc))
        return TaskError(exception_class_path=path, traceback=status.error or str(status.status))
