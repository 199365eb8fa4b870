"""The Django app: system checks, autodiscovery of ``workflows.py``, the lazy engine."""

from __future__ import annotations

from django.apps import AppConfig
from django.core.signals import request_started
from django.utils.module_loading import autodiscover_modules


class DurableConfig(AppConfig):
    name = "django_durable"
    label = "django_durable"
    verbose_name = "Durable workflows"
    default_auto_field = "django.db.models.AutoField"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the checks)
        from .conf import durable_settings
        from .database import apply_sqlite_defaults
        from .engine import get_engine, launch_at_request_start

        alias = durable_settings()["DATABASE"]
        if isinstance(alias, str):  # else a check reports it
            apply_sqlite_defaults(alias)

        try:
            # Built, not launched: module-level start_workflow()/enqueue() then find it and
            # launch it at first use. Nothing touches the database here. Built before the
            # discovery below, so that a call at import time gets the engine's own error
            # (see DjangoEngine) rather than "no engine is running".
            get_engine()
        except Exception:  # a bad DURABLE setting is reported by the system checks
            pass

        # Web processes and durable_worker must register the same workflows, or their default
        # application versions (a digest of the registered workflows) would differ and
        # workers would not take what web processes enqueue. So every process imports both
        # workflows.py and tasks.py modules, and the task backend's own workflow.
        autodiscover_modules("workflows")
        autodiscover_modules("tasks")
        self._declare_queues()
        request_started.connect(launch_at_request_start, dispatch_uid="django_durable.launch")

    @staticmethod
    def _declare_queues() -> None:
        """Instantiate the durable task backends: each declares its ``QUEUES``, so that a
        worker serves them even when no module it imports defines a task on them (a task may
        live in a module only the web process imports). After the discovery above, so that
        a module's own ``Queue(...)`` (with limits) is the one declared."""
        try:
            from . import tasks  # registers the workflow that runs Django tasks
        except ImportError:  # neither django.tasks (Django 6) nor the django-tasks backport
            return
        try:
            tasks.durable_backends()
        except Exception:  # a bad TASKS setting is reported by Django's checks
            pass
