"""`manage.py test` (Django's own runner) with workflows running: it exits 0, the test
database is dropped although engines were running on it (PostgreSQL refuses to drop a
database with open connections), and the documented TestCase/TransactionTestCase recipe
works. Runs on the backend DURABLE_DJANGO_DB names."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[2]
SHOP = ROOT / "example_projects" / "django_shop"


def test_manage_py_test_runs_the_recipe_and_exits_0(tmp_path):
    backend = os.environ.get("DURABLE_DJANGO_DB", "sqlite")
    if backend == "postgres":
        pg = urlsplit(
            os.environ.get("DURABLE_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
        )
        database = {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": pg.path.lstrip("/") or "postgres",
            "USER": pg.username or "postgres",
            "PASSWORD": pg.password or "",
            "HOST": pg.hostname or "127.0.0.1",
            "PORT": str(pg.port or 5432),
            "TEST": {"NAME": f"django_lane_manage_test_{os.getpid()}"},
        }
    else:
        database = {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(tmp_path / "db.sqlite3"),
            "TEST": {"NAME": str(tmp_path / "test.sqlite3")},
        }
    (tmp_path / "recipe_settings.py").write_text(
        textwrap.dedent(
            f"""
            from shop.settings import *  # noqa: F403

            DATABASES = {{"default": {database!r}}}
            """
        )
    )
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("DURABLE_")},
        "DJANGO_SETTINGS_MODULE": "recipe_settings",
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(SHOP), str(ROOT)]),
    }
    done = subprocess.run(
        [
            sys.executable,
            str(SHOP / "manage.py"),
            "test",
            "tests.django.recipe.recipe_tests",
            "-v",
            "2",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    output = done.stdout + done.stderr
    assert "Ran 2 tests" in output, output[-4000:]
    assert "OK" in output, output[-4000:]
    assert "being accessed by other users" not in output, output[-4000:]
    assert done.returncode == 0, output[-4000:]
