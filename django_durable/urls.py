"""URLs of django_durable's operational endpoints: ``path("durable/", include("django_durable.urls"))``."""

from __future__ import annotations

from django.urls import path

from .health import live_view, ready_view
from .metrics import metrics_view

app_name = "django_durable"

urlpatterns = [
    path("metrics", metrics_view, name="metrics"),
    path("health/live", live_view, name="health-live"),
    path("health/ready", ready_view, name="health-ready"),
]
