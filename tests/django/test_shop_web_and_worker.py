"""The shop on SQLite with ``startproject``'s database settings, a web process and a worker
running at once: every checkout completes exactly once (no "database is locked").

Real processes: ``manage.py runserver`` (threaded, DEBUG=True) and ``manage.py
durable_worker``, orders placed through HTTP from several client threads at once.
"""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests import processes
from tests.django.conftest import wait_for

ROOT = Path(__file__).resolve().parents[2]
SHOP = ROOT / "example_projects" / "django_shop"
MANAGE = SHOP / "manage.py"
ORDERS = 30

pytestmark = pytest.mark.skipif(
    os.environ.get("DURABLE_DJANGO_DB", "sqlite") != "sqlite", reason="SQLite first-run path"
)


@pytest.fixture
def project(tmp_path):
    """A settings module with the DATABASES entry `startproject` writes (no OPTIONS)."""
    db = tmp_path / "db.sqlite3"
    (tmp_path / "startproject_settings.py").write_text(
        textwrap.dedent(
            f"""
            from shop.settings import *  # noqa: F403

            DEBUG = True
            DATABASES = {{
                "default": {{"ENGINE": "django.db.backends.sqlite3", "NAME": {str(db)!r}}}
            }}
            """
        )
    )
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("DURABLE_")},
        "DJANGO_SETTINGS_MODULE": "startproject_settings",
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(SHOP), str(ROOT)]),
    }

    def manage(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, str(MANAGE), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
        )

    done = manage("migrate", "-v0")
    assert done.returncode == 0, done.stderr
    with sqlite3.connect(db) as conn:
        conn.execute(
            "INSERT INTO orders_product (sku, name, price_cents, stock) "
            "VALUES ('widget', 'Widget', 250, 1000)"
        )
    return tmp_path, db, env


def spawn(env: dict, log: Path, *args: str) -> subprocess.Popen:
    return processes.spawn(
        [sys.executable, str(MANAGE), *args],
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        cwd=log.parent,
    )


def place_order(base: str) -> str:
    with httpx.Client(base_url=base, timeout=60) as client:
        page = client.get("/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        response = client.post(
            "/orders/", data={"sku": "widget", "quantity": "1", "csrfmiddlewaretoken": token}
        )
        assert response.status_code == 302, response.text[:2000]
        ref = response.headers["location"].rstrip("/").rsplit("/", 1)[1]
        detail = client.get(f"/orders/{ref}/")
        assert detail.status_code == 200, detail.text[:2000]
        return ref


@pytest.mark.timeout(300)
def test_startproject_sqlite_web_and_worker_at_once(project):
    tmp_path, db, env = project
    port = processes.free_port()
    web = spawn(env, tmp_path / "web.log", "runserver", "--noreload", f"127.0.0.1:{port}")
    worker = spawn(env, tmp_path / "worker.log", "durable_worker", "--executor-id", "shop-worker-1")
    base = f"http://127.0.0.1:{port}"
    try:

        def web_up() -> bool:
            try:
                return httpx.get(base + "/", timeout=5).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(web_up, timeout=60, what="runserver")
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=6) as pool:
            refs = list(pool.map(lambda _: place_order(base), range(ORDERS)))
        placing = time.monotonic() - started

        def statuses() -> dict[str, str]:
            with sqlite3.connect(db, timeout=30) as conn:
                return dict(
                    conn.execute(
                        "SELECT w.workflow_id, COALESCE(e.value, w.status) FROM "
                        "durable_workflows w LEFT JOIN durable_events e ON "
                        "e.workflow_id = w.workflow_id AND e.key = 'stage' "
                        "WHERE w.name = 'orders.workflows.checkout'"
                    ).fetchall()
                )

        def settled() -> bool:
            values = statuses().values()
            return len(values) == ORDERS and all(v in ('"shipped"', "ERROR") for v in values)

        try:
            wait_for(settled, timeout=90, what="every checkout shipped or failed")
        except AssertionError:
            from collections import Counter

            print(Counter(statuses().values()))
            print((tmp_path / "worker.log").read_text()[-5000:])
            print((tmp_path / "web.log").read_text()[-3000:])
            raise
        outcome = statuses()
        failed = [wid for wid, v in outcome.items() if v == "ERROR"]
        with sqlite3.connect(db, timeout=30) as conn:
            errors = conn.execute(
                "SELECT workflow_id, error FROM durable_workflows WHERE status = 'ERROR'"
            ).fetchall()
            orders = conn.execute("SELECT COUNT(*), COUNT(DISTINCT ref) FROM orders_order")
            count, distinct = orders.fetchone()
            stock = conn.execute("SELECT stock FROM orders_product").fetchone()[0]
        print(f"{ORDERS} orders placed in {placing:.1f}s; failed: {len(failed)}")
        assert not failed, errors[:3]
        assert sorted(f"checkout-{r}" for r in refs) == sorted(outcome)
        assert (count, distinct, stock) == (ORDERS, ORDERS, 1000 - ORDERS)
    finally:
        processes.stop(web, worker, timeout=30)
    assert worker.returncode == 0, (tmp_path / "worker.log").read_text()[-3000:]
    assert "database is locked" not in (tmp_path / "web.log").read_text()
