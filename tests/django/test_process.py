"""``manage.py durable_worker`` as a real process: SIGKILL mid-checkout, restart, SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.db import connection
from orders.models import Order, Product
from orders.workflows import checkout, checkouts

from tests import processes
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
MANAGE = ROOT / "example_projects" / "django_shop" / "manage.py"


def start_worker(log: Path, executor_id: str, **env: str) -> subprocess.Popen:
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.django.settings",
        "DURABLE_DJANGO_DB_NAME": str(connection.settings_dict["NAME"]),
        "PYTHONPATH": str(ROOT),
        **env,
    }
    return processes.spawn(
        [
            sys.executable,
            str(MANAGE),
            "durable_worker",
            "--executor-id",
            executor_id,
            "--queues",
            "checkouts",
            "--concurrency",
            "4",
            "--shutdown-timeout",
            "5",
        ],
        env=environment,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )


@pytest.mark.crash
def test_sigkill_mid_checkout_then_restart_finishes_once(web_engine, tmp_path):
    Product.objects.create(sku="gadget", name="Gadget", price_cents=100, stock=5)
    executor = f"shop-worker-{uuid.uuid4().hex[:6]}"
    ref = uuid.uuid4().hex[:10]
    workflow_id = f"checkout-{ref}"
    first = start_worker(tmp_path / "first.log", executor, SHOP_SHIP_DELAY="60")
    try:
        checkouts.enqueue(checkout, ref, "gadget", 1, 100, workflow_id=workflow_id)
        # The stock is reserved and the order exists; the worker is now inside `ship`.
        wait_for(lambda: Order.objects.filter(ref=ref).exists(), timeout=60, what="reservation")
        wait_for(
            lambda: web_engine.get_event(workflow_id, "stage", timeout=0) == "reserved",
            what="reserved event",
        )
    finally:
        processes.kill(first)
    assert first.returncode == -signal.SIGKILL
    assert web_engine.retrieve_workflow(workflow_id).status().status == "PENDING"

    second = start_worker(tmp_path / "second.log", executor)  # same executor: recovers at once
    try:
        wait_for(
            lambda: web_engine.get_event(workflow_id, "stage", timeout=0) == "shipped",
            timeout=60,
            what="recovery to ship",
        )
        web_engine.send(workflow_id, {"by": "test"}, topic="delivery")
        result = web_engine.retrieve_workflow(workflow_id).result(timeout=60)
        assert result["delivered"] is True
        assert Order.objects.filter(ref=ref).count() == 1
        assert Product.objects.get(sku="gadget").stock == 4
        steps = [s.name.rsplit(".", 1)[-1] for s in web_engine.list_steps(workflow_id)]
        assert steps.count("reserve_inventory") == 1
        # Graceful stop on SIGTERM: exit code 0.
        wait_for(lambda: "running on" in (tmp_path / "second.log").read_text(), what="banner")
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=30) == 0, (tmp_path / "second.log").read_text()
        assert "stopped" in (tmp_path / "second.log").read_text()
    finally:
        processes.kill(second)
