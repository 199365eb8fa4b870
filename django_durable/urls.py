"""URLs of django_durable's operational endpoints: ``path("durable/", include("django_durable.urls"))``."""

from __future__ import annotations

from django.urls import path

from .metrics import metrics_view

app_name = "django_durable"

urlpatterns = [
    path("metrics", metrics_view, name="metrics"),
]
