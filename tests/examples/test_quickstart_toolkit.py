"""The quickstart's checkout, crashed at every step with the test toolkit: each @transaction
step's effect happens exactly once, and a plain step runs again only when it died between
its body and its checkpoint. On SQLite and PostgreSQL, in-process (no worker, no SIGKILL)."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

from durable_core.testing import TestEngine
from tests.conftest import PG_URL

SCRIPT = Path(__file__).resolve().parents[2] / "example_projects" / "quickstart" / "checkout.py"


def load_quickstart():
    os.environ["QUICKSTART_STEP_SECONDS"] = "0"  # read at import: no pretend work in tests
    spec = importlib.util.spec_from_file_location("quickstart_checkout", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


quickstart = sys.modules.get("quickstart_checkout") or load_quickstart()
ITEMS = ["book", "mug"]
STEPS = ["validate_payment", "check_inventory", "ship_order", "notify_customer"]
TRANSACTIONS = {"validate_payment", "check_inventory"}


@pytest.fixture
def engine(backend):
    with TestEngine(None if backend == "sqlite" else PG_URL, schema_prefix="testing_") as eng:
        yield eng


def effects(engine, order_id: str) -> tuple[int, int]:
    with engine.transactions.engine.connect() as conn:
        payments = conn.execute(
            text("SELECT COUNT(*) FROM quickstart_payments WHERE order_id = :o"), {"o": order_id}
        ).scalar()
        reserved = conn.execute(
            text("SELECT COUNT(*) FROM quickstart_reservations WHERE order_id = :o"),
            {"o": order_id},
        ).scalar()
    return payments, reserved


def test_the_step_names_are_the_checkouts(engine):
    handle = engine.start_workflow(quickstart.checkout, "order-0", 42.5, ITEMS)
    handle.result(timeout=30)
    recorded = [s.name.rsplit(".", 1)[-1] for s in engine.list_steps(handle.workflow_id)]
    assert [n for n in recorded if n in STEPS] == STEPS


@pytest.mark.parametrize("where", ["before", "during", "after"])
@pytest.mark.parametrize("step", STEPS)
def test_crash_at_every_step_charges_and_reserves_exactly_once(engine, capsys, step, where):
    order_id = f"order-{step}-{where}"
    crash = getattr(engine, f"crash_{where}")(step)
    handle = engine.start_workflow(quickstart.checkout, order_id, 42.5, ITEMS, workflow_id=order_id)
    assert crash.wait().workflow_id == order_id
    assert handle.status().status == "PENDING"
    engine.recover()  # as the restarted process would
    assert handle.result(timeout=30) == {
        "order": order_id,
        "authorization": f"auth-{order_id}",
        "tracking": f"TRACK-{order_id.upper()}",
    }
    assert effects(engine, order_id) == (1, len(ITEMS))  # exactly once, however it crashed
    out = capsys.readouterr().out
    for number, name in enumerate(STEPS, start=1):
        runs = out.count(f"[step {number}]")
        reran = where == "during" and name == step  # died after its body, before its checkpoint
        assert runs == (2 if reran else 1), (name, out)
    assert handle.status().recovery_attempts == 1
