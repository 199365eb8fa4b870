"""``manage.py durable workflows list|show|steps|cancel|resume|fork``: the CLI on the
Django database. It uses a ``Client``: it never runs workflows itself, so ``resume`` and
``fork`` hand the work to the workers."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from durable_core.errors import DurableError, WorkflowNotFound

STATUSES = [
    "PENDING",
    "ENQUEUED",
    "SUCCESS",
    "ERROR",
    "CANCELLED",
    "MAX_RECOVERY_ATTEMPTS_EXCEEDED",
]


def _dump(value: Any) -> str:
    try:
        return json.dumps(value, indent=2, default=str, sort_keys=True)
    except (TypeError, ValueError):
        return repr(value)


def _time(value: Any) -> str:
    return value.isoformat(timespec="seconds") if value is not None else "-"


class Command(BaseCommand):
    help = "Inspect and manage durable workflows."

    def add_arguments(self, parser: Any) -> None:
        groups = parser.add_subparsers(dest="group", required=True)
        workflows = groups.add_parser("workflows", help="list, inspect and manage workflows")
        sub = workflows.add_subparsers(dest="action", required=True)
        lst = sub.add_parser("list", help="list workflows, newest first")
        lst.add_argument("--status", choices=STATUSES)
        lst.add_argument("--name")
        lst.add_argument("--queue")
        lst.add_argument("--limit", type=int, default=50)
        lst.add_argument("--json", action="store_true", help="machine-readable output")
        for name, text in (
            ("show", "a workflow's status, inputs, result and error"),
            ("steps", "a workflow's recorded steps"),
            ("cancel", "stop a workflow (and its children) at the next step boundary"),
            ("resume", "continue a cancelled or failed workflow from its last step"),
        ):
            p = sub.add_parser(name, help=text)
            p.add_argument("workflow_id")
            if name in ("show", "steps"):
                p.add_argument("--json", action="store_true")
        fork = sub.add_parser("fork", help="re-run a workflow from a step, as a new workflow")
        fork.add_argument("workflow_id")
        fork.add_argument("--start-step", type=int, default=1)
        fork.add_argument("--new-id", dest="new_id")

    def handle(self, *args: Any, **options: Any) -> None:
        from django_durable.conf import database_alias
        from django_durable.database import database_url
        from durable_core import Client

        client = Client(database_url(database_alias()))
        try:
            getattr(self, f"_{options['action']}")(client, options)
        except WorkflowNotFound:
            raise CommandError(f"No workflow with ID {options['workflow_id']!r}.") from None
        except DurableError as exc:
            raise CommandError(str(exc)) from None
        finally:
            client.close()

    def _list(self, client: Any, options: dict) -> None:
        rows = client.list_workflows(
            status=options["status"],
            name=options["name"],
            queue=options["queue"],
            limit=options["limit"],
        )
        if options["json"]:
            self.stdout.write(_dump([{**_status_dict(r)} for r in rows]))
            return
        self.stdout.write(f"{'WORKFLOW ID':40} {'STATUS':10} {'QUEUE':12} {'CREATED':20} NAME")
        for r in rows:
            self.stdout.write(
                f"{r.workflow_id:40} {r.status:10} {r.queue or '-':12} "
                f"{_time(r.created_at):20} {r.name}"
            )

    def _show(self, client: Any, options: dict) -> None:
        status = client.retrieve_workflow(options["workflow_id"]).status()
        data = _status_dict(status)
        if options["json"]:
            self.stdout.write(_dump(data))
            return
        for key, value in data.items():
            if isinstance(value, dict | list):
                value = _dump(value)
            self.stdout.write(f"{key:20} {value}")

    def _steps(self, client: Any, options: dict) -> None:
        steps = client.list_steps(options["workflow_id"])
        if options["json"]:
            self.stdout.write(_dump([_step_dict(s) for s in steps]))
            return
        self.stdout.write(f"{'#':>4} {'NAME':40} OUTCOME")
        for s in steps:
            outcome = f"error: {s.error}" if s.error else _dump(s.result).replace("\n", " ")
            if s.child_workflow_id:
                outcome += f" (child {s.child_workflow_id})"
            self.stdout.write(f"{s.step_id:>4} {s.name:40} {outcome}")

    def _cancel(self, client: Any, options: dict) -> None:
        client.cancel_workflow(options["workflow_id"])
        self.stdout.write(f"cancelled {options['workflow_id']}")

    def _resume(self, client: Any, options: dict) -> None:
        handle = client.resume_workflow(options["workflow_id"])
        self.stdout.write(f"resumed {handle.workflow_id}")

    def _fork(self, client: Any, options: dict) -> None:
        handle = client.fork_workflow(
            options["workflow_id"], options["start_step"], workflow_id=options["new_id"]
        )
        self.stdout.write(f"forked {options['workflow_id']} as {handle.workflow_id}")


def _status_dict(status: Any) -> dict:
    return {
        "workflow_id": status.workflow_id,
        "name": status.name,
        "status": str(status.status),
        "queue": status.queue,
        "args": status.args,
        "kwargs": status.kwargs,
        "result": status.result,
        "error": status.error,
        "executor_id": status.executor_id,
        "recovery_attempts": status.recovery_attempts,
        "parent_workflow_id": status.parent_workflow_id,
        "created_at": _time(status.created_at),
        "updated_at": _time(status.updated_at),
    }


def _step_dict(step: Any) -> dict:
    return {
        "step_id": step.step_id,
        "name": step.name,
        "result": step.result,
        "error": step.error,
        "child_workflow_id": step.child_workflow_id,
        "started_at": _time(step.started_at),
        "finished_at": _time(step.finished_at),
    }
