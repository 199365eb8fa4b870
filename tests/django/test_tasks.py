"""Django's task framework on the durable backend."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from tests.django.conftest import wait_for
from tests.django.testapp import tasks

try:
    from django.tasks import TaskResultStatus
    from django.tasks.exceptions import TaskResultDoesNotExist
except ImportError:
    from django_tasks import TaskResultStatus
    from django_tasks.exceptions import TaskResultDoesNotExist


def finished(result):
    def check():
        result.refresh()
        return result.is_finished

    return check


def test_enqueue_runs_as_a_workflow(worker):
    result = tasks.multiply.enqueue(6, 7)
    assert result.status in (TaskResultStatus.READY, TaskResultStatus.RUNNING)
    # The result ID is the workflow ID.
    assert worker.retrieve_workflow(result.id).status().name == "django_durable.tasks.run_task"
    wait_for(finished(result), what="task")
    assert result.status == TaskResultStatus.SUCCESSFUL and result.return_value == 42
    again = tasks.multiply.get_result(result.id)
    assert again.return_value == 42 and again.args == [6, 7]


async def test_aenqueue(worker):
    result = await tasks.multiply.aenqueue(2, 3)
    got = await tasks.multiply.aget_result(result.id)
    assert got.id == result.id


def test_failure_maps_to_failed_with_error(worker):
    result = tasks.explode.enqueue()
    wait_for(finished(result), what="task")
    assert result.status == TaskResultStatus.FAILED
    assert result.errors[0].exception_class_path == "builtins.ValueError"
    assert "task exploded" in result.errors[0].traceback


def test_priority_and_run_after(worker):
    result = tasks.urgent.enqueue(5)
    row = worker.store.get_workflow(result.id)
    assert row.priority == -10  # durable queues run lower numbers first
    later = tasks.multiply.using(run_after=timezone.now() + dt.timedelta(hours=1)).enqueue(1, 1)
    row = worker.store.get_workflow(later.id)
    assert row.not_before is not None and later.status == TaskResultStatus.READY
    wait_for(finished(result), what="task")


def test_context_and_unknown_result(worker):
    result = tasks.with_context.enqueue(3)
    wait_for(finished(result), what="task")
    assert result.return_value == f"{result.id}:3"
    with pytest.raises(TaskResultDoesNotExist):
        tasks.multiply.get_result("does-not-exist")
