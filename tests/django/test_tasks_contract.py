"""The durable task backend keeps Django's task contract (as Django's reference backends
and django-tasks-db's DatabaseBackend do)."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from django.db import transaction
from django.test import override_settings
from django.utils import timezone

from tests.django.conftest import wait_for
from tests.django.testapp import tasks

try:
    from django.tasks import TaskResultStatus, task_backends
    from django.tasks.signals import task_enqueued, task_finished, task_started
except ImportError:
    from django_tasks import TaskResultStatus, task_backends
    from django_tasks.signals import task_enqueued, task_finished, task_started


def done(result):
    def check():
        result.refresh()
        return result.is_finished

    wait_for(check, what=f"task {result.id}")
    return result


def test_enqueue_inside_atomic_returns_the_result(worker):
    with transaction.atomic():
        result = tasks.multiply.enqueue(3, 4)
        assert result.status == TaskResultStatus.READY and result.args == [3, 4]
    assert done(result).return_value == 12


def test_enqueue_inside_a_rolled_back_atomic_never_runs(worker):
    with pytest.raises(RuntimeError), transaction.atomic():
        result = tasks.multiply.enqueue(3, 4)
        raise RuntimeError("rollback")
    with pytest.raises(Exception, match=result.id):
        tasks.multiply.get_result(result.id)


def test_non_json_arguments_are_refused_before_anything_is_stored(worker):
    before = len(worker.list_workflows(name="django_durable.tasks.run_task", limit=1000))
    with pytest.raises(TypeError, match="datetime"):
        tasks.multiply.enqueue(timezone.now(), 2)
    after = len(worker.list_workflows(name="django_durable.tasks.run_task", limit=1000))
    assert after == before


def test_arguments_and_return_values_are_normalized_to_json(worker):
    result = tasks.pair.enqueue((1, 2), {"k": (3,)})
    assert result.args == [[1, 2], {"k": [3]}]
    assert done(result).return_value == [[1, 2], {"k": [3]}]
    bad = done(tasks.returns_a_set.enqueue())
    assert bad.status == TaskResultStatus.FAILED
    assert bad.errors[0].exception_class_path == "builtins.TypeError"


def test_using_options_survive_on_the_result(worker):
    when = timezone.now() + dt.timedelta(hours=2)
    result = tasks.multiply.using(priority=7, queue_name="other", run_after=when).enqueue(1, 2)
    for got in (result, tasks.multiply.get_result(result.id)):
        assert (got.task.priority, got.task.queue_name) == (7, "other")
        assert got.task.run_after == when
        assert got.backend == "default"
    result.refresh()
    assert result.status == TaskResultStatus.READY


def test_error_has_the_real_traceback_with_its_cause_chain(worker):
    result = done(tasks.chained.enqueue())
    (error,) = result.errors
    assert error.exception_class_path == "builtins.RuntimeError"
    assert "Traceback (most recent call last)" in error.traceback
    assert "KeyError: 'inner'" in error.traceback and "RuntimeError: outer" in error.traceback
    assert "direct cause" in error.traceback


def test_exception_class_path_without_importing_its_module(worker):
    result = done(tasks.raises_unimportable.enqueue())
    assert result.errors[0].exception_class_path == "somewhere.not_installed.FarAwayError"


def test_system_exit_fails_the_task(worker):
    result = done(tasks.exits.enqueue())
    assert result.status == TaskResultStatus.FAILED
    assert result.errors[0].exception_class_path == "builtins.SystemExit"


def test_async_task_functions_run(worker):
    assert done(tasks.async_add.enqueue(2, 5)).return_value == 7


def test_signals_are_sent(worker):
    seen: list[tuple[str, str]] = []

    def receiver(signal_name):
        def receive(sender, task_result, **kwargs):
            seen.append((signal_name, str(task_result.status)))

        return receive

    handlers = {name: receiver(name) for name in ("enqueued", "started", "finished")}
    task_enqueued.connect(handlers["enqueued"])
    task_started.connect(handlers["started"])
    task_finished.connect(handlers["finished"])
    try:
        result = done(tasks.multiply.enqueue(2, 2))
        wait_for(lambda: ("finished", "SUCCESSFUL") in seen, what="task_finished")
    finally:
        task_enqueued.disconnect(handlers["enqueued"])
        task_started.disconnect(handlers["started"])
        task_finished.disconnect(handlers["finished"])
    assert result.return_value == 4
    assert seen == [("enqueued", "READY"), ("started", "RUNNING"), ("finished", "SUCCESSFUL")]


def test_attempts_count_every_run(worker):
    result = done(tasks.attempt_number.enqueue())
    assert result.return_value == 1 and result.attempts == 1
    assert (
        tasks.multiply.using(run_after=timezone.now() + dt.timedelta(hours=1))
        .enqueue(1, 1)
        .attempts
        == 0
    )


def test_backend_check_reports_a_missing_app():
    from django.apps import apps

    backend = task_backends["default"]
    assert list(backend.check()) == []
    with override_settings(INSTALLED_APPS=["django.contrib.contenttypes"]):
        assert not apps.is_installed("django_durable")
        assert [m.id for m in backend.check()] == ["django_durable.E010"]


def test_a_task_queue_is_served_by_a_worker_that_only_imported_the_task(worker):
    """Tasks' queues are declared when the task is defined (the worker imports tasks.py)."""
    from durable_core.registry import REGISTRY

    name = f"q-{uuid.uuid4().hex[:6]}"
    tasks.multiply.using(queue_name=name)
    assert name in REGISTRY.queues
    result = tasks.multiply.using(queue_name=name).enqueue(5, 5)
    assert done(result).return_value == 25


def test_backend_queues_are_declared_at_startup_and_others_refused():
    """QUEUES names the valid queues (Django's contract): each is declared when the backend
    is created, which the app does at startup for every durable backend, so a worker serves
    it without importing a task on it; another queue_name is InvalidTask before anything is
    stored."""
    from django_durable.tasks import DurableBackend, durable_backends
    from durable_core.registry import REGISTRY

    try:
        from django.tasks.exceptions import InvalidTask
    except ImportError:
        from django_tasks.exceptions import InvalidTaskError as InvalidTask

    assert durable_backends() == [task_backends["default"]]  # what apps.py instantiates
    declared = f"reports-{uuid.uuid4().hex[:6]}"
    strict = DurableBackend("strict", {"QUEUES": [declared]})
    assert declared in REGISTRY.queues
    with pytest.raises(InvalidTask, match="not valid"):
        strict.validate_task(tasks.multiply.using(queue_name="elsewhere"))
