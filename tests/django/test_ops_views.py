"""django_durable.urls: the metrics view shows this process's counts and the backlog."""

from __future__ import annotations

import pytest

from tests.ops.test_metrics import delta, parse
from tests.waiting import wait_for

pytest.importorskip("prometheus_client")


def test_metrics_view_counts_a_known_workload(web_engine, client):
    from tests.django.testapp.workflows import adder

    first = client.get("/durable/metrics")
    assert first.status_code == 200
    assert first["Content-Type"].startswith("text/plain")
    for n in range(3):
        assert web_engine.start_workflow(adder, n, 1).result(timeout=20) == n + 1
    key = f'durable_workflows_finished_total{{name="{adder.__durable_workflow__.name}",status="SUCCESS"}}'
    before = parse(first.content.decode())

    # result() returns once the outcome is stored; the worker thread counts it just after.
    def counted() -> dict | None:
        after = parse(client.get("/durable/metrics").content.decode())
        return after if delta(before, after, key) >= 3 else None

    after = wait_for(counted, 10, "the worker to count the three")
    assert delta(before, after, key) == 3
    assert "durable_database_roundtrip_seconds" in after
    assert client.post("/durable/metrics").status_code == 405


def test_liveness_and_readiness_views(web_engine, client):
    live = client.get("/durable/health/live")
    assert live.status_code == 200 and live.json() == {"status": "ok"}
    ready = client.get("/durable/health/ready")
    assert ready.status_code == 200, ready.content
    web_engine.store.run("INSERT INTO durable_schema (version) VALUES (999)")
    try:
        unready = client.get("/durable/health/ready")
        assert unready.status_code == 503
        assert unready.json()["checks"]["schema"]["ok"] is False
        assert client.get("/durable/health/live").status_code == 200
    finally:
        web_engine.store.run("DELETE FROM durable_schema WHERE version = 999")
