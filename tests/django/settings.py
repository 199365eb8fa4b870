"""Settings for the Django tests. ``DURABLE_DJANGO_DB=sqlite|postgres`` picks the backend.

Used in-process by conftest.py and by the worker subprocesses of the process tests (which
get the test database's name through ``DURABLE_DJANGO_DB_NAME``).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[2]
SHOP = ROOT / "example_projects" / "django_shop"
HELPDESK = ROOT / "example_projects" / "django_agent"  # its `support` app (an agent view)
for _example in (SHOP, HELPDESK):
    if str(_example) not in sys.path:
        sys.path.insert(0, str(_example))

BACKEND = os.environ.get("DURABLE_DJANGO_DB", "sqlite")
NAME_OVERRIDE = os.environ.get("DURABLE_DJANGO_DB_NAME")  # set for worker subprocesses
RUN_DIR = Path(os.environ.get("DURABLE_DJANGO_RUN_DIR") or tempfile.mkdtemp(prefix="dj-durable-"))
os.environ.setdefault("DURABLE_DJANGO_RUN_DIR", str(RUN_DIR))

if BACKEND == "postgres":
    pg = urlsplit(
        os.environ.get("DURABLE_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
    )
    test_name = f"test_django_durable_{os.getpid()}"
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": NAME_OVERRIDE or pg.path.lstrip("/") or "postgres",
            "USER": pg.username or "postgres",
            "PASSWORD": pg.password or "",
            "HOST": pg.hostname or "127.0.0.1",
            "PORT": str(pg.port or 5432),
            "TEST": {"NAME": test_name},
        }
    }
    # A second database, for @transaction(using="other") (tests/django/test_using.py).
    DATABASES["other"] = {
        **DATABASES["default"],
        "NAME": DATABASES["default"]["NAME"],
        "TEST": {"NAME": f"django_lane_other_{os.getpid()}"},
    }
elif BACKEND == "sqlite":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": NAME_OVERRIDE or str(RUN_DIR / "app.sqlite3"),
            "OPTIONS": {"timeout": 30, "transaction_mode": "IMMEDIATE"},
            "TEST": {"NAME": str(RUN_DIR / "test.sqlite3")},
        },
        # A second database, for @transaction(using="other") (tests/django/test_using.py).
        "other": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(RUN_DIR / "other.sqlite3"),
            "OPTIONS": {"timeout": 30, "transaction_mode": "IMMEDIATE"},
            "TEST": {"NAME": str(RUN_DIR / "test-other.sqlite3")},
        },
    }
else:
    raise RuntimeError(f"DURABLE_DJANGO_DB must be sqlite or postgres, not {BACKEND!r}")

SECRET_KEY = "tests-only"
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True
TIME_ZONE = "UTC"
ROOT_URLCONF = "tests.django.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_durable",
    "orders",
    "support",
    "tests.django.testapp",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
STATIC_URL = "/static/"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# The test process registers more workflows than a worker subprocess does (test apps), so the
# default digest-of-source version would differ between them: pin it, as a deployment whose
# processes register different sets of workflows should.
DURABLE = {"DATABASE": "default", "APPLICATION_VERSION": "tests"}
# QUEUES: [] accepts any queue name (a task queue must still be served: see test_tasks_contract).
TASKS = {"default": {"BACKEND": "django_durable.tasks.DurableBackend", "QUEUES": []}}
SHOP_PAYMENT_FAILURES = int(os.environ.get("SHOP_PAYMENT_FAILURES", "0"))
SHOP_SHIP_DELAY = float(os.environ.get("SHOP_SHIP_DELAY", "0"))
