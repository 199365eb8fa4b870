"""Settings for the helpdesk example (a Pydantic AI agent answering support tickets).

``HELPDESK_DATABASE_URL`` picks the database: ``sqlite:///helpdesk.sqlite3`` (the default) or
``postgresql://user:password@host:5432/helpdesk``. ``AGENT_MODEL`` names a Pydantic AI model
(``openai:gpt-4o``); unset, a scripted model that needs no network answers.
"""

import os
from pathlib import Path
from urllib.parse import urlsplit

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = os.environ.get("HELPDESK_SECRET_KEY", "example-only-not-secret")
DEBUG = os.environ.get("HELPDESK_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["*"]


def _database(url: str) -> dict:
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        name = url.split("://", 1)[1].removeprefix("/") or BASE_DIR / "helpdesk.sqlite3"
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": name,
            # IMMEDIATE transactions and a busy timeout let the web process and the worker
            # share the file without "database is locked" errors.
            "OPTIONS": {"timeout": 30, "transaction_mode": "IMMEDIATE"},
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


DATABASES = {
    "default": _database(os.environ.get("HELPDESK_DATABASE_URL", "sqlite:///helpdesk.sqlite3"))
}

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_durable",
    "support",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
ROOT_URLCONF = "helpdesk.urls"
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
WSGI_APPLICATION = "helpdesk.wsgi.application"
USE_TZ = True
TIME_ZONE = "UTC"
STATIC_URL = "static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Workflows live in the same database as the tickets. Web processes serve no queue; run
# `manage.py durable_worker` to answer tickets.
DURABLE = {"DATABASE": "default", "EXECUTOR_ID": os.environ.get("HELPDESK_EXECUTOR_ID")}
