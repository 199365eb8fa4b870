"""Durable options Django's Task has no field for: a partition key, debounce."""

from __future__ import annotations

import pytest

from django_durable.tasks import enqueue_options
from durable_core.errors import ConfigurationError
from tests.django.conftest import wait_for
from tests.django.testapp import tasks


def finished(result):
    def check():
        result.refresh()
        return result.is_finished

    return check


def test_a_task_on_a_partitioned_queue_takes_its_key_from_enqueue_options(worker):
    with enqueue_options(partition_key="tenant-7"):
        result = tasks.per_tenant.enqueue("tenant-7", 1)
    assert worker.store.get_workflow(result.id).partition_key == "tenant-7"
    wait_for(finished(result), what="task")
    assert result.return_value == "tenant-7:1"


def test_a_task_on_a_partitioned_queue_without_a_key_is_refused(web_engine):
    with pytest.raises(ConfigurationError, match="partition_key"):
        tasks.per_tenant.enqueue("nobody", 1)


def test_debounced_tasks_coalesce_into_one_result(worker):
    with enqueue_options(debounce_key="recalc", debounce=0.5):
        first = tasks.multiply.enqueue(1, 1)
        second = tasks.multiply.enqueue(6, 7)
    assert first.id == second.id
    wait_for(finished(second), what="task")
    assert second.return_value == 42
