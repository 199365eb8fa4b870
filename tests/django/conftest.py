"""Django tests: settings configured here (no pytest.ini), so plain ``pytest`` keeps working
for the other test directories. ``DURABLE_DJANGO_DB=sqlite|postgres`` picks the backend:

    DURABLE_DJANGO_DB=sqlite   python -m pytest tests/django -p pytest_django
    DURABLE_DJANGO_DB=postgres python -m pytest tests/django -p pytest_django
"""

from __future__ import annotations

import uuid

import django
import pytest
from django.conf import settings

from tests.waiting import wait_for  # noqa: F401  (the suite imports it from here)

if not settings.configured:
    from tests.django import settings as test_settings

    settings.configure(**{k: v for k, v in vars(test_settings).items() if k.isupper()})
    django.setup()


@pytest.fixture(autouse=True, scope="session")
def _engines_stop_before_teardown(django_db_setup, django_db_blocker):
    """Shut the engines down before pytest-django drops the test database."""
    yield
    from django_durable.engine import get_engine, set_engine

    engine = get_engine()
    if engine.launched:
        engine.shutdown(timeout=5)
    set_engine(None)


@pytest.fixture
def web_engine(transactional_db):
    """The process's lazy engine (as in a web process), launched on the test database."""
    import django_durable
    from durable_core import set_default_engine

    engine = django_durable.get_engine()
    engine.launch()
    set_default_engine(engine)  # core tests in the same run may have reset the default
    return engine


@pytest.fixture
def worker(web_engine):
    """An in-process worker engine serving every queue, like ``durable_worker``."""
    from django_durable.engine import build_engine

    engine = build_engine(
        worker=True, executor_id=f"test-worker-{uuid.uuid4().hex[:6]}", run_scheduler=False
    )
    engine.launch()
    yield engine
    engine.shutdown(timeout=5)
