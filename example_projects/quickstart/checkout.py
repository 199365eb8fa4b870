"""Quickstart: a checkout workflow that survives crashes.

    python example_projects/quickstart/checkout.py            # run order-1
    python example_projects/quickstart/checkout.py order-2    # another order

Kill it while it runs (Ctrl-C, or `kill -9`), run the same command again: it resumes from
the last completed step. Completed steps are never run twice; the state lives in
``durable.sqlite3`` next to where you run it (set DURABLE_DATABASE_URL to use PostgreSQL).

The payment and the stock reservation are ``@transaction`` steps: their rows (in the
``quickstart_payments`` and ``quickstart_reservations`` tables) commit together with the step's
checkpoint, so however the process dies, each order is charged and reserved exactly once.
tests/examples/test_quickstart_toolkit.py proves it by crashing the workflow at every step.
"""

from __future__ import annotations

import os
import sys
import time

from sqlalchemy import text

from durable_core import Engine, set_event, sql_session, step, transaction, workflow

# Each step pretends to do slow work, so there is time to kill the process mid-way.
WORK_SECONDS = float(os.environ.get("QUICKSTART_STEP_SECONDS", "1.5"))


def log(message: str) -> None:
    print(message, flush=True)


@transaction
def validate_payment(order_id: str, amount: float) -> str:
    log(f"  [step 1] validating payment of {amount:.2f} for {order_id} ...")
    time.sleep(WORK_SECONDS)
    session = sql_session()  # the step's own transaction, committed with its checkpoint
    session.execute(
        text("CREATE TABLE IF NOT EXISTS quickstart_payments (order_id TEXT, amount REAL)")
    )
    session.execute(
        text("INSERT INTO quickstart_payments (order_id, amount) VALUES (:o, :a)"),
        {"o": order_id, "a": amount},
    )
    return f"auth-{order_id}"


@transaction
def check_inventory(order_id: str, items: list[str]) -> dict[str, int]:
    log(f"  [step 2] reserving {', '.join(items)} ...")
    time.sleep(WORK_SECONDS)
    session = sql_session()
    session.execute(
        text("CREATE TABLE IF NOT EXISTS quickstart_reservations (order_id TEXT, item TEXT)")
    )
    for item in items:
        session.execute(
            text("INSERT INTO quickstart_reservations (order_id, item) VALUES (:o, :i)"),
            {"o": order_id, "i": item},
        )
    return {item: 1 for item in items}


@step
def ship_order(order_id: str, reserved: dict[str, int]) -> str:
    log(f"  [step 3] shipping {sum(reserved.values())} item(s) ...")
    time.sleep(WORK_SECONDS)
    return f"TRACK-{order_id.upper()}"


@step
def notify_customer(order_id: str, tracking: str) -> str:
    log(f"  [step 4] emailing the customer: your order ships as {tracking}")
    time.sleep(WORK_SECONDS)
    return "sent"


@workflow
def checkout(order_id: str, amount: float, items: list[str]) -> dict:
    authorization = validate_payment(order_id, amount)
    reserved = check_inventory(order_id, items)
    tracking = ship_order(order_id, reserved)
    set_event("tracking", tracking)
    notify_customer(order_id, tracking)
    return {"order": order_id, "authorization": authorization, "tracking": tracking}


def main(order_id: str) -> None:
    # A stable executor_id lets this process recover its own unfinished work at launch.
    with Engine(
        os.environ.get("DURABLE_DATABASE_URL", "sqlite:///durable.sqlite3"),
        executor_id="quickstart",
    ) as engine:
        done = [s.name.rsplit(".", 1)[-1] for s in engine.store.list_steps(order_id)]
        finished = engine.list_workflows(
            status="SUCCESS", name=checkout.__durable_workflow__.name, limit=None
        )
        if any(w.workflow_id == order_id for w in finished):
            log(f"{order_id} already finished earlier; nothing runs twice.")
        elif done:
            log(f"Resuming {order_id}: already done: {', '.join(done)}")
        else:
            log(f"Starting checkout {order_id}")
        # The same workflow_id never runs twice: this returns the existing run if there is one.
        handle = engine.start_workflow(
            checkout, order_id, 42.5, ["book", "mug"], workflow_id=order_id
        )
        result = handle.result()
        log(f"Result: {result}")
        log("Steps recorded:")
        for info in engine.list_steps(order_id):
            log(f"  {info.step_id}. {info.name.rsplit('.', 1)[-1]:<18} -> {info.result!r}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "order-1")
