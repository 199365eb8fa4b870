"""The ``DURABLE`` setting, with its defaults filled in."""

from __future__ import annotations

from typing import Any

from django.conf import settings

DEFAULTS: dict[str, Any] = {
    "DATABASE": "default",
    "EXECUTOR_ID": None,
    "APPLICATION_VERSION": None,
    "QUEUES": None,
    # {"lock": seconds, "idle": seconds} for @transaction steps on PostgreSQL (see
    # durable_core.transactions.TransactionTimeouts); None: 10 s and 60 s.
    "TRANSACTION_TIMEOUTS": None,
}


def durable_settings() -> dict[str, Any]:
    """``settings.DURABLE`` merged over the defaults (validated by the system checks)."""
    configured = getattr(settings, "DURABLE", None) or {}
    if not isinstance(configured, dict):
        return dict(DEFAULTS)
    return {**DEFAULTS, **configured}


def database_alias() -> str:
    return durable_settings()["DATABASE"]
