"""Settings for the shop example.

``SHOP_DATABASE_URL`` picks the database: ``sqlite:///shop.sqlite3`` (the default) or
``postgresql://user:password@host:5432/shop``.
"""

import os
from pathlib import Path
from urllib.parse import urlsplit

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = os.environ.get("SHOP_SECRET_KEY", "example-only-not-secret")
DEBUG = os.environ.get("SHOP_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["*"]


def _database(url: str) -> dict:
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        name = url.split("://", 1)[1].removeprefix("/") or BASE_DIR / "shop.sqlite3"
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": name,
            # IMMEDIATE transactions and a busy timeout let the web process and the worker
            # share the file without "database is locked" errors.
            "OPTIONS": {"timeout": 30, "transaction_mode": "IMMEDIATE"},
            # `manage.py test` on a file too (durable workflows refuse in-memory SQLite).
            "TEST": {"NAME": f"{name}.test.sqlite3"},
        }
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": parts.path.lstrip("/"),
        "USER": parts.username or "",
        "PASSWORD": parts.password or "",
        "HOST": parts.hostname or "",
        "PORT": str(parts.port or ""),
    }


DATABASES = {"default": _database(os.environ.get("SHOP_DATABASE_URL", "sqlite:///shop.sqlite3"))}

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_durable",
    "orders",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
ROOT_URLCONF = "shop.urls"
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
WSGI_APPLICATION = "shop.wsgi.application"
USE_TZ = True
TIME_ZONE = "UTC"
STATIC_URL = "static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Workflows live in the same database as the orders. Web processes serve no queue; run
# `manage.py durable_worker` to process checkouts.
DURABLE = {"DATABASE": "default", "EXECUTOR_ID": os.environ.get("SHOP_EXECUTOR_ID")}

# Test hooks: fail the payment provider N times, slow down shipping.
SHOP_PAYMENT_FAILURES = int(os.environ.get("SHOP_PAYMENT_FAILURES", "0"))
SHOP_SHIP_DELAY = float(os.environ.get("SHOP_SHIP_DELAY", "0"))
