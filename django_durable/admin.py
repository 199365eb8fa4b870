"""The admin as the workflow dashboard: list, detail with the step timeline, actions, queues."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from .models import Workflow, ms_to_datetime


def pretty(data: str | None) -> str:
    """A stored (JSON) value, indented for reading; other encodings shown as they are."""
    if data is None:
        return ""
    try:
        return json.dumps(json.loads(data), indent=2, sort_keys=True, ensure_ascii=False)
    except (TypeError, ValueError):
        return data


@admin.register(Workflow)
class WorkflowAdmin(admin.ModelAdmin):
    list_display = ["workflow_id", "name", "status_badge", "queue_name", "created", "duration_text"]
    list_filter = ["status", "name", "queue_name"]
    search_fields = ["=workflow_id", "workflow_id__startswith"]
    list_per_page = 50
    actions = ["cancel_workflows", "resume_workflows", "fork_workflows"]
    change_form_template = "admin/django_durable/workflow/change_form.html"
    change_list_template = "admin/django_durable/workflow/change_list.html"
    fields = [
        "workflow_id",
        "name",
        "status",
        "queue_name",
        "executor_id",
        "application_version",
        "recovery_attempts",
        "priority",
        "deduplication_id",
        "created",
        "finished",
        "duration_text",
        "parent_link",
    ]
    readonly_fields = fields

    # Workflows are created by code, not by hand; the admin reads and acts.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_cancel_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("django_durable.cancel_workflow")

    def has_resume_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("django_durable.resume_workflow")

    def has_fork_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("django_durable.fork_workflow")

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj: Workflow) -> str:
        colour = {
            "SUCCESS": "#2e7d32",
            "ERROR": "#c62828",
            "MAX_RECOVERY_ATTEMPTS_EXCEEDED": "#c62828",
            "CANCELLED": "#757575",
            "PENDING": "#1565c0",
            "ENQUEUED": "#6a1b9a",
        }.get(obj.status, "#333")
        return format_html('<b style="color:{}">{}</b>', colour, obj.status)

    @admin.display(description="created", ordering="created_at")
    def created(self, obj: Workflow) -> Any:
        return ms_to_datetime(obj.created_at)

    @admin.display(description="finished", ordering="finished_at")
    def finished(self, obj: Workflow) -> Any:
        return ms_to_datetime(obj.finished_at)

    @admin.display(description="duration")
    def duration_text(self, obj: Workflow) -> str:
        duration = obj.duration
        return "-" if duration is None else f"{duration.total_seconds():.3f} s"

    @admin.display(description="parent")
    def parent_link(self, obj: Workflow) -> str:
        if not obj.parent_workflow_id:
            return "-"
        url = reverse("admin:django_durable_workflow_change", args=[obj.parent_workflow_id])
        return format_html('<a href="{}">{}</a>', url, obj.parent_workflow_id)

    # -- detail page ---------------------------------------------------------------------

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        extra_context = extra_context or {}
        obj = self.get_object(request, object_id)
        if obj is not None:
            extra_context.update(self._detail_context(request, obj))
        return super().change_view(request, object_id, form_url, extra_context)

    def _detail_context(self, request: HttpRequest, obj: Workflow) -> dict:
        steps = []
        for step in obj.steps:
            steps.append(
                {
                    "step_id": step.step_id,
                    "name": step.name,
                    "output": pretty(step.output),
                    "error": pretty(step.error),
                    "started": ms_to_datetime(step.started_at),
                    "duration": step.duration,
                    "child_url": reverse(
                        "admin:django_durable_workflow_change", args=[step.child_workflow_id]
                    )
                    if step.child_workflow_id
                    else None,
                    "child_workflow_id": step.child_workflow_id,
                }
            )
        children = [
            (c, reverse("admin:django_durable_workflow_change", args=[c.workflow_id]))
            for c in obj.children
        ]
        return {
            "durable_steps": steps,
            "durable_inputs": pretty(obj.inputs),
            "durable_output": pretty(obj.output),
            "durable_error": pretty(obj.error),
            "durable_children": children,
            "can_cancel": self.has_cancel_permission(request),
            "can_resume": self.has_resume_permission(request),
            "can_fork": self.has_fork_permission(request),
        }

    # -- actions -------------------------------------------------------------------------

    def _act(self, request: HttpRequest, queryset: Any, verb: str, fn: Any) -> None:
        done, failed = 0, []
        for workflow_id in queryset.values_list("workflow_id", flat=True):
            try:
                fn(workflow_id)
                done += 1
            except Exception as exc:  # one bad workflow must not hide the others' outcome
                failed.append(f"{workflow_id}: {exc}")
        if done:
            self.message_user(request, f"{verb} {done} workflow(s).", messages.SUCCESS)
        for failure in failed:
            self.message_user(request, failure, messages.ERROR)

    @admin.action(description="Cancel selected workflows", permissions=["cancel"])
    def cancel_workflows(self, request: HttpRequest, queryset: Any) -> None:
        engine = _engine()
        self._act(request, queryset, "Cancelled", engine.cancel_workflow)

    @admin.action(description="Resume selected workflows", permissions=["resume"])
    def resume_workflows(self, request: HttpRequest, queryset: Any) -> None:
        engine = _engine()
        self._act(request, queryset, "Resumed", engine.resume_workflow)

    @admin.action(description="Fork selected workflows (re-run from step 1)", permissions=["fork"])
    def fork_workflows(self, request: HttpRequest, queryset: Any) -> None:
        engine = _engine()
        self._act(request, queryset, "Forked", lambda wid: engine.fork_workflow(wid, 1))

    # -- queue overview ------------------------------------------------------------------

    def get_urls(self) -> list:
        return [
            path(
                "queues/",
                self.admin_site.admin_view(self.queues_view),
                name="django_durable_workflow_queues",
            ),
            *super().get_urls(),
        ]

    def queues_view(self, request: HttpRequest) -> HttpResponse:
        from durable_core.integration import REGISTRY

        engine = _engine()
        counts: dict[str, dict[str, int]] = {}
        for queue_name, status, count in engine.store.queue_counts():
            counts.setdefault(queue_name, {})[status] = count
        rows = []
        for name in sorted(set(counts) | set(REGISTRY.queues)):
            queue = REGISTRY.queues.get(name)
            rows.append(
                {
                    "name": name,
                    "running": counts.get(name, {}).get("PENDING", 0),
                    "enqueued": counts.get(name, {}).get("ENQUEUED", 0),
                    "concurrency": getattr(queue, "concurrency", None),
                    "worker_concurrency": getattr(queue, "worker_concurrency", None),
                    "rate_limit": getattr(queue, "rate_limit", None),
                    "declared": queue is not None,
                }
            )
        context = {
            **self.admin_site.each_context(request),
            "title": "Durable queues",
            "opts": self.model._meta,
            "queues": rows,
        }
        return TemplateResponse(request, "admin/django_durable/queues.html", context)


def _engine() -> Any:
    from .engine import get_engine

    return get_engine()
