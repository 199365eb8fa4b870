"""The Django app: system checks, autodiscovery of ``workflows.py``, the lazy engine."""

from __future__ import annotations

from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules


class DurableConfig(AppConfig):
    name = "django_durable"
    label = "django_durable"
    verbose_name = "Durable workflows"
    default_auto_field = "django.db.models.AutoField"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the checks)
        from .engine import get_engine

        autodiscover_modules("workflows")
        try:
            # Built, not launched: module-level start_workflow()/enqueue() then find it and
            # launch it at first use. Nothing touches the database here.
            get_engine()
        except Exception:  # a bad DURABLE setting is reported by the system checks
            pass
