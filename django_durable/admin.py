"""The admin as the workflow dashboard: the workflow list; a detail page with the step
timeline, what a waiting workflow waits for, events, messages, streams and tracebacks; action
buttons behind confirmation pages; queues, executors and schedules pages.

Actions go through a ``Client``: cancel, resume and fork change rows and hand the work to the
workers, never run a workflow in the web process. Each leaves a ``LogEntry``.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.options import csrf_protect_m
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from durable_core.integration import database_time_sql, read_wait_mark

from .models import (
    Event,
    Executor,
    Notification,
    Schedule,
    Step,
    StreamEntry,
    Workflow,
    ms_to_datetime,
)

RUN_TASK = "django_durable.tasks.run_task"
INTERNAL_QUEUE = "_durable_internal"
WAIT_STEPS = {
    "durable.sleep": "sleep",
    "durable.recv": "receive a message",
    "durable.get_event": "wait for an event",
}
STATUS_COLOURS = {
    "SUCCESS": "#2e7d32",
    "ERROR": "#c62828",
    "MAX_RECOVERY_ATTEMPTS_EXCEEDED": "#c62828",
    "CANCELLED": "#757575",
    "PENDING": "#1565c0",
    "ENQUEUED": "#6a1b9a",
}


def pretty(data: str | None) -> str:
    """A stored (JSON) value, indented for reading; other encodings shown as they are."""
    if data is None:
        return ""
    try:
        return json.dumps(json.loads(data), indent=2, sort_keys=True, ensure_ascii=False)
    except (TypeError, ValueError):
        return data


def _loads(data: str | None) -> Any:
    try:
        return json.loads(data) if data is not None else None
    except (TypeError, ValueError):
        return data


def error_parts(data: str | None) -> dict[str, Any] | None:
    """A stored error as {"summary": "Type: message", "traceback": ...}."""
    if not data:
        return None
    payload = _loads(data)
    if not isinstance(payload, dict):
        return {"summary": str(data), "traceback": ""}
    kind = str(payload.get("type", "Exception")).replace(":", ".")
    summary = f"{kind}: {payload.get('message', '')}"
    last = (payload.get("attrs") or {}).get("last_error")
    if isinstance(last, dict) and isinstance(last.get("v"), dict):
        inner = last["v"]
        summary += f" (last error: {inner.get('type', '')}: {inner.get('message', '')})"
        return {"summary": summary, "traceback": inner.get("traceback") or ""}
    return {"summary": summary, "traceback": payload.get("traceback") or ""}


def _when(ms: float | None) -> str:
    """An epoch-milliseconds time as a readable local time."""
    moment = ms_to_datetime(int(ms)) if ms is not None else None
    return "" if moment is None else timezone.localtime(moment).strftime("%Y-%m-%d %H:%M:%S %Z")


def _duration_text(delta: dt.timedelta | None) -> str:
    if delta is None:
        return ""
    seconds = delta.total_seconds()
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.2f} s"
    return str(dt.timedelta(seconds=round(seconds)))


def database_now_ms() -> int:
    """Now by the database's clock (epoch ms), the clock every stored time is written by:
    one statement on the DURABLE alias, never this host's ``time.time()`` (the one-clock rule,
    see ``durable_core.clock``)."""
    from django.db import connections

    from .conf import database_alias

    connection = connections[database_alias()]
    with connection.cursor() as cursor:
        cursor.execute(database_time_sql(connection.vendor))
        return int(cursor.fetchone()[0])


def _client() -> Any:
    from durable_core import Client

    from .conf import database_alias
    from .database import database_url

    return Client(database_url(database_alias()))


QUEUE_ACTIONS = ("pause", "resume", "reset", "limits")
UNCHANGED = object()


def parse_queue_limit(key: str, text: str) -> Any:
    """A limit from the queues page's form: blank leaves it, ``none`` lifts it; a number
    (``concurrency``, ``worker_concurrency``) or ``N/SECONDS`` (``rate_limit``) sets it."""
    text = text.strip().lower()
    if not text:
        return UNCHANGED
    if text == "none":
        return None
    try:
        if key == "rate_limit":
            n, _, period = text.partition("/")
            return (int(n), float(period.rstrip("s") or "nan"))
        return int(text)
    except ValueError:
        wanted = "N/SECONDS (10/1)" if key == "rate_limit" else "a positive integer"
        raise ValueError(f"{key} must be {wanted} or none, not {text!r}") from None


def task_name(obj: Workflow) -> str | None:
    """The Django task a ``run_task`` workflow runs (its first argument)."""
    if obj.name != RUN_TASK:
        return None
    inputs = _loads(obj.inputs)
    args = inputs.get("args") if isinstance(inputs, dict) else None
    return args[0] if isinstance(args, list) and args and isinstance(args[0], str) else None


@admin.register(Workflow)
class WorkflowAdmin(admin.ModelAdmin):
    list_display = ["id_text", "name_text", "status_badge", "queue_name", "created", "duration"]
    list_filter = ["status", "name", "queue_name"]
    search_fields = ["=workflow_id", "workflow_id__startswith"]
    list_per_page = 50
    actions = ["cancel_workflows", "resume_workflows", "fork_workflows"]
    change_form_template = "admin/django_durable/workflow/change_form.html"
    change_list_template = "admin/django_durable/workflow/change_list.html"
    fields: list[str] = []

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

    # -- list ----------------------------------------------------------------------------

    @admin.display(description="workflow ID", ordering="workflow_id")
    def id_text(self, obj: Workflow) -> str:
        return format_html('<code class="durable-id">{}</code>', obj.workflow_id)

    @admin.display(description="name", ordering="name")
    def name_text(self, obj: Workflow) -> str:
        task = task_name(obj)
        return format_html("task {}", task) if task else obj.name

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj: Workflow) -> str:
        colour = STATUS_COLOURS.get(obj.status, "#333")
        return format_html('<b style="color:{}">{}</b>', colour, obj.status)

    @admin.display(description="created", ordering="created_at")
    def created(self, obj: Workflow) -> Any:
        return ms_to_datetime(obj.created_at)

    @admin.display(description="duration")
    def duration(self, obj: Workflow) -> str:
        if obj.finished_at is None and obj.status in ("PENDING", "ENQUEUED"):
            return "running" if obj.status == "PENDING" else "-"
        return _duration_text(obj.duration) or "-"

    # -- detail page ---------------------------------------------------------------------

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        extra_context = extra_context or {}
        obj = self.get_object(request, object_id)
        if obj is not None:
            extra_context.update(self._detail_context(request, obj))
            extra_context["title"] = task_name(obj) or obj.name
        return super().change_view(request, object_id, form_url, extra_context)

    def _detail_context(self, request: HttpRequest, obj: Workflow) -> dict[str, Any]:
        recorded = list(Step.objects.filter(workflow_id=obj.workflow_id).order_by("step_id"))
        marks = {-s.step_id: s for s in recorded if s.step_id < 0}  # recv/get_event waits
        steps = [self._step_row(s, marks) for s in recorded if s.step_id > 0]
        return {
            "durable": obj,
            "durable_facts": self._facts(obj),
            "durable_steps": steps,
            "durable_waiting": self._waiting(obj, steps, marks),
            "durable_inputs": pretty(obj.inputs),
            "durable_output": pretty(obj.output),
            "durable_error": error_parts(obj.error),
            "durable_children": [
                (c, reverse("admin:django_durable_workflow_change", args=[c.workflow_id]))
                for c in obj.children
            ],
            "durable_events": [
                {"key": e.key, "value": pretty(e.value), "at": ms_to_datetime(e.updated_at)}
                for e in Event.objects.filter(workflow_id=obj.workflow_id).order_by("key")
            ],
            "durable_messages": [
                {
                    "topic": m.topic,
                    "message": pretty(m.message),
                    "sent": ms_to_datetime(m.created_at),
                    "consumed": ms_to_datetime(m.consumed_at),
                }
                for m in Notification.objects.filter(destination_id=obj.workflow_id).order_by(
                    "message_id"
                )[:200]
            ],
            "durable_streams": self._streams(obj),
            "can_cancel": self.has_cancel_permission(request)
            and obj.status in ("PENDING", "ENQUEUED"),
            "can_resume": self.has_resume_permission(request)
            and obj.status in ("CANCELLED", "ERROR", "MAX_RECOVERY_ATTEMPTS_EXCEEDED"),
            "can_fork": self.has_fork_permission(request),
        }

    def _facts(self, obj: Workflow) -> list[tuple[str, Any]]:
        parent = None
        if obj.parent_workflow_id:
            url = reverse("admin:django_durable_workflow_change", args=[obj.parent_workflow_id])
            parent = format_html('<a href="{}">{}</a>', url, obj.parent_workflow_id)
        facts: list[tuple[str, Any]] = [
            ("Workflow ID", format_html("<code>{}</code>", obj.workflow_id)),
            ("Name", obj.name),
            ("Task", task_name(obj)),
            ("Status", self.status_badge(obj)),
            ("Queue", obj.queue_name),
            ("Executor", obj.executor_id),
            ("Version", obj.application_version),
            ("Recovery attempts", obj.recovery_attempts or None),
            ("Priority", obj.priority or None),
            ("Deduplication ID", obj.deduplication_id),
            ("Created", ms_to_datetime(obj.created_at)),
            ("Started", ms_to_datetime(obj.started_at)),
            ("Finished", ms_to_datetime(obj.finished_at)),
            ("Duration", _duration_text(obj.duration)),
            ("Not before", ms_to_datetime(obj.not_before)),
            ("Deadline", ms_to_datetime(obj.deadline)),
            ("Parent", parent),
        ]
        return [(k, v) for k, v in facts if v not in (None, "")]

    def _step_row(self, step: Step, marks: dict[int, Step]) -> dict[str, Any]:
        output = _loads(step.output)
        detail = ""
        if step.name == "durable.sleep" and isinstance(output, int | float):
            detail = f"until {_when(output * 1000)}"
        elif step.name in ("durable.recv", "durable.get_event"):
            detail = "timed out" if step.output is None else "received"
            mark = marks.get(step.step_id)
            wait = read_wait_mark(mark.output) if mark is not None else None
            if wait is not None and wait.kind:
                until = f" until {_when(wait.deadline * 1000)}" if wait.deadline else ""
                detail = f"waited for {wait.describe()}{until}: {detail}"
        started = ms_to_datetime(step.started_at)
        return {
            "step_id": step.step_id,
            "name": step.name,
            "kind": WAIT_STEPS.get(step.name, "step"),
            "detail": detail,
            "output": "" if step.name == "durable.sleep" else pretty(step.output),
            "error": error_parts(step.error),
            "started": started,
            "duration": _duration_text(step.duration),
            "attempts": step.attempts,
            "child_url": reverse(
                "admin:django_durable_workflow_change", args=[step.child_workflow_id]
            )
            if step.child_workflow_id
            else None,
            "child_workflow_id": step.child_workflow_id,
        }

    def _waiting(
        self, obj: Workflow, steps: list[dict[str, Any]], marks: dict[int, Step]
    ) -> str | None:
        """What a PENDING or ENQUEUED workflow is waiting for, in words."""
        if obj.status == "ENQUEUED":
            if obj.not_before and obj.not_before > database_now_ms():
                return f"Enqueued, held back until {_when(obj.not_before)}."
            return f"Enqueued on queue {obj.queue_name!r}, waiting for a worker."
        if obj.status != "PENDING":
            return None
        recorded = {s["step_id"] for s in steps}
        for step_id, mark in sorted(marks.items()):
            if step_id not in recorded:
                wait = read_wait_mark(mark.output)
                until = _when(wait.deadline * 1000) if wait.deadline is not None else "?"
                what = wait.describe() if wait.kind else "a message or an event"
                return f"Waiting for {what} (step {step_id}) until {until}."
        if steps and steps[-1]["name"] == "durable.sleep" and steps[-1]["detail"]:
            return f"Sleeping (step {steps[-1]['step_id']}) {steps[-1]['detail']}."
        return f"Running on {obj.executor_id}; next step {len(steps) + 1}."

    def _streams(self, obj: Workflow) -> list[dict[str, Any]]:
        streams: dict[str, dict[str, Any]] = {}
        for entry in StreamEntry.objects.filter(workflow_id=obj.workflow_id).order_by("key", "seq"):
            stream = streams.setdefault(
                entry.key, {"key": entry.key, "values": [], "closed": False}
            )
            if entry.is_close:
                stream["closed"] = True
            else:
                stream["values"].append(pretty(entry.value))
        for stream in streams.values():
            stream["count"] = len(stream["values"])
            stream["values"] = stream["values"][-20:]
        return list(streams.values())

    # -- actions: bulk, and buttons with a confirmation page ---------------------------------

    def _act(self, request: HttpRequest, workflow_ids: list[str], verb: str, fn: Any) -> list[Any]:
        done, results, failed = 0, [], []
        client = _client()
        try:
            for workflow_id in workflow_ids:
                try:
                    results.append(fn(client, workflow_id))
                    done += 1
                    obj = Workflow.objects.filter(workflow_id=workflow_id).first()
                    if obj is not None:
                        self.log_change(request, obj, f"{verb} {workflow_id}")
                except Exception as exc:  # one bad workflow must not hide the others' outcome
                    failed.append(f"{workflow_id}: {exc}")
        finally:
            client.close()
        if done:
            self.message_user(request, f"{verb} {done} workflow(s).", messages.SUCCESS)
        for failure in failed:
            self.message_user(request, failure, messages.ERROR)
        return results

    @admin.action(description="Cancel selected workflows", permissions=["cancel"])
    def cancel_workflows(self, request: HttpRequest, queryset: Any) -> None:
        ids = list(queryset.values_list("workflow_id", flat=True))
        self._act(request, ids, "Cancelled", lambda c, w: c.cancel_workflow(w))

    @admin.action(description="Resume selected workflows (on the workers)", permissions=["resume"])
    def resume_workflows(self, request: HttpRequest, queryset: Any) -> None:
        ids = list(queryset.values_list("workflow_id", flat=True))
        self._act(request, ids, "Resumed", lambda c, w: c.resume_workflow(w))

    @admin.action(
        description="Fork selected workflows from step 1 (on the workers)", permissions=["fork"]
    )
    def fork_workflows(self, request: HttpRequest, queryset: Any) -> None:
        ids = list(queryset.values_list("workflow_id", flat=True))
        handles = self._act(request, ids, "Forked", lambda c, w: c.fork_workflow(w, 1))
        for handle in handles:
            self.message_user(request, f"New workflow: {handle.workflow_id}", messages.INFO)

    def action_view(self, request: HttpRequest, object_id: str, action: str) -> HttpResponse:
        if not getattr(self, f"has_{action}_permission")(request):
            raise PermissionDenied
        obj = self.get_object(request, object_id)
        if obj is None:
            raise Http404(f"No workflow with ID {object_id!r}")
        steps = list(obj.steps)
        detail_url = reverse("admin:django_durable_workflow_change", args=[obj.workflow_id])
        if request.method == "POST":
            if action == "fork":
                try:
                    start = int(request.POST.get("start_step") or 1)
                except ValueError:
                    start = 1
                new_id = (request.POST.get("new_workflow_id") or "").strip() or None
                handles = self._act(
                    request,
                    [obj.workflow_id],
                    f"Forked from step {start}:",
                    lambda c, w: c.fork_workflow(w, start, workflow_id=new_id),
                )
                if handles:
                    new = handles[0].workflow_id
                    url = reverse("admin:django_durable_workflow_change", args=[new])
                    self.message_user(
                        request,
                        format_html('New workflow <a href="{}">{}</a>; workers run it.', url, new),
                        messages.INFO,
                    )
                    return HttpResponseRedirect(url)
            elif action == "cancel":
                self._act(
                    request, [obj.workflow_id], "Cancelled", lambda c, w: c.cancel_workflow(w)
                )
            else:
                self._act(request, [obj.workflow_id], "Resumed", lambda c, w: c.resume_workflow(w))
            return HttpResponseRedirect(detail_url)
        context = {
            **self.admin_site.each_context(request),
            "title": f"{action.capitalize()} workflow {obj.workflow_id}?",
            "opts": self.model._meta,
            "durable": obj,
            "action": action,
            "steps": steps,
            "detail_url": detail_url,
        }
        return TemplateResponse(request, "admin/django_durable/workflow/confirm.html", context)

    # -- queues, executors, schedules ----------------------------------------------------

    def get_urls(self) -> list[Any]:
        wrap = self.admin_site.admin_view
        return [
            path("queues/", wrap(self.queues_view), name="django_durable_workflow_queues"),
            *[
                path(
                    f"queues/<path:name>/{action}/",
                    wrap(self.queue_action_view),
                    {"action": action},
                    name=f"django_durable_queue_{action}",
                )
                for action in QUEUE_ACTIONS
            ],
            path("executors/", wrap(self.executors_view), name="django_durable_executors"),
            path("schedules/", wrap(self.schedules_view), name="django_durable_schedules"),
            *[
                path(
                    f"<path:object_id>/{action}/",
                    wrap(self.action_view),
                    {"action": action},
                    name=f"django_durable_workflow_{action}",
                )
                for action in ("cancel", "resume", "fork")
            ],
            *super().get_urls(),
        ]

    def _page(self, request: HttpRequest, template: str, title: str, **context: Any) -> Any:
        if not self.has_view_permission(request):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "opts": self.model._meta,
            **context,
        }
        return TemplateResponse(request, f"admin/django_durable/{template}", context)

    def has_manage_queues_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("django_durable.manage_queues")

    def queues_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        versions: dict[str, set[str]] = {}
        client = _client()
        try:
            queues = client.list_queues()
            for row in client.list_workflows(status="ENQUEUED", limit=500, newest_first=False):
                if row.queue and row.application_version:
                    versions.setdefault(row.queue, set()).add(row.application_version)
        finally:
            client.close()
        now, lease_ms = database_now_ms(), self._lease_ms()  # the one clock, as executors_view
        live = {
            e.application_version for e in Executor.objects.all() if now - e.heartbeat_at < lease_ms
        }
        rows = [
            {
                "name": q.name,
                "paused": q.paused,
                "running": q.running,
                "enqueued": q.enqueued,
                "concurrency": q.concurrency,
                "worker_concurrency": q.worker_concurrency,
                "rate_limit": q.rate_limit,
                "overridden": q.overridden,
                "declared": q.declared is not None and q.declared_version is None,
                "unserved_versions": [v for v in sorted(versions.get(q.name, ())) if v not in live],
            }
            for q in queues
        ]
        return self._page(
            request,
            "queues.html",
            "Durable queues",
            queues=rows,
            can_manage=self.has_manage_queues_permission(request),
        )

    def queue_action_view(self, request: HttpRequest, name: str, action: str) -> HttpResponse:
        """Pause, resume, reset or change the limits of a queue (POST from the queues page),
        fleet-wide, through a Client; a LogEntry records who did what."""
        if request.method != "POST" or not self.has_manage_queues_permission(request):
            raise PermissionDenied
        back = HttpResponseRedirect(reverse("admin:django_durable_workflow_queues"))
        client = _client()
        try:
            if action == "limits":
                try:
                    limits = {
                        key: parsed
                        for key in ("concurrency", "worker_concurrency", "rate_limit")
                        if (parsed := parse_queue_limit(key, request.POST.get(key, "")))
                        is not UNCHANGED
                    }
                    if not limits:
                        raise ValueError("give at least one limit (a number, or none)")
                    client.set_queue_limits(name, **limits)
                except ValueError as exc:  # ConfigurationError is a ValueError too
                    self.message_user(request, f"Queue {name!r}: {exc}", messages.ERROR)
                    return back
                done = (
                    "Set "
                    + ", ".join(f"{k}={'none' if v is None else v}" for k, v in limits.items())
                    + " on"
                )
            else:
                getattr(client, f"{action}_queue")(name)
                done = {"pause": "Paused", "resume": "Resumed", "reset": "Reset the limits of"}[
                    action
                ]
        finally:
            client.close()
        self._log_queue_change(request, f"{done} queue {name}")
        self.message_user(request, f"{done} queue {name!r} on every worker.", messages.SUCCESS)
        return back

    def _log_queue_change(self, request: HttpRequest, message: str) -> None:
        from django.contrib.admin.models import CHANGE, LogEntry
        from django.contrib.contenttypes.models import ContentType

        LogEntry.objects.create(
            user_id=request.user.pk,
            content_type=ContentType.objects.get_for_model(Workflow),
            object_id="",
            object_repr=message[:200],
            action_flag=CHANGE,
            change_message=message,
        )

    def _lease_ms(self) -> int:
        from .engine import get_engine

        return int(get_engine().lease_seconds * 1000)

    def executors_view(self, request: HttpRequest) -> HttpResponse:
        from django.db.models import Count

        running = dict(
            Workflow.objects.filter(status="PENDING")
            .values_list("executor_id")
            .annotate(n=Count("workflow_id"))
        )
        # Heartbeats are written by the database's clock: judged by it too, so a web host
        # whose own clock is off shows the fleet's liveness as the workers see it.
        now, lease_ms = database_now_ms(), self._lease_ms()
        rows = [
            {
                "executor_id": e.executor_id,
                "hostname": e.hostname,
                "pid": e.pid,
                "version": e.application_version,
                "started": ms_to_datetime(e.started_at),
                "heartbeat": ms_to_datetime(e.heartbeat_at),
                "live": now - e.heartbeat_at < lease_ms,
                "running": running.get(e.executor_id, 0),
            }
            for e in Executor.objects.order_by("-heartbeat_at")
        ]
        return self._page(request, "executors.html", "Durable executors", executors=rows)

    def schedules_view(self, request: HttpRequest) -> HttpResponse:
        """Every stored schedule, and this process's ``@scheduled`` workflows that no worker
        has recorded yet (a worker records them at launch)."""
        from durable_core.integration import REGISTRY

        if not self.has_view_permission(request):
            raise PermissionDenied
        client = _client()
        try:
            stored = client.list_schedules()
        finally:
            client.close()
        rows = [_schedule_row(s) for s in stored]
        recorded = {s.schedule_id for s in stored}
        for defn in sorted(REGISTRY.workflows.values(), key=lambda d: d.name):
            if getattr(defn, "schedule", None) and defn.name not in recorded:
                rows.append(
                    {
                        "id": defn.name,
                        "workflow": defn.name,
                        "cron": defn.schedule,
                        "timezone": "UTC",
                        "policies": "catch-up latest, overlap allow",
                        "state": "not recorded yet (no worker has launched with it)",
                        "source": "code",
                        "next": None,
                        "last": None,
                        "last_url": None,
                        "edit_url": None,
                    }
                )
        can_add = request.user.has_perm("django_durable.add_schedule")
        return self._page(
            request,
            "schedules.html",
            "Durable schedules",
            schedules=rows,
            add_url=reverse("admin:django_durable_schedule_add") if can_add else None,
        )


def _schedule_row(s: Any) -> dict[str, Any]:
    last = Workflow.objects.filter(workflow_id=s.last_workflow_id).first()
    return {
        "id": s.schedule_id,
        "workflow": s.workflow_name,
        "cron": s.cron,
        "timezone": s.timezone,
        "policies": f"catch-up {s.catchup}, overlap {s.overlap}",
        "state": "paused" if s.paused else "active",
        "source": s.source,
        "next": s.next_tick,
        "last": last,
        "last_url": reverse("admin:django_durable_workflow_change", args=[last.pk])
        if last
        else None,
        "edit_url": reverse("admin:django_durable_schedule_change", args=[s.schedule_id]),
    }


# -- schedules: editable, every write through a Client (validated by the core) -----------------


def _json_field(label: str, help_text: str) -> Any:
    from django import forms

    return forms.CharField(
        label=label,
        required=False,
        help_text=help_text,
        widget=forms.Textarea(attrs={"rows": 2, "cols": 60}),
    )


def _schedule_form() -> Any:
    from django import forms

    from durable_core.integration import CATCHUP_POLICIES, OVERLAP_POLICIES

    class ScheduleForm(forms.ModelForm):
        args_json = _json_field(
            "Arguments", "A JSON list, passed after (scheduled_at, started_at)."
        )
        kwargs_json = _json_field("Keyword arguments", "A JSON object.")
        catchup = forms.ChoiceField(
            choices=[(c, c) for c in CATCHUP_POLICIES],
            initial="latest",
            help_text="After downtime: skip missed ticks, run the latest, or run all (at most max catch-up).",
        )
        overlap = forms.ChoiceField(
            choices=[(o, o) for o in OVERLAP_POLICIES],
            initial="skip",
            help_text="When the previous run is still active: skip the tick, allow it, or cancel the previous run.",
        )

        class Meta:
            model = Schedule
            fields = [
                "schedule_id", "workflow_name", "cron", "timezone", "queue_name", "catchup",
                "max_catchup", "overlap", "paused",
            ]  # fmt: skip
            help_texts = {
                "workflow_name": "The workflow's registered name (module.qualname).",
                "cron": "Five fields (a sixth, seconds, is accepted), in the time zone below.",
                "timezone": "An IANA zone such as Europe/Paris. DST: see the docs.",
                "queue_name": "Enqueue each run on this queue (empty: start it on the worker that fires the tick).",
            }

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            for name in ("args_json", "kwargs_json"):  # not columns: set by get_object
                self.initial.setdefault(name, getattr(self.instance, name, ""))

        def _json(self, name: str, kind: type) -> Any:
            text = (self.cleaned_data.get(name) or "").strip()
            if not text:
                return kind()
            try:
                value = json.loads(text)
            except ValueError:
                raise forms.ValidationError("Not valid JSON.") from None
            if not isinstance(value, kind):
                raise forms.ValidationError(
                    f"Must be a JSON {'list' if kind is list else 'object'}."
                )
            return value

        def clean_args_json(self) -> Any:
            return self._json("args_json", list)

        def clean_kwargs_json(self) -> Any:
            return self._json("kwargs_json", dict)

        def clean_cron(self) -> str:
            from durable_core.errors import ConfigurationError
            from durable_core.integration import check_cron

            value = self.cleaned_data.get("cron")
            try:
                return check_cron(value, "this schedule")
            except ConfigurationError as exc:
                raise forms.ValidationError(str(exc)) from None

        def clean_timezone(self) -> str:
            from durable_core.errors import ConfigurationError
            from durable_core.integration import time_zone

            value = self.cleaned_data.get("timezone") or "UTC"
            try:
                time_zone(value)
            except ConfigurationError as exc:
                raise forms.ValidationError(str(exc)) from None
            return value

        def validate_unique(self) -> None:
            if (
                self.instance._state.adding
                and Schedule.objects.filter(pk=self.cleaned_data.get("schedule_id")).exists()
            ):
                self.add_error("schedule_id", "A schedule with this ID exists already.")

    return ScheduleForm


@admin.register(Schedule)
class ScheduleAdmin(admin.ModelAdmin):
    list_display = (
        "schedule_id", "workflow_name", "cron", "timezone", "catchup", "overlap", "state",
        "source", "last_tick_time", "next_tick_time",
    )  # fmt: skip
    list_filter = ("paused", "source")
    search_fields = ("schedule_id", "workflow_name")
    actions = ["pause_schedules", "resume_schedules", "trigger_schedules"]
    change_form_template = "admin/django_durable/schedule_change_form.html"

    # Writes go through a Client on its own connection, not the ORM: Django's atomic block
    # around these views would hold a snapshot that the Client's commit makes stale (on
    # SQLite the admin's own LogEntry insert then cannot write). Each write commits on its own.
    @csrf_protect_m
    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> Any:
        return self._changeform_view(request, object_id, form_url, extra_context)

    @csrf_protect_m
    def delete_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> Any:
        return self._delete_view(request, object_id, extra_context)

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        kwargs["form"] = _schedule_form()
        return super().get_form(request, obj, change, **kwargs)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[Any]:
        fields = [
            "schedule_id", "workflow_name", "cron", "timezone", "args_json", "kwargs_json",
            "queue_name", "catchup", "max_catchup", "overlap", "paused",
        ]  # fmt: skip
        if obj is not None:
            fields += ["source", "last_tick_time", "last_workflow_id", "next_tick_time"]
        return fields

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[Any]:
        if obj is None:
            return []
        fixed = ["schedule_id", "source", "last_tick_time", "last_workflow_id", "next_tick_time"]
        if obj.source == "code":  # from @scheduled: the code owns these
            fixed += ["workflow_name", "cron"]
        return fixed

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        return {"timezone": "UTC", "catchup": "latest", "overlap": "skip", "max_catchup": 100}

    def get_object(self, request: HttpRequest, object_id: str, from_field: Any = None) -> Any:
        obj = super().get_object(request, object_id, from_field)
        if obj is not None:
            stored = self._stored(obj.schedule_id)
            obj.args_json = json.dumps(list(stored.args)) if stored else ""
            obj.kwargs_json = json.dumps(stored.kwargs) if stored else ""
        return obj

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Any = None,
    ) -> Any:
        if obj is not None:
            context["backfill_url"] = reverse(
                "admin:django_durable_schedule_backfill", args=[obj.pk]
            )
        return super().render_change_form(request, context, add, change, form_url, obj)

    def _stored(self, schedule_id: str) -> Any:
        from durable_core.errors import ScheduleNotFound

        client = _client()
        try:
            return client.get_schedule(schedule_id)
        except ScheduleNotFound:
            return None
        finally:
            client.close()

    @admin.display(description="State")
    def state(self, obj: Schedule) -> str:
        return "paused" if obj.paused else "active"

    @admin.display(description="Last tick (UTC)")
    def last_tick_time(self, obj: Schedule) -> Any:
        return ms_to_datetime(obj.last_tick)

    @admin.display(description="Next tick (UTC)")
    def next_tick_time(self, obj: Schedule) -> Any:
        from durable_core.integration import next_tick, time_zone

        if obj.paused:
            return None
        try:
            base = ms_to_datetime(obj.last_tick if obj.last_tick is not None else obj.created_at)
            assert base is not None
            return next_tick(obj.cron, time_zone(obj.timezone), base)
        except Exception:  # a row no engine can fire either
            return None

    def save_model(self, request: HttpRequest, obj: Schedule, form: Any, change: bool) -> None:
        data = form.cleaned_data
        options = {
            "timezone": data.get("timezone") or "UTC",
            "args": data.get("args_json") or [],
            "kwargs": data.get("kwargs_json") or {},
            "queue": data.get("queue_name") or None,
            "catchup": data["catchup"],
            "overlap": data["overlap"],
            "max_catchup": data["max_catchup"],
            "paused": bool(data.get("paused")),
        }
        client = _client()
        try:
            if change:
                if obj.source != "code":
                    options["workflow"] = data["workflow_name"]
                    options["cron"] = data["cron"]
                client.update_schedule(obj.schedule_id, **options)
            else:
                client.create_schedule(
                    obj.schedule_id, data["workflow_name"], data["cron"], **options
                )
        finally:
            client.close()

    def delete_model(self, request: HttpRequest, obj: Schedule) -> None:
        self._each(request, [obj.schedule_id], "delete_schedule", "Deleted", quiet=True)

    def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
        self._each(
            request,
            list(queryset.values_list("schedule_id", flat=True)),
            "delete_schedule",
            "Deleted",
            quiet=True,
        )

    def _each(
        self, request: HttpRequest, ids: list[str], method: str, verb: str, quiet: bool = False
    ) -> list[Any]:
        from durable_core.errors import DurableError

        done = []
        client = _client()
        try:
            for schedule_id in ids:
                try:
                    done.append(getattr(client, method)(schedule_id))
                except DurableError as exc:
                    self.message_user(request, str(exc), messages.ERROR)
        finally:
            client.close()
        if done and not quiet:
            self.message_user(request, f"{verb} {len(done)} schedule(s).", messages.SUCCESS)
        return done

    @admin.action(description="Pause selected schedules", permissions=["change"])
    def pause_schedules(self, request: HttpRequest, queryset: Any) -> None:
        self._each(
            request,
            list(queryset.values_list("schedule_id", flat=True)),
            "pause_schedule",
            "Paused",
        )

    @admin.action(description="Resume selected schedules", permissions=["change"])
    def resume_schedules(self, request: HttpRequest, queryset: Any) -> None:
        self._each(
            request,
            list(queryset.values_list("schedule_id", flat=True)),
            "resume_schedule",
            "Resumed",
        )

    @admin.action(description="Run selected schedules now", permissions=["change"])
    def trigger_schedules(self, request: HttpRequest, queryset: Any) -> None:
        handles = self._each(
            request,
            list(queryset.values_list("schedule_id", flat=True)),
            "trigger_schedule",
            "Triggered",
            quiet=True,
        )
        for handle in handles:
            self.message_user(request, f"Started {handle.workflow_id}", messages.SUCCESS)

    def get_urls(self) -> list[Any]:
        wrap = self.admin_site.admin_view
        return [
            path(
                "<path:object_id>/backfill/",
                wrap(self.backfill_view),
                name="django_durable_schedule_backfill",
            ),
            *super().get_urls(),
        ]

    def backfill_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """A form: start and end (UTC); one run per tick of [start, end) that has not run."""
        from django import forms

        from durable_core.errors import DurableError

        obj = self.get_object(request, object_id)
        if obj is None:
            raise Http404(f"No schedule {object_id!r}")
        if not self.has_change_permission(request, obj):
            raise PermissionDenied

        class BackfillForm(forms.Form):
            start = forms.DateTimeField(help_text="UTC, included (YYYY-MM-DD HH:MM).")
            end = forms.DateTimeField(help_text="UTC, excluded.")

        form = BackfillForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            start = form.cleaned_data["start"].replace(tzinfo=dt.UTC)
            end = form.cleaned_data["end"].replace(tzinfo=dt.UTC)
            client = _client()
            try:
                handles = client.backfill_schedule(obj.schedule_id, start, end)
            except DurableError as exc:
                form.add_error(None, str(exc))
            else:
                new = sum(1 for h in handles if h.created)
                self.log_change(
                    request,
                    obj,
                    f"Backfilled {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M}: {new} run(s)",
                )
                self.message_user(
                    request,
                    f"Backfilled {obj.schedule_id}: {len(handles)} tick(s), {new} new run(s).",
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(
                    reverse("admin:django_durable_schedule_change", args=[obj.pk])
                )
            finally:
                client.close()
        context = {
            **self.admin_site.each_context(request),
            "title": f"Backfill {obj.schedule_id}",
            "opts": self.model._meta,
            "original": obj,
            "form": form,
        }
        return TemplateResponse(request, "admin/django_durable/schedule_backfill.html", context)
