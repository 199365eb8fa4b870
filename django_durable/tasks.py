"""A backend for Django's task framework that runs ``@task`` functions as durable workflows.

``TASKS = {"default": {"BACKEND": "django_durable.tasks.DurableBackend"}}``. Each task result
is a workflow (its ID is the result ID) on the durable queue named by the task's
``queue_name``, declared on first use; ``durable_worker`` runs them. Django 6 ships
``django.tasks``; on Django 5.2 the ``django-tasks`` backport provides the same API.
"""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from django.utils.module_loading import import_string

try:  # Django >= 6.0
    from django.tasks import TaskResultStatus
    from django.tasks.backends.base import BaseTaskBackend
    from django.tasks.base import TaskContext, TaskError, TaskResult
    from django.tasks.exceptions import TaskResultDoesNotExist
except ImportError:  # Django 5.2 with the backport
    from django_tasks import TaskResultStatus
    from django_tasks.backends.base import BaseTaskBackend
    from django_tasks.base import TaskContext, TaskError, TaskResult
    from django_tasks.exceptions import TaskResultDoesNotExist

from durable_core import Queue, workflow
from durable_core import workflow_id as current_workflow_id
from durable_core.errors import WorkflowNotFound
from durable_core.integration import REGISTRY, decode_error

STATUS_MAP = {
    "ENQUEUED": TaskResultStatus.READY,
    "PENDING": TaskResultStatus.RUNNING,
    "SUCCESS": TaskResultStatus.SUCCESSFUL,
    "ERROR": TaskResultStatus.FAILED,
    "CANCELLED": TaskResultStatus.FAILED,
    "MAX_RECOVERY_ATTEMPTS_EXCEEDED": TaskResultStatus.FAILED,
}


def _queue(name: str) -> Queue:
    """The durable queue for a task queue name, declared on first use."""
    existing = REGISTRY.queues.get(name)
    return existing if existing is not None else Queue(name, priority_enabled=True)


@workflow(name="django_durable.tasks.run_task")
def run_task(
    module_path: str, backend_alias: str, args: list, kwargs: dict, takes_context: bool
) -> Any:
    """The durable workflow behind every Django task: import the task and call it."""
    task = import_string(module_path)
    if takes_context:
        backend = _backend(backend_alias)
        result = backend.get_result(current_workflow_id())
        return task.call(TaskContext(task_result=result), *args, **kwargs)
    return task.call(*args, **kwargs)


def _backend(alias: str) -> DurableBackend:
    try:
        from django.tasks import task_backends
    except ImportError:
        from django_tasks import task_backends
    return task_backends[alias]


class DurableBackend(BaseTaskBackend):
    """Enqueues Django tasks as durable workflows (see the module docstring)."""

    supports_defer = True
    supports_async_task = False
    supports_get_result = True
    supports_priority = True

    def __init__(self, alias: str, params: dict) -> None:
        super().__init__(alias, params)
        for name in self.queues:  # so that durable_worker serves them
            _queue(name)

    def _engine(self) -> Any:
        from .engine import get_engine

        return get_engine()

    def enqueue(self, task: Any, args: Any, kwargs: Any) -> TaskResult:
        self.validate_task(task)
        delay = None
        if task.run_after is not None:
            delay = max((task.run_after - timezone.now()).total_seconds(), 0.0)
        self._engine()  # built (and set as the default engine) before the enqueue
        handle = _queue(task.queue_name).enqueue(
            run_task,
            task.module_path,
            self.alias,
            list(args),
            dict(kwargs),
            task.takes_context,
            # Django: higher priority runs first; durable queues: lower runs first.
            priority=-task.priority if task.priority else None,
            delay=delay or None,
        )
        return self.get_result(handle.workflow_id)

    def get_result(self, result_id: str) -> TaskResult:
        engine = self._engine()
        try:
            status = engine.retrieve_workflow(result_id).status()
        except WorkflowNotFound:
            raise TaskResultDoesNotExist(result_id) from None
        if status.name != run_task.__durable_workflow__.name:
            raise TaskResultDoesNotExist(result_id)
        module_path, backend_alias, args, kwargs, _ = status.args
        task = import_string(module_path)
        errors = []
        if status.status in ("ERROR", "CANCELLED", "MAX_RECOVERY_ATTEMPTS_EXCEEDED"):
            errors.append(self._error(engine, result_id, status))
        result = TaskResult(
            task=task,
            id=result_id,
            status=STATUS_MAP[str(status.status)],
            enqueued_at=status.created_at,
            started_at=status.started_at,
            finished_at=status.finished_at,
            last_attempted_at=status.started_at,
            args=list(args),
            kwargs=dict(kwargs),
            backend=backend_alias,
            errors=errors,
            worker_ids=[status.executor_id] if status.executor_id else [],
        )
        if str(status.status) == "SUCCESS":
            object.__setattr__(result, "_return_value", status.result)
        return result

    def _error(self, engine: Any, result_id: str, status: Any) -> TaskError:
        row = engine.store.get_workflow(result_id)
        exc: BaseException | None = None
        if row is not None and row.error:
            try:
                exc = decode_error(engine.serializer, row.error, result_id)
            except Exception:
                exc = None
        if exc is None:
            path = "durable_core.errors.WorkflowCancelled"
        else:
            path = f"{type(exc).__module__}.{type(exc).__qualname__}"
        return TaskError(exception_class_path=path, traceback=status.error or str(status.status))
