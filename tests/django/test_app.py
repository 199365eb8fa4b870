"""Autodiscovery, and which commands launch an engine (none but the worker)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from durable_core.registry import REGISTRY
from durable_core.store.schema import CURRENT_VERSION

SHOP = Path(__file__).resolve().parents[2] / "example_projects" / "django_shop"


def test_workflows_modules_are_autodiscovered():
    assert "orders.workflows.checkout" in REGISTRY.workflows
    assert "tests.django.testapp.workflows.adder" in REGISTRY.workflows


def test_management_commands_launch_no_engine(tmp_path):
    db = tmp_path / "shop.sqlite3"
    env = {**os.environ, "SHOP_DATABASE_URL": f"sqlite:///{db}"}
    manage = [sys.executable, str(SHOP / "manage.py")]
    for command in (
        ["migrate", "-v0"],
        ["makemigrations", "--check", "--dry-run"],
        ["check"],
        ["shell", "-c", "import django_durable; django_durable.get_engine()"],
        ["collectstatic", "--noinput", "-v0"],
    ):
        extra = {"STATIC_ROOT": str(tmp_path / "static")} if command[0] == "collectstatic" else {}
        if extra:
            command = [
                "shell",
                "-c",
                f"from django.conf import settings; settings.STATIC_ROOT={extra['STATIC_ROOT']!r};"
                "from django.core.management import call_command; "
                "call_command('collectstatic', '--noinput', verbosity=0)",
            ]
        done = subprocess.run(manage + command, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
    with sqlite3.connect(db) as conn:
        # A launched engine registers its executor (heartbeat); none ever did.
        assert conn.execute("SELECT COUNT(*) FROM durable_executors").fetchone()[0] == 0
        assert (
            conn.execute("SELECT MAX(version) FROM durable_schema").fetchone()[0] == CURRENT_VERSION
        )
