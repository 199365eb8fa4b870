"""The first-run path: DEBUG=True, the first use of the engine inside atomic(), and the
SQLite settings a fresh ``startproject`` has."""

from __future__ import annotations

import uuid

import pytest
from django.db import connection, transaction
from orders.models import Product

from tests.django.testapp import workflows as wf


@pytest.fixture
def debug(settings):
    """DEBUG=True: Django wraps cursors in its debug cursor, which formats ``sql % params``."""
    settings.DEBUG = True
    yield
    settings.DEBUG = False


def test_start_and_enqueue_inside_atomic_with_debug_cursor(web_engine, debug):
    sku = f"dbg-{uuid.uuid4().hex[:8]}"
    with transaction.atomic():
        Product.objects.create(sku=sku, name=sku, price_cents=1, stock=1)
        started = web_engine.start_workflow(wf.adder, 1, 2)
        enqueued = wf.test_queue.enqueue(wf.adder, 3, 4)
        assert connection.queries  # the debug cursor logged the statements
    assert started.result(timeout=20) == 3
    assert enqueued.status().status == "ENQUEUED"


def test_first_use_inside_atomic_on_sqlite_is_refused_not_hung(transactional_db):
    """A lazy engine first used inside atomic() on SQLite cannot launch there (the launch
    would wait for the write lock its own thread holds): a clear error, at once. On
    PostgreSQL it launches there and the workflow runs after the commit."""
    from django_durable.engine import LaunchInTransaction, build_engine

    engine = build_engine(executor_id=f"lazy-{uuid.uuid4().hex[:6]}")
    try:
        if connection.vendor == "sqlite":
            with pytest.raises(LaunchInTransaction, match="launch\\(\\) first"):
                with transaction.atomic():
                    Product.objects.create(sku=uuid.uuid4().hex[:8], name="x", price_cents=1)
                    engine.start_workflow(wf.adder, 1, 2)
            assert not engine.launched
        with transaction.atomic():
            Product.objects.create(sku=uuid.uuid4().hex[:8], name="x", price_cents=1)
            if connection.vendor == "sqlite":
                with pytest.raises(LaunchInTransaction):
                    engine.start_workflow(wf.adder, 1, 2)
            else:
                handle = engine.start_workflow(wf.adder, 1, 2)
        if connection.vendor == "sqlite":
            engine.launch()  # outside the transaction: fine
            with transaction.atomic():
                handle = engine.start_workflow(wf.adder, 1, 2)
        assert handle.result(timeout=20) == 3
    finally:
        engine.shutdown(timeout=5)


def test_web_request_launches_the_engine_before_the_view_transaction(
    transactional_db, client, monkeypatch
):
    """On SQLite the web process's engine starts when a request starts, so the shop's first
    order (an enqueue inside atomic()) works instead of hanging."""
    import django_durable.engine as engine_module
    from django_durable.engine import build_engine

    Product.objects.create(sku="first", name="First", price_cents=5, stock=3)
    engine = build_engine(executor_id=f"web-{uuid.uuid4().hex[:6]}")
    monkeypatch.setattr(engine_module, "_engine", engine)
    from durable_core import set_default_engine

    set_default_engine(engine)
    try:
        response = client.post("/orders/", {"sku": "first", "quantity": 1})
        assert response.status_code == 302
        assert engine.launched
        ref = response.url.rstrip("/").rsplit("/", 1)[1]
        assert engine.retrieve_workflow(f"checkout-{ref}").status().status == "ENQUEUED"
    finally:
        engine.shutdown(timeout=5)
        set_default_engine(None)


def test_unmigrated_database_is_a_clear_error_before_any_workflow(transactional_db):
    from django_durable.engine import build_engine, check_migrated
    from durable_core.errors import SchemaVersionError

    class Undo(Exception):
        pass

    with pytest.raises(Undo), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                "DELETE FROM django_migrations WHERE app = 'django_durable' "
                "AND name = '0003_consumed_messages'"
            )
        with pytest.raises(SchemaVersionError, match="0003_consumed_messages.*manage.py migrate"):
            check_migrated("default")
        engine = build_engine(executor_id=f"unmigrated-{uuid.uuid4().hex[:6]}")
        if connection.vendor == "postgresql":  # (on SQLite: refused in a transaction anyway)
            with pytest.raises(SchemaVersionError):
                engine.start_workflow(wf.adder, 1, 2)
            assert not engine.launched
        raise Undo
    check_migrated("default")  # migrated again once the transaction rolled back


def test_never_migrated_project_creates_no_tables_and_says_migrate(tmp_path):
    import os
    import sqlite3
    import subprocess
    import sys
    from pathlib import Path

    shop = Path(__file__).resolve().parents[2] / "example_projects" / "django_shop"
    db = tmp_path / "fresh.sqlite3"
    env = {
        **{k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"},
        "SHOP_DATABASE_URL": f"sqlite:///{db}",
    }
    code = "from orders.workflows import checkout, checkouts; checkouts.enqueue(checkout, 'r', 's', 1, 1)"
    done = subprocess.run(
        [sys.executable, str(shop / "manage.py"), "shell", "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "0001_initial" in done.stderr and "manage.py migrate" in done.stderr
    with sqlite3.connect(db) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    assert not [t for t in tables if t.startswith("durable_")]


def test_a_call_at_import_time_says_what_to_do_instead(tmp_path):
    """A module that enqueues at import time (found by the app's discovery) gets an error
    that tells a Django user where to make the call, not "create an Engine(...)"."""
    import os
    import subprocess
    import sys
    import textwrap
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    app = tmp_path / "eager"
    app.mkdir()
    (app / "__init__.py").write_text("")
    (app / "workflows.py").write_text(
        textwrap.dedent(
            """
            from durable_core import workflow, start_workflow

            @workflow
            def hello():
                return "hi"

            start_workflow(hello)
            """
        )
    )
    (tmp_path / "eager_settings.py").write_text(
        textwrap.dedent(
            f"""
            SECRET_KEY = "x"
            INSTALLED_APPS = ["django_durable", "eager"]
            DATABASES = {{"default": {{"ENGINE": "django.db.backends.sqlite3",
                                       "NAME": {str(tmp_path / "db.sqlite3")!r}}}}}
            """
        )
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "eager_settings",
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(root)]),
    }
    done = subprocess.run(
        [sys.executable, "-m", "django", "check"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "while Django was still loading its apps" in done.stderr
    assert "durable_core.errors.EngineNotRunning" in done.stderr
    assert "create an Engine" not in done.stderr
