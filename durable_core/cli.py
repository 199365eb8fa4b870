"""The ``durable`` command line: migrate, inspect and control workflows, run a worker.

Commands get their :class:`~durable_core.Client` from the click context object (a
:class:`CliState`), so an integration can mount :data:`workflows_group` under its own command
with its own way of building the client (see :func:`run_group`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import importlib
import json
import logging
import os
import re
import signal
import sqlite3
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import click

from .errors import DurableError
from .store import redact

if TYPE_CHECKING:
    from rich.console import Console

    from .client import Client
    from .engine import Engine
    from .fleet import QueueInfo
    from .handles import WorkflowStatus

log = logging.getLogger("durable_core.cli")

STATUSES = (
    "PENDING",
    "ENQUEUED",
    "SUCCESS",
    "ERROR",
    "CANCELLED",
    "MAX_RECOVERY_ATTEMPTS_EXCEEDED",
)


# -- how commands reach the system database -----------------------------------------------------


class WorkflowNames(Protocol):
    """Names an integration gives the workflows behind one runner workflow of its own (the
    Django task backend runs every task as one workflow whose first argument is the task)."""

    def label(self, status: WorkflowStatus) -> str | None:
        """The name to show for this workflow; None: its own name."""
        ...

    def stored_name(self, name: str) -> str | None:
        """For ``--name`` given as a label: the stored workflow name its workflows have
        (listed, then kept where ``label`` gives ``name``); None: not a label."""
        ...


class CliState:
    """The click context object: builds the Client on first use and closes it at the end.

    Parameters:
        client_factory: returns a ready Client; called at most once per command line.
        database_url: the URL as given (for ``migrate`` and ``worker``); None = environment
            or default.
        engine_factory: ``worker`` builds its engine with this (keyword arguments as
            ``Engine``, only those given on the command line) instead of ``Engine(url)``.
        names: how an integration names the workflows of its own runner workflow (Django
            shows a task's path, not the workflow that runs every task); see WorkflowNames.
    """

    def __init__(
        self,
        client_factory: Callable[[], Client] | None = None,
        database_url: str | None = None,
        engine_factory: Callable[..., Engine] | None = None,
        names: WorkflowNames | None = None,
    ) -> None:
        self.database_url = database_url
        self.names = names
        self._factory = client_factory or (lambda: default_client(database_url))
        self._client: Client | None = None
        # An integration (Django) builds the worker's engine itself, with its own
        # @transaction adapter and its own discovery of workflows (so no --app).
        self.engine_factory = engine_factory

    def client(self) -> Client:
        if self._client is None:
            self._client = self._factory()
            click.get_current_context().call_on_close(self.close)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            client.close()


def default_client(database_url: str | None) -> Client:
    """A Client on ``database_url`` (or ``DURABLE_DATABASE_URL``, or the default SQLite file).

    A missing SQLite file is an error here rather than silently created empty."""
    from .client import Client
    from .store import parse_database_url, resolve_database_url

    url = parse_database_url(resolve_database_url(database_url))
    if url.dialect == "sqlite" and url.path and not Path(url.path).exists():
        raise click.ClickException(
            f"No SQLite system database at {url.path!r}. Run `durable migrate` to create it, "
            "or pass --database-url."
        )
    return Client(url.url)


def _state() -> CliState:
    ctx = click.get_current_context()
    state = ctx.find_object(CliState)
    if state is None:
        state = ctx.ensure_object(CliState)
    return state


def _client() -> Client:
    return _state().client()


# -- errors: a message on stderr and exit code 1, never a traceback ------------------------------


def _database_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [sqlite3.Error]
    try:
        import psycopg

        errors.append(psycopg.Error)
    except ImportError:  # pragma: no cover - postgres extra not installed
        pass
    return tuple(errors)


class ErrorHandlingGroup(click.Group):
    """A group whose commands turn library and database errors into clean CLI errors."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DurableError as exc:
            raise click.ClickException(redact(str(exc))) from None
        except _database_errors() as exc:
            raise click.ClickException(
                f"database error ({type(exc).__name__}): {redact(str(exc)).strip()}"
            ) from None


# -- output --------------------------------------------------------------------------------------


def _console() -> Console:
    from rich.console import Console

    console = Console(soft_wrap=False, highlight=False)
    if not console.is_terminal:
        # Piped output: do not squeeze IDs into 80 columns.
        console = Console(soft_wrap=False, highlight=False, width=max(console.width, 200))
    return console


def to_jsonable(value: Any) -> Any:
    """Plain JSON types: dataclasses as dicts, datetimes as ISO 8601, enums as values;
    anything else the JSON encoder cannot take becomes its repr."""
    if isinstance(value, enum.Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: to_jsonable(getattr(value, f.name))
            for f in dataclasses.fields(value)  # slotted dataclasses have no __dict__
        }
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_jsonable(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return repr(value)


def _print_json(value: Any) -> None:
    click.echo(json.dumps(to_jsonable(value), indent=2))


def _when(value: dt.datetime | None) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M:%S")


def _short(value: Any, width: int = 60) -> str:
    text = value if isinstance(value, str) else json.dumps(to_jsonable(value))
    return text if len(text) <= width else text[: width - 1] + "…"


def _duration(start: dt.datetime | None, end: dt.datetime | None) -> str:
    if start is None or end is None:
        return ""
    seconds = (end - start).total_seconds()
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


_STATUS_STYLE = {
    "SUCCESS": "green",
    "ERROR": "red",
    "MAX_RECOVERY_ATTEMPTS_EXCEEDED": "red",
    "CANCELLED": "yellow",
    "PENDING": "cyan",
    "ENQUEUED": "blue",
}


def _status(value: Any) -> str:
    text = str(getattr(value, "value", value))
    return f"[{_STATUS_STYLE.get(text, 'white')}]{text}[/]"


# -- durable workflows ... -------------------------------------------------------------------------

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


@click.group("workflows", cls=ErrorHandlingGroup)
def workflows_group() -> None:
    """List, inspect and control workflows."""


@workflows_group.command("list")
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice(STATUSES, case_sensitive=False),
    help="Only this status (repeatable).",
)
@click.option("--name", help="Only workflows of this name (module.qualname).")
@click.option("--queue", help="Only workflows of this queue.")
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--offset", type=click.IntRange(min=0), default=0, show_default=True)
@json_option
def list_command(
    statuses: tuple[str, ...],
    name: str | None,
    queue: str | None,
    limit: int,
    offset: int,
    as_json: bool,
) -> None:
    """List workflows, newest first."""
    names = _state().names
    stored = names.stored_name(name) if names is not None and name is not None else None
    if names is not None and name is not None and stored is not None:
        rows = _list_labelled(names, name, stored, statuses, queue, limit, offset)
    else:
        rows = _client().list_workflows(
            status=[s.upper() for s in statuses] or None,
            name=name,
            queue=queue,
            limit=limit,
            offset=offset,
        )
    if as_json:
        _print_json(rows)
        return
    from rich.markup import escape
    from rich.table import Table

    table = Table("ID", "Name", "Status", "Queue", "Created (UTC)", "Duration", "Executor")
    table.columns[0].no_wrap = True
    for w in rows:
        table.add_row(
            escape(w.workflow_id),
            escape(_shown_name(w)),
            _status(w.status),
            escape(w.queue or ""),
            _when(w.created_at),
            _duration(w.started_at, w.finished_at),
            w.executor_id or "",
        )
    console = _console()
    console.print(table)
    console.print(f"{len(rows)} workflow(s)" + (f" from offset {offset}" if offset else ""))


def _list_labelled(
    names: WorkflowNames,
    label: str,
    stored: str,
    statuses: tuple[str, ...],
    queue: str | None,
    limit: int,
    offset: int,
) -> list[WorkflowStatus]:
    """``--name`` given as an integration's label (a Django task's path): the workflows of
    the stored name whose label it is, walked page by page on the keyset cursor so that
    ``--limit`` and ``--offset`` count the matching ones."""
    found: list[WorkflowStatus] = []
    after = None
    while len(found) < offset + limit:
        page = _client().list_workflows(
            status=[s.upper() for s in statuses] or None,
            name=stored,
            queue=queue,
            limit=500,
            after=after,
        )
        found.extend(w for w in page if names.label(w) == label)
        if len(page) < 500:
            break
        after = page[-1].cursor
    return found[offset : offset + limit]


def _shown_name(w: WorkflowStatus) -> str:
    names = _state().names
    label = names.label(w) if names is not None else None
    return w.name if label is None else label


@workflows_group.command("show")
@click.argument("workflow_id")
@json_option
def show_command(workflow_id: str, as_json: bool) -> None:
    """Show one workflow: status, inputs, result or error."""
    w = _client().retrieve_workflow(workflow_id).status()
    if as_json:
        _print_json(w)
        return
    from rich.markup import escape
    from rich.table import Table

    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    fields: list[tuple[str, Any]] = [
        ("ID", w.workflow_id),
        ("Name", _shown_name(w)),
        ("Status", _status(w.status)),
        ("Queue", w.queue or ""),
        ("Args", _short(list(w.args), 2000)),
        ("Kwargs", _short(w.kwargs, 2000)),
        ("Result", "" if w.result is None else _short(w.result, 2000)),
        ("Error", w.error or ""),
        ("Executor", w.executor_id or ""),
        ("Application version", w.application_version or ""),
        ("Recovery attempts", str(w.recovery_attempts)),
        ("Parent", w.parent_workflow_id or ""),
        ("Priority", str(w.priority)),
        ("Deduplication ID", w.deduplication_id or ""),
        ("Created (UTC)", _when(w.created_at)),
        ("Started (UTC)", _when(w.started_at)),
        ("Finished (UTC)", _when(w.finished_at)),
        ("Duration", _duration(w.started_at, w.finished_at)),
        ("Deadline (UTC)", _when(w.deadline)),
    ]
    for label, value in fields:
        table.add_row(label, value if label == "Status" else escape(value))
    _console().print(table)


@workflows_group.command("steps")
@click.argument("workflow_id")
@json_option
def steps_command(workflow_id: str, as_json: bool) -> None:
    """List the recorded steps of a workflow in order."""
    steps = _client().list_steps(workflow_id)
    if as_json:
        _print_json(steps)
        return
    from rich.markup import escape
    from rich.table import Table

    table = Table(
        "Step", "Name", "Outcome", "Attempts", "Child workflow", "Started (UTC)", "Duration"
    )
    for s in steps:
        outcome = f"[red]{escape(_short(s.error))}[/]" if s.error else escape(_short(s.result))
        table.add_row(
            str(s.step_id),
            escape(s.name),
            outcome,
            str(s.attempts),
            s.child_workflow_id or "",
            _when(s.started_at),
            _duration(s.started_at, s.finished_at),
        )
    console = _console()
    console.print(table)
    console.print(f"{len(steps)} step(s)")


def _report(workflow_id: str, verb: str, as_json: bool) -> None:
    status = _client().retrieve_workflow(workflow_id).status()
    if as_json:
        _print_json({"workflow_id": workflow_id, "status": status.status})
    else:
        click.echo(f"{verb} workflow {workflow_id}: status {status.status.value}")


@workflows_group.command("cancel")
@click.argument("workflow_id")
@json_option
def cancel_command(workflow_id: str, as_json: bool) -> None:
    """Cancel a workflow and its children; they stop at their next step boundary.

    A workflow that already finished keeps its status."""
    _client().cancel_workflow(workflow_id)
    _report(workflow_id, "Cancelled", as_json)


@workflows_group.command("resume")
@click.argument("workflow_id")
@json_option
def resume_command(workflow_id: str, as_json: bool) -> None:
    """Re-enqueue a cancelled, failed or dead-lettered workflow; a worker that knows it
    continues from its last completed step."""
    _client().resume_workflow(workflow_id)
    _report(workflow_id, "Resumed", as_json)


@workflows_group.command("fork")
@click.argument("workflow_id")
@click.option(
    "--start-step",
    type=int,
    required=True,
    help="First step to run again; the outcomes of earlier steps are copied.",
)
@click.option("--workflow-id", "new_id", help="ID of the new workflow (default: a new UUID).")
@json_option
def fork_command(workflow_id: str, start_step: int, new_id: str | None, as_json: bool) -> None:
    """Start a new workflow with the same inputs, running from --start-step on."""
    handle = _client().fork_workflow(workflow_id, start_step, new_id)
    if as_json:
        _print_json({"workflow_id": handle.workflow_id, "forked_from": workflow_id})
    else:
        click.echo(f"Forked workflow {workflow_id} at step {start_step}: {handle.workflow_id}")


@workflows_group.command("export")
@click.argument("workflow_id")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, writable=True),
    help="Write the history to this file instead of standard output.",
)
def export_command(workflow_id: str, output: str | None) -> None:
    """Write a workflow's recorded history (inputs, steps and outcomes, events, messages) as
    JSON: a fixture for durable_core.testing.replay, which checks new code against it."""
    document = _client().export_workflow(workflow_id)
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    if output:
        with open(output, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        click.echo(text, nl=False)


def run_group(
    group: click.Command,
    args: Sequence[str],
    client_factory: Callable[[], Client],
    prog_name: str,
    *,
    database_url: str | None = None,
    engine_factory: Callable[..., Engine] | None = None,
    names: WorkflowNames | None = None,
) -> int:
    """Run ``group`` (e.g. :data:`cli` or :data:`workflows_group`) with ``args`` and a
    Client from ``client_factory``, as a framework's management command would. Returns the
    exit code; errors are already printed on stderr."""
    try:
        group.main(
            args=list(args),
            prog_name=prog_name,
            obj=CliState(
                client_factory=client_factory,
                database_url=database_url,
                engine_factory=engine_factory,
                names=names,
            ),
            standalone_mode=True,
        )
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return 0


# -- the root command ------------------------------------------------------------------------------


@click.group(cls=ErrorHandlingGroup)
@click.option(
    "--database-url",
    envvar="DURABLE_DATABASE_URL",
    metavar="URL",
    help="System database (env DURABLE_DATABASE_URL; default sqlite:///durable.sqlite3).",
)
@click.version_option(package_name="durable-workflows", prog_name="durable")
@click.pass_context
def cli(ctx: click.Context, database_url: str | None) -> None:
    """Durable workflows: migrate the system database, inspect and control workflows, run
    workers."""
    # An integration mounting this group passes its own CliState (see run_group); an
    # explicit --database-url on the command line still wins over it.
    explicit = ctx.get_parameter_source("database_url") == click.core.ParameterSource.COMMANDLINE
    if not isinstance(ctx.obj, CliState) or explicit:
        ctx.obj = CliState(database_url=database_url)


cli.add_command(workflows_group)


@cli.command("migrate")
@click.option(
    "--app-database",
    "app_database",
    metavar="URL",
    default=None,
    help="Also create durable_transaction_outputs in this application database (where "
    "@transaction steps run, when it is not the system database).",
)
def migrate_command(app_database: str | None) -> None:
    """Create or upgrade the system database schema (and the application database's table).

    Run it with a role that may create tables; workers then need DML rights only."""
    from .store import open_store, parse_database_url, redact, resolve_database_url
    from .store.app_schema import migrate_app_database

    url = parse_database_url(resolve_database_url(_state().database_url))
    store = open_store(url, pool_size=1)
    try:
        version = store.migrate()
    finally:
        store.close()
    click.echo(f"System database {url.redacted} is at schema version {version}.")
    if app_database:
        app_url = parse_database_url(app_database)
        try:
            migrate_app_database(app_url.url)
        except Exception as exc:
            raise click.ClickException(
                f"Cannot migrate the application database {app_url.redacted}: {redact(str(exc))}"
            ) from None
        click.echo(f"Application database {app_url.redacted} has durable_transaction_outputs.")


@cli.command("health")
@click.option(
    "--executor-id",
    default=None,
    help="Also require this executor's heartbeat to be fresh (a worker's liveness probe).",
)
@click.option(
    "--max-heartbeat-age",
    type=click.FloatRange(min=0, min_open=True),
    default=30.0,
    show_default=True,
    help="Seconds after which a heartbeat is stale (the default lease).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=5.0,
    show_default=True,
    help="Answer FAIL (exit 1) when the checks have not finished within this many seconds: "
    "a database that accepts connections but never answers must not hang the probe.",
)
@json_option
def health_command(
    executor_id: str | None, max_heartbeat_age: float, timeout: float, as_json: bool
) -> None:
    """Exit 0 when the system database is reachable and migrated (and, with --executor-id,
    that executor's heartbeat is fresh), 1 otherwise, within --timeout seconds: for scripts
    and container probes."""
    from .health import Check, HealthReport, check
    from .store import open_store, parse_database_url, redact, resolve_database_url

    url = _state().database_url
    reports: list[HealthReport] = []

    def run_checks() -> None:
        try:
            store = open_store(parse_database_url(resolve_database_url(url)), pool_size=1)
        except Exception as exc:
            detail = redact(f"{type(exc).__name__}: {exc}")
            reports.append(HealthReport([Check("database", False, detail)]))
            return
        try:
            reports.append(
                check(store, executor_id=executor_id, max_heartbeat_age=max_heartbeat_age)
            )
        finally:
            store.close()

    # A daemon thread: a check stuck on a silent server cannot hold the process past the
    # answer (the exit below abandons it).
    worker = threading.Thread(target=run_checks, name="durable-health", daemon=True)
    worker.start()
    worker.join(timeout)
    if reports:
        report = reports[0]
    else:
        report = HealthReport(
            [Check("database", False, f"no answer within {timeout:g}s (--timeout)")]
        )
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
    else:
        for c in report.checks:
            click.echo(f"{c.name}: {'ok' if c.ok else 'FAIL'} ({c.detail})")
    sys.exit(0 if report.ok else 1)


def _limit(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, tuple | list):
        n, period = value
        return f"{n}/{period:g}s"
    return str(value)


def _queue_versions() -> tuple[dict[str, dict[str, dict[str, int]]], set[str]]:
    """{queue: {version: {"ENQUEUED": n, "PENDING": m}}} ("" for unversioned work) and the
    versions that live executors run."""
    client = _client()
    versions: dict[str, dict[str, dict[str, int]]] = {}
    for queue_name, status, version, count in client.store.queue_counts_by_version():
        per = versions.setdefault(queue_name, {}).setdefault(
            version or "", {"ENQUEUED": 0, "PENDING": 0}
        )
        per[status] += int(count)
    live = {e.application_version or "" for e in client.list_executors(ids=0) if e.live}
    return versions, live


def _unserved(versions: dict[str, dict[str, int]], live: set[str]) -> list[str]:
    # Unversioned work ("") is taken by a worker of any version.
    return sorted(v for v, n in versions.items() if n["ENQUEUED"] and v and v not in live)


def _queue_rows(queues: list[QueueInfo]) -> list[dict[str, Any]]:
    # "queue", "ENQUEUED" and "PENDING" are the keys this command printed before settings.
    versions, live = _queue_versions()
    return [{"queue": q.name, "ENQUEUED": q.enqueued, "PENDING": q.running, **q.as_dict(),
             "versions": versions.get(q.name, {}),
             "unserved_versions": _unserved(versions.get(q.name, {}), live)}
            for q in queues]  # fmt: skip


def _versions_cell(versions: dict[str, dict[str, int]], live: set[str]) -> str:
    from rich.markup import escape

    unserved = _unserved(versions, live)
    cells = []
    for version, n in sorted(versions.items()):
        text = f"{escape(version or '(unversioned)')}: {n['ENQUEUED']}/{n['PENDING']}"
        cells.append(f"[red]{text} no live worker[/]" if version in unserved else text)
    return ", ".join(cells) or "-"


def _print_queues(queues: list[QueueInfo], as_json: bool) -> None:
    if as_json:
        _print_json(_queue_rows(queues))
        return
    from rich.markup import escape
    from rich.table import Table

    versions, live = _queue_versions()
    table = Table("Queue", "State", "ENQUEUED", "PENDING", "Concurrency", "Per worker",
                  "Rate limit", "Overridden", "Declared by",
                  "Versions (waiting/running)")  # fmt: skip
    table.columns[-1].overflow = "fold"
    for q in queues:
        declared_by = "unknown" if q.declared is None else (q.declared_version or "this process")
        table.add_row(
            escape(q.name), "paused" if q.paused else "running", str(q.enqueued), str(q.running),
            _limit(q.concurrency), _limit(q.worker_concurrency), _limit(q.rate_limit),
            ", ".join(q.overridden) or "-", escape(declared_by),
            _versions_cell(versions.get(q.name, {}), live),
        )  # fmt: skip
    console = _console()
    console.print(table)
    if not queues:
        console.print("No queues: none declared, managed, or holding workflows.")


def _print_partitions(queue: str | None, top: int, as_json: bool) -> None:
    client = _client()
    now = client.store.now_ms()
    rows = client.store.partition_backlog(queue, now, limit=top)
    entries = [
        {"queue": q, "partition": key, "ENQUEUED": waiting, "PENDING": running,
         "oldest_age_seconds": None if since is None else max(now - since, 0) / 1000}
        for q, key, waiting, running, since in rows
    ]  # fmt: skip
    if as_json:
        _print_json(entries)
        return
    from rich.markup import escape
    from rich.table import Table

    table = Table("Queue", "Partition", "ENQUEUED", "PENDING", "Oldest waiting")
    for q, key, waiting, running, since in rows:
        table.add_row(
            escape(q), escape(repr(key)), str(waiting), str(running),
            "-" if since is None else f"{max(now - since, 0) / 1000:.1f}s",
        )  # fmt: skip
    console = _console()
    console.print(table)
    if not entries:
        console.print("No partitioned work waiting or running.")
    elif len(entries) == top:
        console.print(f"The {top} deepest partitions; --top N shows more.")


@click.group("queues", cls=ErrorHandlingGroup, invoke_without_command=True)
@json_option
@click.option(
    "--partitions",
    "partitions",
    is_flag=False,
    flag_value="*",
    default=None,
    metavar="[QUEUE]",
    help="Per partition key of partitioned queues (all, or QUEUE's): depth, running, oldest.",
)
@click.option("--top", default=50, show_default=True, help="With --partitions: the N deepest.")
@click.pass_context
def queues_group(ctx: click.Context, as_json: bool, partitions: str | None, top: int) -> None:
    """Queues: backlog (ENQUEUED), running (PENDING), paused, and the limits in force (stored
    overrides over the code's declaration). Subcommands pause, resume and change them
    fleet-wide; every worker honours a change at its next claim. ``--partitions`` lists a
    partitioned queue's keys instead, the deepest first."""
    if ctx.invoked_subcommand is None:
        if partitions is not None:
            _print_partitions(None if partitions == "*" else partitions, max(top, 1), as_json)
            return
        _print_queues(_client().list_queues(), as_json)


@queues_group.command("list")
@json_option
def queues_list_command(as_json: bool) -> None:
    """The same table as ``durable queues``."""
    _print_queues(_client().list_queues(), as_json)


@queues_group.command("pause")
@click.argument("name")
@json_option
def queues_pause_command(name: str, as_json: bool) -> None:
    """Stop every worker claiming from queue NAME (running work goes on; enqueues wait)."""
    _print_queues([_client().pause_queue(name)], as_json)


@queues_group.command("resume")
@click.argument("name")
@json_option
def queues_resume_command(name: str, as_json: bool) -> None:
    """Let workers claim from queue NAME again."""
    _print_queues([_client().resume_queue(name)], as_json)


if TYPE_CHECKING:  # generic since click 8.2; the requirement still allows 8.1 at run time
    _TimedeltaParam = click.ParamType[dt.timedelta]
    _AnyParam = click.ParamType[Any]
else:
    _TimedeltaParam = _AnyParam = click.ParamType


class LimitType(_AnyParam):
    """A positive integer, or ``none`` to lift the limit."""

    name = "N|none"

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        if value is None or isinstance(value, int):
            return value
        if str(value).strip().lower() == "none":
            return _LIFTED
        try:
            return int(value)
        except ValueError:
            self.fail(f"{value!r} is not a positive integer or 'none'", param, ctx)


class RateType(_AnyParam):
    """``N/SECONDS`` (``10/1``, ``100/60``), or ``none`` to lift the limit."""

    name = "N/SECONDS|none"

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        text = str(value).strip().lower()
        if text == "none":
            return _LIFTED
        match = re.fullmatch(r"(\d+)\s*/\s*(\d+(?:\.\d+)?)\s*s?", text)
        if not match:
            self.fail(f"{value!r} is not N/SECONDS (say 10/1) or 'none'", param, ctx)
        return (int(match.group(1)), float(match.group(2)))


_LIFTED = "none"  # a limit given as "none" on the command line: lifted (no limit)


@queues_group.command("set")
@click.argument("name")
@click.option("--concurrency", type=LimitType(), help="Most running at once, fleet-wide.")
@click.option("--worker-concurrency", type=LimitType(), help="Most running at once per worker.")
@click.option("--rate-limit", type=RateType(), help="At most N starts per SECONDS (10/1).")
@json_option
def queues_set_command(
    name: str, concurrency: Any, worker_concurrency: Any, rate_limit: Any, as_json: bool
) -> None:
    """Override limits of queue NAME fleet-wide until ``durable queues reset`` (``none``
    lifts a limit; limits not given stay as they are)."""
    given = {
        key: None if value == _LIFTED else value
        for key, value in (
            ("concurrency", concurrency),
            ("worker_concurrency", worker_concurrency),
            ("rate_limit", rate_limit),
        )
        if value is not None
    }
    if not given:
        raise click.UsageError("give --concurrency, --worker-concurrency or --rate-limit")
    _print_queues([_client().set_queue_limits(name, **given)], as_json)


@queues_group.command("reset")
@click.argument("name")
@json_option
def queues_reset_command(name: str, as_json: bool) -> None:
    """Drop the stored limits of queue NAME: its declaration is in force again (a pause
    stays; ``durable queues resume`` undoes it)."""
    _print_queues([_client().reset_queue(name)], as_json)


cli.add_command(queues_group)


@cli.command("executors")
@click.option(
    "--lease",
    type=float,
    default=30.0,
    show_default=True,
    help="Seconds without a heartbeat after which an executor is shown dead (the fleet's lease).",
)
@click.option("--live", "live_only", is_flag=True, help="Only live executors.")
@click.option("--ids", type=click.IntRange(0, 1000), default=5, show_default=True,
              help="How many of each executor's running workflow IDs to show.")  # fmt: skip
@json_option
def executors_command(lease: float, live_only: bool, ids: int, as_json: bool) -> None:
    """Executors (worker and web processes): live or dead, version, what each runs."""
    executors = [e for e in _client().list_executors(lease, ids) if e.live or not live_only]
    if as_json:
        _print_json([e.as_dict() for e in executors])
        return
    from rich.markup import escape
    from rich.table import Table

    table = Table("Executor", "State", "Version", "Host", "PID", "Heartbeat", "Running",
                  "Workflows")  # fmt: skip
    for e in executors:
        names = ", ".join(f"{n} x{c}" for n, c in e.running_by_name.items())
        shown = ", ".join(e.workflow_ids) + (" ..." if e.running > len(e.workflow_ids) else "")
        table.add_row(
            escape(e.executor_id), "live" if e.live else "dead",
            escape(e.application_version or "-"), escape(e.hostname or "-"),
            str(e.pid or "-"), f"{e.heartbeat_age:.1f}s ago", str(e.running),
            escape(f"{names}\n{shown}") if names else "-",
        )  # fmt: skip
    console = _console()
    console.print(table)
    if not executors:
        console.print("No executors registered." if not live_only else "No live executors.")


# -- durable schedules ... -------------------------------------------------------------------------

CATCHUP = ("skip", "latest", "all")
OVERLAP = ("skip", "allow", "cancel")


@cli.group("schedules", cls=ErrorHandlingGroup)
def schedules_group() -> None:
    """Create, list, pause, resume, trigger, backfill and delete schedules (stored in the
    system database; every worker honours a change within about a second)."""


def _datetime_option(value: str | None, what: str) -> dt.datetime | None:
    """ISO 8601; a time without an offset is UTC."""
    if value is None:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 time", param_hint=what) from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=dt.UTC)


def _json_value(value: str | None, what: str, kind: type) -> Any:
    if value is None:
        return None
    try:
        parsed = json.loads(value)
    except ValueError:
        raise click.BadParameter(f"not valid JSON: {value!r}", param_hint=what) from None
    if not isinstance(parsed, kind):
        raise click.BadParameter(f"must be a JSON {kind.__name__}", param_hint=what)
    return parsed


def _schedule_line(s: Any, verb: str, as_json: bool) -> None:
    if as_json:
        _print_json(s)
    else:
        state = "paused" if s.paused else f"next tick {_when(s.next_tick) or '-'} UTC"
        click.echo(f"{verb} schedule {s.schedule_id}: {state}")


@schedules_group.command("list")
@json_option
def schedules_list_command(as_json: bool) -> None:
    """Every schedule: created ones and @scheduled ones (source "code")."""
    rows = _client().list_schedules()
    if as_json:
        _print_json(rows)
        return
    from rich.markup import escape
    from rich.table import Table

    table = Table(
        "ID", "Workflow", "Cron", "Time zone", "Policies", "State", "Last tick (UTC)",
        "Next tick (UTC)", "Source",
    )  # fmt: skip
    table.columns[0].no_wrap = True
    for s in rows:
        table.add_row(
            escape(s.schedule_id),
            escape(s.workflow_name),
            escape(s.cron),
            escape(s.timezone),
            f"catch-up {s.catchup}, overlap {s.overlap}",
            "[yellow]paused[/]" if s.paused else "[green]active[/]",
            _when(s.last_tick),
            _when(s.next_tick),
            s.source,
        )
    console = _console()
    console.print(table)
    console.print(f"{len(rows)} schedule(s)")


@schedules_group.command("show")
@click.argument("schedule_id")
@json_option
def schedules_show_command(schedule_id: str, as_json: bool) -> None:
    """One schedule with its arguments and its latest run."""
    s = _client().get_schedule(schedule_id)
    if as_json:
        _print_json(s)
        return
    for label, value in (
        ("ID", s.schedule_id),
        ("Workflow", s.workflow_name),
        ("Cron", f"{s.cron} ({s.timezone})"),
        ("Args", _short(list(s.args), 2000)),
        ("Kwargs", _short(s.kwargs, 2000)),
        ("Queue", s.queue or ""),
        ("Catch-up", f"{s.catchup} (at most {s.max_catchup})" if s.catchup == "all" else s.catchup),
        ("Overlap", s.overlap),
        ("State", "paused" if s.paused else "active"),
        ("Source", s.source),
        ("Last tick", _when(s.last_tick)),
        ("Last run", s.last_workflow_id or ""),
        ("Next tick", _when(s.next_tick)),
    ):
        click.echo(f"{label + ':':<11}{value}")


@schedules_group.command("create")
@click.argument("schedule_id")
@click.argument("workflow")
@click.argument("cron")
@click.option("--timezone", default="UTC", show_default=True, help="IANA zone of the cron times.")
@click.option("--args", "args_json", help="JSON list of extra arguments (after the two times).")
@click.option("--kwargs", "kwargs_json", help="JSON object of keyword arguments.")
@click.option("--queue", help="Enqueue each run on this queue instead of starting it.")
@click.option("--catchup", type=click.Choice(CATCHUP), default="latest", show_default=True)
@click.option("--max-catchup", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--overlap", type=click.Choice(OVERLAP), default="skip", show_default=True)
@click.option("--paused", is_flag=True, help="Create it paused.")
@json_option
def schedules_create_command(
    schedule_id: str,
    workflow: str,
    cron: str,
    timezone: str,
    args_json: str | None,
    kwargs_json: str | None,
    queue: str | None,
    catchup: str,
    max_catchup: int,
    overlap: str,
    paused: bool,
    as_json: bool,
) -> None:
    """Create SCHEDULE_ID: run WORKFLOW (its registered name) at each tick of CRON (five
    fields, or six with seconds; quote it)."""
    created = _client().create_schedule(
        schedule_id,
        workflow,
        cron,
        timezone=timezone,
        args=_json_value(args_json, "--args", list) or (),
        kwargs=_json_value(kwargs_json, "--kwargs", dict),
        queue=queue,
        catchup=catchup,
        max_catchup=max_catchup,
        overlap=overlap,
        paused=paused,
    )
    _schedule_line(created, "Created", as_json)


@schedules_group.command("update")
@click.argument("schedule_id")
@click.option("--cron")
@click.option("--timezone")
@click.option("--workflow")
@click.option("--args", "args_json", help="JSON list of extra arguments.")
@click.option("--kwargs", "kwargs_json", help="JSON object of keyword arguments.")
@click.option("--queue")
@click.option("--no-queue", is_flag=True, help="Start runs on the firing engine again.")
@click.option("--catchup", type=click.Choice(CATCHUP))
@click.option("--max-catchup", type=click.IntRange(min=1))
@click.option("--overlap", type=click.Choice(OVERLAP))
@json_option
def schedules_update_command(schedule_id: str, no_queue: bool, as_json: bool, **given: Any) -> None:
    """Change the given settings of a schedule; a new cron or time zone counts from now."""
    changes = {k: v for k, v in given.items() if v is not None and not k.endswith("_json")}
    if given["args_json"] is not None:
        changes["args"] = _json_value(given["args_json"], "--args", list)
    if given["kwargs_json"] is not None:
        changes["kwargs"] = _json_value(given["kwargs_json"], "--kwargs", dict)
    if no_queue:
        changes["queue"] = None
    if not changes:
        raise click.UsageError("nothing to change: give at least one option")
    _schedule_line(_client().update_schedule(schedule_id, **changes), "Updated", as_json)


@schedules_group.command("pause")
@click.argument("schedule_id")
@json_option
def schedules_pause_command(schedule_id: str, as_json: bool) -> None:
    """Stop firing ticks, fleet-wide."""
    _schedule_line(_client().pause_schedule(schedule_id), "Paused", as_json)


@schedules_group.command("resume")
@click.argument("schedule_id")
@json_option
def schedules_resume_command(schedule_id: str, as_json: bool) -> None:
    """Fire again from the next tick (ticks that passed while paused are not caught up)."""
    _schedule_line(_client().resume_schedule(schedule_id), "Resumed", as_json)


@schedules_group.command("trigger")
@click.argument("schedule_id")
@click.option("--workflow-id", help="ID of the run (default: sched:<ID>:trigger:<uuid>).")
@json_option
def schedules_trigger_command(schedule_id: str, workflow_id: str | None, as_json: bool) -> None:
    """Start one run now (enqueued for a worker that knows the workflow)."""
    handle = _client().trigger_schedule(schedule_id, workflow_id)
    if as_json:
        _print_json({"schedule_id": schedule_id, "workflow_id": handle.workflow_id})
    else:
        click.echo(f"Triggered schedule {schedule_id}: {handle.workflow_id}")


@schedules_group.command("backfill")
@click.argument("schedule_id")
@click.option("--start", required=True, help="ISO 8601 time (UTC if no offset), included.")
@click.option("--end", required=True, help="ISO 8601 time (UTC if no offset), excluded.")
@json_option
def schedules_backfill_command(schedule_id: str, start: str, end: str, as_json: bool) -> None:
    """Start a run for every tick in [--start, --end); ticks that already ran are not run
    again."""
    begin, finish = _datetime_option(start, "--start"), _datetime_option(end, "--end")
    assert begin is not None and finish is not None
    handles = _client().backfill_schedule(schedule_id, begin, finish)
    new = [h.workflow_id for h in handles if h.created]
    if as_json:
        _print_json({"schedule_id": schedule_id, "ticks": len(handles), "started": new})
    else:
        click.echo(
            f"Backfilled schedule {schedule_id}: {len(handles)} tick(s), {len(new)} new run(s)"
        )


@schedules_group.command("delete")
@click.argument("schedule_id")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def schedules_delete_command(schedule_id: str, yes: bool) -> None:
    """Delete a schedule (its runs stay)."""
    if not yes:
        click.confirm(f"Delete schedule {schedule_id}?", abort=True)
    _client().delete_schedule(schedule_id)
    click.echo(f"Deleted schedule {schedule_id}")


_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> dt.timedelta:
    """``30s``, ``15m``, ``12h``, ``7d`` (a bare number is seconds)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text.lower())
    if not match:
        raise ValueError(f"{text!r} is not a duration like 30s, 15m, 12h or 7d")
    return dt.timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])


class DurationType(_TimedeltaParam):
    name = "DURATION"

    def convert(self, value: Any, param: Any, ctx: Any) -> dt.timedelta:
        if isinstance(value, dt.timedelta):
            return value
        try:
            return parse_duration(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


@cli.command("gc")
@click.option(
    "--older-than",
    type=DurationType(),
    required=True,
    help="Delete finished workflows that finished longer ago than this (30s, 15m, 12h, 7d).",
)
def gc_command(older_than: dt.timedelta) -> None:
    """Delete finished workflows with their steps, messages, events and streams."""
    deleted = _client().garbage_collect(older_than)
    click.echo(f"Deleted {deleted} finished workflow(s) older than {older_than}.")


# -- durable worker ----------------------------------------------------------------------------


def import_app(modules: Sequence[str]) -> None:
    """Import the user's modules so their workflows and queues register; the current
    directory is importable, as it is for ``python -m``."""
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise click.ClickException(f"Cannot import --app {module!r}: {exc}") from None


def _split_queues(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [name.strip() for name in value.split(",") if name.strip()]


@cli.command("worker")
@click.option(
    "--app",
    "modules",
    multiple=True,
    metavar="MODULE",
    help="Module declaring the workflows and queues (repeatable; required).",
)
@click.option("--queues", help="Comma-separated queues to serve (default: all declared).")
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=64,
    show_default=True,
    help="Most workflows running at once in this process.",
)
@click.option(
    "--app-database",
    "app_database",
    envvar="DURABLE_APP_DATABASE_URL",
    help="Where @transaction steps run, sync and async (env DURABLE_APP_DATABASE_URL; "
    "default: the system database).",
)
@click.option("--executor-id", help="Stable name of this worker (env DURABLE_EXECUTOR_ID).")
@click.option("--application-version", help="Default: a digest of the workflows' source.")
@click.option(
    "--shutdown-timeout",
    type=click.FloatRange(min=0),
    default=30.0,
    show_default=True,
    help="Seconds to let running workflows finish after SIGTERM/SIGINT.",
)
@click.option(
    "--log-level",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    default="INFO",
    show_default=True,
)
@click.option(
    "--metrics-port",
    type=click.IntRange(min=0, max=65535),
    default=None,
    help="Serve Prometheus metrics on this port (GET /metrics); needs prometheus-client.",
)
def worker_command(
    modules: tuple[str, ...],
    queues: str | None,
    concurrency: int,
    app_database: str | None,
    executor_id: str | None,
    application_version: str | None,
    shutdown_timeout: float,
    log_level: str,
    metrics_port: int | None,
) -> None:
    """Serve queues, schedules and recovery until SIGTERM or SIGINT, then shut down
    gracefully and exit 0."""
    from . import metrics
    from .engine import Engine

    if metrics_port is not None and not metrics.metrics_available():
        raise click.ClickException(
            "--metrics-port needs prometheus-client: pip install 'durable-workflows[metrics]'"
        )
    configure_logging(log_level)
    state = _state()
    if state.engine_factory is None:
        if not modules:
            raise click.UsageError("Missing option '--app'.")
        import_app(modules)
    queue_names = _split_queues(queues)
    check_queues(queue_names, ", ".join(modules) or "the application")
    options: dict[str, Any] = {
        "executor_id": executor_id,
        "application_version": application_version,
        "queues": queue_names,
        "max_workers": concurrency,
    }
    if state.engine_factory is not None:
        if app_database is not None:
            raise click.UsageError(
                "--app-database does not apply here: the integration runs @transaction steps "
                "on its own database (Django: DURABLE['DATABASE'] or @transaction(using=...))."
            )
        # Only what the command line says; the integration's settings fill in the rest.
        options = {k: v for k, v in options.items() if v is not None}
        source = click.get_current_context().get_parameter_source("concurrency")
        if source == click.core.ParameterSource.DEFAULT:
            options.pop("max_workers")
        engine = state.engine_factory(**options)
    else:
        if app_database is not None:
            from .store import parse_database_url

            parse_database_url(app_database)  # a malformed URL is a clear error, before launch
        engine = Engine(state.database_url, app_database=app_database, **options)
    serve(engine, shutdown_timeout, metrics_port=metrics_port)


def configure_logging(level: str) -> None:
    """Log records of ``level`` and above to stderr (unless the application configured a
    handler on the root logger), and set the library's loggers to ``level``."""
    logging.basicConfig(
        level=level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("durable_core").setLevel(level.upper())
    logging.getLogger("django_durable").setLevel(level.upper())
    logging.getLogger("fastapi_durable").setLevel(level.upper())


def check_queues(queue_names: list[str] | None, where: str) -> None:
    """``--queues`` must name declared queues (a typo would serve nothing, silently)."""
    from .registry import REGISTRY

    unknown = [q for q in queue_names or () if q not in REGISTRY.queues]
    if unknown:
        declared = ", ".join(sorted(q for q in REGISTRY.queues if not q.startswith("_"))) or "none"
        raise click.ClickException(
            f"--queues names {', '.join(map(repr, unknown))}, which {where} "
            f"does not declare (declared: {declared})."
        )


def serve(
    engine: Engine,
    shutdown_timeout: float,
    on_ready: Callable[[Engine], None] | None = None,
    metrics_port: int | None = None,
) -> None:
    """The worker loop, shared by ``durable worker`` and integrations' worker commands:
    launch, serve until SIGTERM/SIGINT, shut down within ``shutdown_timeout`` and return
    (or exit the process at once if workflows are still running then; a second signal
    exits immediately). What is left running is recovered later, as after a crash.
    ``metrics_port``: serve Prometheus metrics there while running."""
    stop = threading.Event()
    _install_signal_handlers(stop)
    engine.launch()
    metrics_server = None
    if metrics_port is not None:
        from . import metrics

        metrics_server = metrics.serve(engine.store, metrics_port)
        log.info("metrics on port %d", metrics_server.server_address[1])
    served = ", ".join(q.name for q in engine.queue_worker.served()) or "none"
    log.info("worker %s ready; serving queues: %s", engine.executor_id, served)
    if on_ready is not None:
        on_ready(engine)
    warn_other_versions(engine)
    waited = 0
    while not stop.wait(1.0):
        waited += 1
        if waited % 60 == 0:
            warn_other_versions(engine)
    if metrics_server is not None:
        metrics_server.shutdown()
    log.info("stopping: letting running workflows finish for up to %ss", shutdown_timeout)
    engine.shutdown(timeout=shutdown_timeout)
    log.info("worker %s stopped", engine.executor_id)
    _exit_despite_running_steps(engine.inflight)


def warn_other_versions(engine: Engine, sample: int = 500) -> dict[str, int]:
    """Log, loudly, enqueued workflows of an application version this worker does not take
    (a deploy that changed the workflows' source changes the default version; the old
    workers then leave the new work alone). Returns {version: count} of the oldest
    ``sample`` enqueued workflows."""
    try:
        rows = engine.list_workflows(status="ENQUEUED", limit=sample, newest_first=False)
    except Exception as exc:  # a database hiccup must not stop the worker
        log.debug("version check skipped: %s", exc)
        return {}
    others: dict[str, int] = {}
    for row in rows:
        version = row.application_version
        if version and version != engine.application_version:
            others[version] = others.get(version, 0) + 1
    if others:
        listed = ", ".join(f"{n} of version {v!r}" for v, n in sorted(others.items()))
        log.warning(
            "enqueued workflows that no worker of this version takes: %s; this worker runs "
            "version %r. Start workers of that version, or give every process the same "
            "application version (Engine(application_version=...), --application-version, "
            "Django: DURABLE['APPLICATION_VERSION'])",
            listed,
            engine.application_version,
        )
    return others


def _exit_despite_running_steps(running: int) -> None:
    """Workflows still running after the shutdown timeout hold pool threads that the
    interpreter would join at exit. They are recovered later, as after a crash, so exit now
    as promised."""
    if running:
        log.warning("%d workflow(s) still running are left for recovery; exiting", running)
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def _install_signal_handlers(stop: threading.Event) -> None:
    """First SIGTERM/SIGINT: graceful shutdown. A second one: exit at once (what is left
    running is recovered later, as after a crash)."""

    def handle(signum: int, frame: Any) -> None:
        if stop.is_set():
            log.warning("second %s: exiting now", signal.Signals(signum).name)
            os._exit(1)
        log.info("received %s", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)


def main(argv: Sequence[str] | None = None) -> None:
    """Console script entry point."""
    cli.main(args=None if argv is None else list(argv), prog_name="durable")
