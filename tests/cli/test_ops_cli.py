"""``durable worker --metrics-port N`` serves Prometheus text from the real worker process."""

from __future__ import annotations

import signal
import time
import urllib.request

import pytest

from tests.ops.test_metrics import parse
from tests.processes import free_port
from tests.waiting import wait_for

from .test_worker import _stop, client, start_worker, worker_log  # noqa: F401 - fixtures

pytest.importorskip("prometheus_client")


def fetch(port: int) -> str | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:  # noqa: S310
            return reply.read().decode()
    except OSError:
        return None


def test_worker_serves_metrics_on_its_port(database_url, client, worker_log):  # noqa: F811
    port = free_port()
    proc = start_worker(
        database_url, worker_log, "--queues", "cli_jobs", "--metrics-port", str(port)
    )
    try:
        for n in range(2):
            assert client.enqueue("cli_jobs", "worker_app.quick", n).result(timeout=30) == 2 * n
        deadline = time.monotonic() + 30
        while (text := fetch(port)) is None:  # the server starts right after launch
            assert proc.poll() is None and time.monotonic() < deadline, worker_log.read_text()
            time.sleep(0.1)
        metrics = parse(text)
        assert metrics['durable_queue_claimed_total{queue="cli_jobs"}'] == 2
        # The worker counts a finish once its statement returns, which is after the commit
        # that result() above saw: the second count can land a moment after the reply.
        finished = 'durable_workflows_finished_total{name="worker_app.quick",status="SUCCESS"}'
        wait_for(
            lambda: parse(fetch(port) or "").get(finished) == 2,
            timeout=10,
            what="the worker to count both finishes",
        )
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        _stop(proc)
