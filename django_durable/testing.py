"""Test a Django project's workflows with the test toolkit, in ``TestCase`` and
``TransactionTestCase``, without a worker.

The test engine (``durable_core.testing.TestEngine``) keeps its system tables in a database of
its own (a temporary SQLite file by default) and runs workflows in the test's own thread, so
their ``@transaction`` steps and ORM calls use the test's connection: inside a ``TestCase``
they see its data and are rolled back with it. It becomes the process's engine
(``django_durable.get_engine()``) for the duration, with virtual time, crash injection and
step stubs.

    from django_durable.testing import DurableTestCase

    class CheckoutTests(DurableTestCase):
        def test_checkout(self):
            self.client.post("/orders/", {"sku": "W-1"})
            self.durable.run_until_idle()        # runs it here; skips its waits

Or for every test of a run: ``TEST_RUNNER = "django_durable.testing.DurableTestRunner"``.
With pytest-django: ``with use_test_engine() as engine:`` in a fixture.

One difference from production: a workflow started inside ``transaction.atomic()`` does not
join that transaction (its row is in the test engine's own database), so a rollback does not
remove it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from django.test import TestCase, TransactionTestCase
from django.test.runner import DiscoverRunner

from durable_core.testing import TestEngine

from .conf import durable_settings
from .engine import set_engine
from .transactions import DjangoTransactions


class DjangoTestTransactions(DjangoTransactions):
    """``@transaction`` steps exactly as in production; starts never enlist in the caller's
    ``atomic()`` block, since the test engine's system tables are in another database."""

    def enlist(self, engine: Any) -> tuple[Any, Any]:
        return None, None


def make_test_engine(database_url: str | None = None, **options: Any) -> TestEngine:
    """A (not yet launched) ``TestEngine`` for this Django project: the ``DURABLE`` alias for
    ``@transaction`` steps, workflows run in the calling thread. ``options`` go to it."""
    conf = durable_settings()
    options.setdefault("run_in_caller", True)
    options.setdefault("transactions", DjangoTestTransactions(conf["DATABASE"]))
    return TestEngine(database_url, **options)


@contextlib.contextmanager
def use_test_engine(database_url: str | None = None, **options: Any) -> Iterator[TestEngine]:
    """Make a launched test engine the process's engine for the duration (a launched web
    engine is shut down first); afterwards the next use builds the usual lazy engine."""
    engine = make_test_engine(database_url, **options)
    engine.launch()
    set_engine(engine)  # type: ignore[arg-type]
    try:
        yield engine
    finally:
        engine.shutdown()
        set_engine(None)


class DurableTestMixin:
    """Gives each test ``self.durable``: a fresh test engine, the process's engine during the
    test. ``durable_engine_options`` (a dict) is passed to it."""

    durable_engine_options: dict[str, Any] = {}
    durable: TestEngine

    def setUp(self) -> None:
        super().setUp()  # type: ignore[misc]
        context = use_test_engine(**self.durable_engine_options)
        self.durable = context.__enter__()
        self.addCleanup(context.__exit__, None, None, None)  # type: ignore[attr-defined]


class DurableTestCase(DurableTestMixin, TestCase):
    """A ``TestCase`` (each test in a rolled-back transaction) with ``self.durable``."""


class DurableTransactionTestCase(DurableTestMixin, TransactionTestCase):
    """A ``TransactionTestCase`` (real commits, tables flushed after) with ``self.durable``."""


class DurableTestRunner(DiscoverRunner):
    """A test runner whose whole run uses one test engine (``django_durable.get_engine()``),
    so code under test runs its workflows without a worker. Per-test engines: use
    ``DurableTestCase`` instead."""

    def setup_databases(self, **kwargs: Any) -> Any:
        config = super().setup_databases(**kwargs)
        self._durable = use_test_engine()
        self._durable.__enter__()
        return config

    def teardown_databases(self, old_config: Any, **kwargs: Any) -> None:
        self._durable.__exit__(None, None, None)
        super().teardown_databases(old_config, **kwargs)
