"""Liveness and readiness views for container probes (mounted by ``django_durable.urls`` as
``health/live`` and ``health/ready``).

Liveness answers without touching the database, so that a database outage does not make the
orchestrator restart every web process; readiness checks that the system database is
reachable and migrated (503 otherwise)."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from durable_core.integration import health_check

__all__ = ["live_view", "ready_view"]


@require_GET
def live_view(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@require_GET
def ready_view(request: HttpRequest) -> JsonResponse:
    from . import get_engine

    report = health_check(get_engine().store)
    return JsonResponse(report.as_dict(), status=200 if report.ok else 503)
