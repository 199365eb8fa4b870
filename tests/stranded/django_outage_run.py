"""Run by test_django_outage.py in a process of its own: a Django project on the throwaway
cluster, reached through the fault lab's proxy, whose ``@transaction`` step meets a PostgreSQL
outage (every connection cut, new ones refused for a while) in the middle of its body.

Prints one JSON line with what happened; exits non-zero if the workflow did not succeed.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time

from tests.faultlab.proxy import Proxy

proxy = Proxy(int(os.environ["FAULT_PG_PORT"])).start()
os.environ["DURABLE_TEST_DATABASE_URL"] = f"postgresql://postgres@127.0.0.1:{proxy.port}/postgres"
os.environ["DURABLE_DJANGO_DB"] = "postgres"
os.environ["DJANGO_SETTINGS_MODULE"] = "tests.django.settings"

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from orders.models import Product  # noqa: E402

from django_durable.engine import build_engine  # noqa: E402
from durable_core import transaction, workflow  # noqa: E402

OUTAGE_SECONDS = float(os.environ.get("OUTAGE_SECONDS", "3"))
attempts: list[float] = []


def outage() -> None:
    """The database goes away: live connections are cut, new ones refused, then it returns."""
    proxy.refuse(True)
    proxy.cut_all()
    threading.Timer(OUTAGE_SECONDS, proxy.refuse, args=(False,)).start()


@transaction
def create_product(sku: str) -> int:
    attempts.append(time.monotonic())
    if len(attempts) == 1:
        outage()  # mid-body: the ORM write below meets a dead connection
    Product.objects.create(sku=sku, name=sku, price_cents=1, stock=1)
    return Product.objects.filter(sku=sku).count()


@workflow
def make_product(sku: str) -> int:
    return create_product(sku)


def main() -> int:
    call_command("migrate", verbosity=0)
    engine = build_engine(worker=True, executor_id="django-outage", run_scheduler=False)
    engine.launch()
    try:
        started = time.monotonic()
        handle = engine.start_workflow(make_product, "outage-sku")
        result = handle.result(timeout=60)
        status = handle.status().status
        elapsed = time.monotonic() - started
    finally:
        engine.shutdown(timeout=5)
    connection.close()  # this thread's connection (from migrate) was cut by the outage
    count = Product.objects.filter(sku="outage-sku").count()
    print(
        json.dumps(
            {
                "result": result,
                "status": status,
                "rows": count,
                "attempts": len(attempts),
                "elapsed": round(elapsed, 2),
                "cut": proxy.stats.connections_cut,
                "refused": proxy.stats.refused,
            }
        )
    )
    proxy.close()
    return 0 if status == "SUCCESS" else 1


if __name__ == "__main__":
    sys.exit(main())
