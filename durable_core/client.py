"""Client: enqueue, inspect and control workflows from a process that does not hold their code."""

from __future__ import annotations

import asyncio
import functools
import uuid
from typing import Any

from . import control, observability, validation
from .errors import WorkflowConflict
from .handles import WorkflowHandle
from .serialization import Serializer, encode_arguments, make_serializer
from .store import (
    SQLStore,
    WorkflowRow,
    open_store,
    parse_database_url,
    resolve_database_url,
)
from .wakeups import Notifier, PostgresListener, SQLiteWatcher


class Client(control.WorkflowControl):
    """Talks to the system database only. It never creates the schema: point it at a database
    that an Engine or ``durable migrate`` has migrated."""

    def __init__(
        self,
        database_url: str | None = None,
        serializer: str | Serializer = "json",
        *,
        poll_interval: float = 1.0,
    ):
        self.url = parse_database_url(resolve_database_url(database_url))
        self.serializer = make_serializer(serializer)
        self.store: SQLStore = open_store(self.url, pool_size=5)
        try:
            self.store.check_schema()
        except Exception:
            self.store.close()
            raise
        self.notifier = Notifier()
        self.store.on_commit = self.notifier.notify
        self.poll_interval = poll_interval
        self._listener: PostgresListener | None = None
        if self.url.dialect == "postgresql":
            self._listener = PostgresListener(self.store.conninfo, self.notifier)
            self._listener.start()
        self._watcher: SQLiteWatcher | None = None
        if self.url.dialect == "sqlite":
            self._watcher = SQLiteWatcher(self.store, self.notifier)
            self._watcher.start()

    def close(self) -> None:
        if self._listener is not None:
            self._listener.stop()
        if self._watcher is not None:
            self._watcher.stop()
        self.store.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    async def close_async(self) -> None:
        await asyncio.to_thread(self.close)

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close_async()

    def enqueue(
        self,
        queue_name: str,
        workflow_name: str,
        *args: Any,
        kwargs: dict[str, Any] | None = None,
        workflow_id: str | None = None,
        priority: int | None = None,
        deduplication_id: str | None = None,
        delay: float | None = None,
        timeout: float | None = None,
        application_version: str | None = None,
        max_recovery_attempts: int | None = 50,
        partition_key: str | None = None,
        debounce_key: str | None = None,
        debounce: float | None = None,
        debounce_max_wait: float | None = None,
    ) -> WorkflowHandle[Any]:
        """Enqueue workflow ``workflow_name`` on ``queue_name`` by name.

        ``debounce_key``/``debounce``/``debounce_max_wait``: as ``Queue.enqueue``.

        ``partition_key``: the key on a partitioned queue. A client does not hold the queue's
        declaration, so it cannot refuse a missing key: a key-less workflow on a partitioned
        queue joins the default partition ``""`` within a few seconds (the workers put it
        there), and a key on an unpartitioned queue is stored but has no effect."""
        # The same rules as Engine and Queue.enqueue (validation.py): an empty workflow_id is
        # refused, not silently replaced by a new one.
        queue_name = validation.name(queue_name, "queue_name")
        workflow_name = validation.name(workflow_name, "workflow_name")
        debounced = validation.debounce(
            debounce_key, debounce, debounce_max_wait,
            workflow_id=workflow_id, deduplication_id=deduplication_id, delay=delay,
        )  # fmt: skip
        workflow_id = validation.optional_workflow_id(workflow_id) or str(uuid.uuid4())
        timeout = validation.timeout_seconds(timeout)
        delay = validation.delay_seconds(delay)
        priority = validation.priority(priority)
        deduplication_id = validation.deduplication_id(deduplication_id)
        partition_key = validation.partition_key(partition_key)
        application_version = validation.optional_text(application_version, "application_version")
        max_recovery_attempts = validation.max_recovery_attempts(max_recovery_attempts)
        kwargs = validation.keyword_arguments(kwargs)
        inputs = encode_arguments(self.serializer, workflow_name, args, kwargs)
        t = self.store.now_ms()
        row = WorkflowRow(
            workflow_id=workflow_id,
            name=workflow_name,
            status="ENQUEUED",
            queue_name=queue_name,
            inputs=inputs,
            application_version=application_version,
            max_recovery_attempts=max_recovery_attempts,
            priority=priority,
            deduplication_id=deduplication_id,
            not_before=t + int(delay * 1000) if delay else None,
            timeout_ms=None if timeout is None else int(timeout * 1000),
            created_at=t,
            updated_at=t,
            trace_context=observability.current_trace_context(),
            partition_key=partition_key,
        )
        if debounced is not None:
            key, window, max_wait = debounced
            row.debounce_key = key
            row.not_before = t + int((window if max_wait is None else min(window, max_wait)) * 1000)
            workflow_id, created = self.store.debounce_workflow(
                row, None if max_wait is None else int(max_wait * 1000)
            )
            self.notifier.notify("q", queue_name)
            return WorkflowHandle(self, workflow_id, created=created)
        created = self.store.insert_workflow(row)
        if not created:
            existing = self.store.get_workflow(workflow_id)
            if existing is not None and existing.name != workflow_name:
                raise WorkflowConflict(workflow_id, existing.name, workflow_name)
        self.notifier.notify("q", queue_name)
        return WorkflowHandle(self, workflow_id, created=created)

    async def enqueue_async(
        self, queue_name: str, workflow_name: str, *args: Any, **options: Any
    ) -> WorkflowHandle[Any]:
        """``enqueue`` from async code (options as there)."""
        call = functools.partial(self.enqueue, queue_name, workflow_name, *args, **options)
        return await asyncio.to_thread(call)

    def resume_workflow(self, workflow_id: str) -> WorkflowHandle[Any]:
        control.resume_workflow(self.store, workflow_id)
        return WorkflowHandle(self, workflow_id)

    def fork_workflow(
        self, workflow_id: str, /, start_step: int, workflow_id_new: str | None = None, **kw: Any
    ) -> WorkflowHandle[Any]:
        # ``workflow_id`` is positional-only so that ``workflow_id=`` (the new ID, as in
        # API.md) lands in ``kw`` instead of colliding with the source ID.
        new_id = kw.pop("workflow_id", None) or workflow_id_new
        row = control.fork_workflow(
            self.store, workflow_id, start_step, new_id, executor_id=None, application_version=None
        )
        return WorkflowHandle(self, row.workflow_id)
