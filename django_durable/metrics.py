"""``metrics_view``: the Prometheus exposition of this process's engine (counters kept in
memory, queue backlog and executors read from the system database on each scrape).

Mount it with ``path("durable/", include("django_durable.urls"))`` (``durable/metrics``) or
route to the view yourself; guard it as you guard other internal endpoints. Needs the
``prometheus-client`` package (extra ``metrics``)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET

from durable_core.integration import METRICS_CONTENT_TYPE, metrics_exposition

__all__ = ["metrics_view"]


@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    from . import get_engine

    engine = get_engine()
    return HttpResponse(metrics_exposition(engine.store), content_type=METRICS_CONTENT_TYPE)
