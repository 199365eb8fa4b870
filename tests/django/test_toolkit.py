"""The Django wiring of the test toolkit: the shop example's own test suite (TestCase and
TransactionTestCase on ``django_durable.testing``) runs here under pytest-django, and again
through ``manage.py test``, with and without the test runner option. No worker anywhere."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from orders.tests import CheckoutTests, CommittedCheckoutTests  # noqa: F401  (collected here)

ROOT = Path(__file__).resolve().parents[2]
SHOP = ROOT / "example_projects" / "django_shop"


def manage_test(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DJANGO_SETTINGS_MODULE": "shop.settings"}
    if os.environ.get("DURABLE_DJANGO_DB") == "postgres":
        env["SHOP_DATABASE_URL"] = (
            f"postgresql://postgres@127.0.0.1:5432/testing_shop_{os.getpid()}"
        )
    else:
        env["SHOP_DATABASE_URL"] = f"sqlite:///{tmp_path / 'shop.sqlite3'}"
    return subprocess.run(
        [sys.executable, "manage.py", "test", "--noinput", *args],
        cwd=SHOP,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize("runner", [None, "django_durable.testing.DurableTestRunner"])
def test_manage_py_test(tmp_path, runner):
    labels = ["orders"] if runner is None else ["tests.django.runner_suite"]
    options = [] if runner is None else ["--testrunner", runner]
    run = manage_test(tmp_path, *labels, *options)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "OK" in run.stderr
