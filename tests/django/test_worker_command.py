"""``manage.py durable_worker`` runs the core worker loop: the same shutdown semantics as
``durable worker`` (a real process, a real SIGTERM)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from django.db import connection

from tests import processes
from tests.django.conftest import wait_for
from tests.django.testapp import workflows as wf

ROOT = Path(__file__).resolve().parents[2]
MANAGE = ROOT / "example_projects" / "django_shop" / "manage.py"


def spawn(log: Path, *args: str) -> subprocess.Popen:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.django.settings",
        "DURABLE_DJANGO_DB_NAME": str(connection.settings_dict["NAME"]),
        "PYTHONPATH": str(ROOT),
    }
    return processes.spawn(
        [sys.executable, str(MANAGE), "durable_worker", *args],
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )


def test_sigterm_with_a_long_step_running_exits_after_the_shutdown_timeout(web_engine, tmp_path):
    log = tmp_path / "worker.log"
    executor = f"slow-{uuid.uuid4().hex[:6]}"
    worker = spawn(
        log, "--queues", "django-slow", "--executor-id", executor, "--shutdown-timeout", "2"
    )
    try:
        handle = wf.slow_queue.enqueue(wf.napper, 30)
        wait_for(lambda: handle.status().status == "PENDING", timeout=60, what="the 30 s step")
        wait_for(lambda: "running on" in log.read_text(), what="banner")
        signalled = time.monotonic()
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(timeout=25)
        elapsed = time.monotonic() - signalled
    finally:
        processes.kill(worker)
    assert code == 0, log.read_text()
    assert 1.5 <= elapsed < 10, f"exited {elapsed:.1f}s after SIGTERM"  # 2 s, generous bound
    assert "left for recovery" in log.read_text()
    assert "INFO durable_core" in log.read_text()
    assert handle.status().status == "PENDING"  # recovered later, as after a crash
    # Not by this test run: a 30 s step adopted by a later test's worker would outlive it.
    web_engine.cancel_workflow(handle.workflow_id)


def test_log_level_option(web_engine, tmp_path):
    log = tmp_path / "worker.log"
    # A short shutdown timeout: work other tests left on the shared queue (adopted from an
    # engine of theirs, say) may be running here at the signal, and the default 30 s wait for
    # it is what the test's own 30 s bound met once in CI (Django 6 run). Exiting after a
    # signal with work running is the previous test's subject; this one's is the log level.
    worker = spawn(
        log, "--queues", "django-slow", "--log-level", "warning", "--shutdown-timeout", "2"
    )
    try:
        wait_for(lambda: "running on" in log.read_text(), timeout=60, what="banner")
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
    finally:
        processes.kill(worker)
    assert "INFO durable_core" not in log.read_text()  # the default (INFO) shows them
    bad = spawn(tmp_path / "bad.log", "--queues", "no-such-queue")
    assert bad.wait(timeout=60) != 0
    assert "no-such-queue" in (tmp_path / "bad.log").read_text()


def test_a_failed_workflow_is_logged_with_its_traceback(worker, caplog):
    import logging

    import pytest

    from durable_core import start_workflow

    sku = f"log-{uuid.uuid4().hex[:6]}"
    with caplog.at_level(logging.ERROR, logger="durable_core"):
        handle = start_workflow(wf.always_fails, sku)
        with pytest.raises(ValueError):
            handle.result(timeout=20)
        wait_for(lambda: any(handle.workflow_id in r.getMessage() for r in caplog.records))
    (record,) = [r for r in caplog.records if handle.workflow_id in r.getMessage()]
    assert (
        "always_fails" in record.getMessage() and f"ValueError: nope {sku}" in record.getMessage()
    )
    assert record.exc_info and record.exc_info[0] is ValueError


def test_task_attempts_count_a_run_cut_short_by_a_crash(web_engine, tmp_path):
    """A Django task whose worker was SIGKILLed runs again on recovery: attempt 2."""
    from tests.django.testapp import tasks

    executor = f"crashy-{uuid.uuid4().hex[:6]}"
    first = spawn(tmp_path / "first.log", "--queues", "crashy", "--executor-id", executor)
    try:
        result = tasks.slow_first_attempt.enqueue(60)

        def running():
            result.refresh()
            return result.status == "RUNNING"

        wait_for(running, timeout=60, what="the first attempt")
    finally:
        processes.kill(first)
    second = spawn(tmp_path / "second.log", "--queues", "crashy", "--executor-id", executor)
    try:

        def finished():
            result.refresh()
            return result.is_finished

        wait_for(finished, timeout=60, what="the recovered attempt")
    finally:
        processes.stop(second, timeout=30)
    assert result.return_value == 2
    assert result.attempts == 2


def test_enqueued_work_of_another_version_is_loud_in_the_worker_log(worker, caplog):
    """A deploy that changes the default version leaves the old workers ignoring new work:
    the worker says so (at start and every minute) instead of idling silently."""
    import logging

    from django_durable.conf import database_alias
    from django_durable.database import database_url
    from durable_core import Client
    from durable_core.cli import warn_other_versions

    version = f"v-{uuid.uuid4().hex[:6]}"
    with Client(database_url(database_alias())) as client:
        client.enqueue(
            "django-slow", "tests.django.testapp.workflows.napper", 0, application_version=version
        )
    with caplog.at_level(logging.WARNING, logger="durable_core"):
        found = warn_other_versions(worker)
    assert found.get(version) == 1
    assert version in caplog.text and "DURABLE['APPLICATION_VERSION']" in caplog.text


def test_a_worker_serves_a_task_queue_named_only_at_enqueue(web_engine, tmp_path):
    """TASKS QUEUES [] accepts any queue_name (Django's contract); a durable_worker process
    that never declared the queue (no module it imports names it) finds it by its enqueued
    task and serves it. Before: the task stayed READY for good."""
    from tests.django.testapp import tasks

    name = f"only-at-enqueue-{uuid.uuid4().hex[:6]}"
    worker = spawn(tmp_path / "worker.log", "--executor-id", f"disc-{uuid.uuid4().hex[:6]}")
    try:
        wait_for(
            lambda: "running on" in (tmp_path / "worker.log").read_text(), timeout=60, what="banner"
        )
        assert name not in (tmp_path / "worker.log").read_text()
        result = tasks.multiply.using(queue_name=name).enqueue(6, 7)

        def finished():
            result.refresh()
            return result.is_finished

        wait_for(finished, timeout=30, what="the task on an undeclared queue")
    finally:
        processes.stop(worker, timeout=30)
    assert result.return_value == 42
    assert f"serving task queue '{name}'" in (tmp_path / "worker.log").read_text()
