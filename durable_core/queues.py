"""Queues: declaration, enqueue, and the dequeue loop with global flow control.

Limits live in the database, not in a process: ``concurrency`` counts PENDING workflows of the
queue across all workers and ``rate_limit`` counts starts in the window, both inside the claim
transaction (serialized per queue by an advisory lock on PostgreSQL and by SQLite's single
writer). Claims take a batch at once with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import math
import threading
import time
import uuid
from collections.abc import Callable, Coroutine, Iterable, Sequence
from typing import Any, TypeVar, overload

from . import context as ctxmod
from . import metrics, observability, validation
from .context import engine_for_call
from .errors import ConfigurationError
from .execution import checkpoint
from .handles import WorkflowHandle
from .registry import REGISTRY, Workflow, resolve_workflow
from .runtime import Runtime
from .store import QueueClaim, QueueSettings, StepRow

log = logging.getLogger("durable_core.queues")

R = TypeVar("R")

INTERNAL_QUEUE_NAME = "_durable_internal"


class Queue:
    """A named queue of workflows served by every worker that declares it.

    Parameters:
        concurrency: most workflows of this queue running at once across all workers.
        worker_concurrency: most running at once in one worker process.
        rate_limit: ``(n, seconds)``: at most n starts in any window of that many seconds.
        priority_enabled: honour ``enqueue(priority=...)``; lower runs first.
        partitioned: every workflow names a ``partition_key`` (a tenant, a customer) at
            enqueue, and claims go round-robin over the keys with waiting work, so one key's
            backlog does not hold up another key's items (see ``store/partitions.py``).
        partition_concurrency: most running at once per key, across all workers.
        partition_worker_concurrency: most running at once per key in one worker process.
        partition_rate_limit: ``(n, seconds)``: at most n starts per key in any such window.

    The queue-wide limits apply to a partitioned queue as well (both bind). A partitioned
    queue orders each key's items by age; it cannot also be ``priority_enabled``.
    """

    def __init__(
        self,
        name: str,
        concurrency: int | None = None,
        worker_concurrency: int | None = None,
        rate_limit: tuple[int, float] | None = None,
        priority_enabled: bool = False,
        partitioned: bool = False,
        partition_concurrency: int | None = None,
        partition_worker_concurrency: int | None = None,
        partition_rate_limit: tuple[int, float] | None = None,
    ) -> None:
        if not isinstance(name, str) or not name or "\x00" in name or len(name) > 200:
            raise ConfigurationError(
                f"queue name must be a non-empty string of at most 200 characters, not {name!r}"
            )
        # The same rules as a change at run time (``set_queue_limits``): validation.py.
        concurrency = validation.queue_limit(concurrency, f"Queue {name!r}: concurrency")
        worker_concurrency = validation.queue_limit(
            worker_concurrency, f"Queue {name!r}: worker_concurrency"
        )
        rate_limit = validation.rate_limit(rate_limit, f"Queue {name!r}: rate_limit")
        partition_concurrency = validation.queue_limit(
            partition_concurrency, f"Queue {name!r}: partition_concurrency"
        )
        partition_worker_concurrency = validation.queue_limit(
            partition_worker_concurrency, f"Queue {name!r}: partition_worker_concurrency"
        )
        partition_rate_limit = validation.rate_limit(
            partition_rate_limit, f"Queue {name!r}: partition_rate_limit"
        )
        per_key = (partition_concurrency, partition_worker_concurrency, partition_rate_limit)
        if not partitioned and any(limit is not None for limit in per_key):
            raise ConfigurationError(f"Queue {name!r}: per-partition limits need partitioned=True")
        if partitioned and priority_enabled:
            raise ConfigurationError(
                f"Queue {name!r}: a partitioned queue claims round-robin over its keys and "
                "cannot also be priority_enabled"
            )
        self.partitioned = bool(partitioned)
        self.partition_concurrency = partition_concurrency
        self.partition_worker_concurrency = partition_worker_concurrency
        self.partition_rate_limit = partition_rate_limit
        self.name = name
        self.concurrency = concurrency
        self.worker_concurrency = worker_concurrency
        self.rate_limit = rate_limit
        self.priority_enabled = priority_enabled
        existing = REGISTRY.queues.get(name)
        if existing is not None and existing._settings() != self._settings():
            raise ConfigurationError(f"Queue {name!r} is declared twice with different settings")
        REGISTRY.queues[name] = self

    def _settings(self) -> tuple[Any, ...]:
        return (
            self.concurrency,
            self.worker_concurrency,
            self.rate_limit,
            self.priority_enabled,
            self.partitioned,
            self.partition_concurrency,
            self.partition_worker_concurrency,
            self.partition_rate_limit,
        )

    def _partition_key(self, partition_key: Any) -> str | None:
        """The key a workflow is enqueued with, checked against the declaration."""
        key: str | None = validation.partition_key(partition_key)
        if self.partitioned and key is None:
            raise ConfigurationError(
                f"Queue {self.name!r} is partitioned: enqueue(..., partition_key=...) is "
                'required (a tenant, a customer; "" is the default partition)'
            )
        if not self.partitioned and key is not None:
            raise ConfigurationError(
                f"Queue {self.name!r} was declared without partitioned=True, so a "
                "partition_key would have no effect"
            )
        return key

    def __repr__(self) -> str:
        return f"Queue({self.name!r})"

    @overload
    def enqueue(
        self, fn: Workflow[..., Coroutine[Any, Any, R]], *args: Any, **kwargs: Any
    ) -> WorkflowHandle[R]: ...

    @overload
    def enqueue(self, fn: Workflow[..., R], *args: Any, **kwargs: Any) -> WorkflowHandle[R]: ...

    @overload
    def enqueue(self, fn: str, *args: Any, **kwargs: Any) -> WorkflowHandle[Any]: ...

    def enqueue(
        self,
        fn: Any,
        *args: Any,
        workflow_id: str | None = None,
        priority: int | None = None,
        deduplication_id: str | None = None,
        delay: float | None = None,
        timeout: float | None = None,
        partition_key: str | None = None,
        debounce_key: str | None = None,
        debounce: float | None = None,
        debounce_max_wait: float | None = None,
        **kwargs: Any,
    ) -> WorkflowHandle[Any]:
        """Store the workflow as ENQUEUED for any worker serving this queue.

        ``partition_key``: required on a partitioned queue, refused on another.
        ``debounce_key`` with ``debounce=seconds``: enqueues with the same key on this queue
        coalesce into one workflow while it waits, run ``debounce`` seconds after the latest
        of them with the latest arguments, but no later than ``debounce_max_wait`` seconds
        after the first (``store/debounce.py``). The handle is that one workflow's."""
        partition_key = self._partition_key(partition_key)
        debounced = validation.debounce(
            debounce_key, debounce, debounce_max_wait,
            workflow_id=workflow_id, deduplication_id=deduplication_id, delay=delay,
        )  # fmt: skip
        if priority is not None:
            validation.priority(priority)
            if not self.priority_enabled:
                raise ConfigurationError(
                    f"Queue {self.name!r} was declared without priority_enabled=True"
                )
        if debounced is not None:
            if ctxmod.current() is not None:
                raise ConfigurationError(
                    "a debounced enqueue is refused inside a workflow (its enqueues are steps "
                    "with one recorded child each); enqueue from a step or outside"
                )
            return self._enqueue_debounced(
                fn, args, kwargs, debounced, priority=priority, timeout=timeout,
                partition_key=partition_key,
            )  # fmt: skip
        validation.deduplication_id(deduplication_id)
        validation.optional_workflow_id(workflow_id)
        defn = resolve_workflow(fn)
        engine = engine_for_call()
        ctx = ctxmod.current()
        step_id = None
        started = 0
        if ctx is not None and ctx.engine is engine:
            step_id = ctx.next_step_id()
            recorded = ctx.replayed(step_id, defn.name)
            if recorded is not None:
                return WorkflowHandle(engine, recorded.child_workflow_id or "")
            ctx.check_live()
            workflow_id = workflow_id or validation.child_workflow_id(ctx.workflow_id, step_id)
            started = engine.clock.now_ms()
        conn, on_commit = engine.transactional_connection() if ctx is None else (None, None)
        # Not current: the workflow stores the caller's context, as without the span.
        with observability.operation_span(
            "enqueue", current=False, queue=self.name, target_name=defn.name
        ):
            row, created = engine.create_workflow(
                defn,
                args,
                kwargs,
                workflow_id=workflow_id,
                parent=ctx,
                timeout=timeout,
                queue=self.name,
                priority=priority,
                deduplication_id=deduplication_id,
                delay=delay,
                partition_key=partition_key,
                conn=conn,
            )
        if ctx is not None and step_id is not None:
            checkpoint(ctx, step_id, defn.name, None, None, row.workflow_id, started)
        self._wake_workers(engine, on_commit)
        return WorkflowHandle(engine, row.workflow_id, created=created)

    def _enqueue_debounced(
        self,
        fn: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        debounced: tuple[str, float, float | None],
        *,
        priority: int | None,
        timeout: float | None,
        partition_key: str | None,
    ) -> WorkflowHandle[Any]:
        key, window, max_wait = debounced
        defn = resolve_workflow(fn)
        engine = engine_for_call()
        first_due = window if max_wait is None else min(window, max_wait)
        row = engine.workflow_row(
            defn, args, kwargs, queue=self.name, priority=priority, timeout=timeout,
            delay=first_due, partition_key=partition_key,
        )  # fmt: skip
        row.debounce_key = key
        if row.not_before is None:  # a zero debounce_max_wait: due at once
            row.not_before = row.created_at
        conn, on_commit = engine.transactional_connection()
        with observability.operation_span(
            "enqueue", current=False, queue=self.name, target_name=defn.name
        ):
            workflow_id, created = engine.store.debounce_workflow(
                row, None if max_wait is None else int(max_wait * 1000), conn=conn
            )
        self._wake_workers(engine, on_commit)
        return WorkflowHandle(engine, workflow_id, created=created)

    def _wake_workers(
        self, engine: Runtime, on_commit: Callable[[Callable[[], None]], None] | None
    ) -> None:
        """Tell this queue's workers about new rows: now, or once the caller's open
        application transaction commits (before that they cannot see them)."""

        def wake() -> None:
            engine.notifier.notify("q", self.name)

        if on_commit is not None:
            on_commit(wake)
        else:
            wake()

    @overload
    async def enqueue_async(
        self, fn: Workflow[..., Coroutine[Any, Any, R]], *args: Any, **kwargs: Any
    ) -> WorkflowHandle[R]: ...

    @overload
    async def enqueue_async(
        self, fn: Workflow[..., R], *args: Any, **kwargs: Any
    ) -> WorkflowHandle[R]: ...

    @overload
    async def enqueue_async(self, fn: str, *args: Any, **kwargs: Any) -> WorkflowHandle[Any]: ...

    async def enqueue_async(self, fn: Any, *args: Any, **kwargs: Any) -> WorkflowHandle[Any]:
        """``enqueue`` from async code (options as there)."""
        return await asyncio.to_thread(self.enqueue, fn, *args, **kwargs)

    def enqueue_many(
        self,
        fn: Any,
        arguments: Iterable[Sequence[Any]],
        *,
        priority: int | None = None,
        delay: float | None = None,
        timeout: float | None = None,
        deduplication_ids: Sequence[str | None] | None = None,
        partition_key: str | None = None,
        partition_keys: Sequence[str | None] | None = None,
    ) -> list[WorkflowHandle[Any]]:
        """Store one ENQUEUED workflow of ``fn`` per tuple of positional ``arguments``, all in
        one transaction (or in the application's open one, as ``enqueue``): one commit, and
        one INSERT per few hundred workflows, instead of a round trip and a commit per
        workflow. Each gets a new ID; options apply to all, except ``deduplication_ids`` (one
        per item, None for none): an item whose ID is taken raises ``DeduplicationConflict``
        as ``enqueue`` does, and nothing of the batch is stored. On a partitioned queue each
        item needs a key: ``partition_key`` for all, or ``partition_keys`` (one per item).
        Inside a workflow each item is an ``enqueue`` (a recorded step) instead."""
        if priority is not None:
            validation.priority(priority)
            if not self.priority_enabled:
                raise ConfigurationError(
                    f"Queue {self.name!r} was declared without priority_enabled=True"
                )
        items = [tuple(item) for item in arguments]
        dedup: list[str | None] = [None] * len(items)
        if deduplication_ids is not None:
            dedup = list(deduplication_ids)
            if len(dedup) != len(items):
                raise ValueError(
                    f"enqueue_many got {len(items)} items but {len(dedup)} deduplication_ids"
                )
        if partition_keys is not None and partition_key is not None:
            raise ConfigurationError("enqueue_many takes partition_key or partition_keys, not both")
        keys: list[str | None] = [partition_key] * len(items)
        if partition_keys is not None:
            keys = list(partition_keys)
            if len(keys) != len(items):
                raise ValueError(
                    f"enqueue_many got {len(items)} items but {len(keys)} partition_keys"
                )
        keys = [self._partition_key(k) for k in keys]
        if ctxmod.current() is not None:
            return [
                self.enqueue(
                    fn, *item, priority=priority, delay=delay, timeout=timeout,
                    deduplication_id=dedup_id, partition_key=key,
                )
                for item, dedup_id, key in zip(items, dedup, keys, strict=True)
            ]  # fmt: skip
        defn = resolve_workflow(fn)
        engine = engine_for_call()
        rows = [
            engine.workflow_row(
                defn, item, {}, queue=self.name, priority=priority, delay=delay,
                timeout=timeout, deduplication_id=dedup_id, partition_key=key,
            )
            for item, dedup_id, key in zip(items, dedup, keys, strict=True)
        ]  # fmt: skip
        conn, on_commit = engine.transactional_connection()
        with contextlib.ExitStack() as stack:
            if conn is None:
                conn = stack.enter_context(engine.store.transaction())
            engine.store.insert_workflows(rows, conn)
        self._wake_workers(engine, on_commit)
        return [WorkflowHandle(engine, row.workflow_id) for row in rows]

    async def enqueue_many_async(
        self, fn: Any, arguments: Iterable[Sequence[Any]], **options: Any
    ) -> list[WorkflowHandle[Any]]:
        """``enqueue_many`` from async code (options as there)."""
        return await asyncio.to_thread(self.enqueue_many, fn, list(arguments), **options)


def internal_queue() -> Queue:
    return REGISTRY.queues.get(INTERNAL_QUEUE_NAME) or Queue(INTERNAL_QUEUE_NAME)


class QueueWorker:
    """One thread per engine that claims work from the queues this process serves."""

    def __init__(self, engine: Runtime) -> None:
        self.engine = engine
        self._stop = threading.Event()
        self._running: dict[str, int] = {}
        self._running_keys: dict[tuple[str, str], int] = {}  # (queue, partition key)
        #: How often a partitioned queue's key-less rows are put in the default partition.
        self.unkeyed_interval = 5.0
        self._unkeyed_checked: dict[str, float] = {}
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="durable-queues", daemon=True)
        self._last_unknown_check = 0.0
        self._token_prefix = uuid.uuid4().hex[:12] + ":"
        self._claim_numbers = itertools.count(1)
        self.claimed = 0  # workflows claimed by this worker so far
        #: Held for a whole dequeue pass (claim and hand-off), so that a caller holding it
        #: sees no workflow that is claimed but not yet counted as in flight.
        self.pass_lock = threading.RLock()
        # The queues' stored settings as last read, for this worker's own decisions (skip a
        # paused queue, its per-worker room, when to look again). Read again at most every
        # ``settings_interval`` seconds and at once on a settings wake-up; the claim itself
        # reads them afresh in its transaction, so a stale copy never lets a limit be broken.
        self.settings_interval = 1.0
        self._settings: dict[str, QueueSettings] = {}
        self._settings_read = -math.inf
        self._settings_seen: list[int] = []
        #: When a claim last left room unused (monotonic): it took all there was. Work
        #: arriving one by one wakes this loop several times per workflow (its enqueue, its
        #: finish); after such a claim the next one waits until ``claim_gather`` seconds after
        #: it, so that it takes what arrived meanwhile in one statement instead of one each.
        #: A queue idle for longer than that is claimed from at once.
        self.claim_gather = 0.005
        self._emptied_at = -math.inf
        self._delayed_seen: dict[str, tuple[float, int | None]] = {}

    def served(self) -> list[Queue]:
        internal_queue()
        names = self.engine.queue_names
        if names is None:
            return list(REGISTRY.queues.values())
        queues = []
        for name in [*names, INTERNAL_QUEUE_NAME] if names else []:
            queue = REGISTRY.queues.get(name)
            if queue is None:
                log.warning(
                    "this engine was asked to serve queue %r, which no module declares", name
                )
                continue
            if queue not in queues:
                queues.append(queue)
        return queues

    def start(self) -> None:
        served = self.served()
        self._publish(served)
        if served:
            self._thread.start()

    def _publish(self, queues: list[Queue]) -> None:
        """Record the declarations of the queues served here, so that views in processes
        without the code (the CLI, a dashboard) can show the limits in force."""
        declarations = [
            (q.name, q.concurrency, q.worker_concurrency,
             *(q.rate_limit if q.rate_limit else (None, None)))
            for q in queues
            if q.name != INTERNAL_QUEUE_NAME
        ]  # fmt: skip
        try:
            self.engine.store.publish_queue_declarations(
                declarations, self.engine.application_version
            )
        except Exception as exc:  # views only: serving the queues does not depend on it
            log.warning(
                "could not record this worker's queue declarations (%s: %s)",
                type(exc).__name__,
                exc,
            )

    def _refresh_settings(self, queues: list[Queue], force: bool = False) -> None:
        seen = [self.engine.notifier.version(("Q", q.name)) for q in queues]
        if not force and seen == self._settings_seen:
            if time.monotonic() - self._settings_read < self.settings_interval:
                return
        self._settings = {s.name: s for s in self.engine.store.queue_settings()}
        self._settings_read = time.monotonic()
        self._settings_seen = seen

    def paused(self, queue: Queue) -> bool:
        """Whether this worker's last reading of the settings has ``queue`` paused."""
        stored = self._settings.get(queue.name)
        return stored is not None and stored.paused

    def stop(self) -> None:
        self._stop.set()
        self.engine.notifier.notify("q", "*stop*")
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _done(self, name: str, partition_key: str | None = None) -> None:
        with self._lock:
            self._running[name] = self._running.get(name, 1) - 1
            if partition_key is not None:
                held = self._running_keys.get((name, partition_key), 1) - 1
                if held > 0:
                    self._running_keys[(name, partition_key)] = held
                else:
                    self._running_keys.pop((name, partition_key), None)
        self.engine.notifier.notify("q", name)

    def _adopt_unkeyed(self, queue: Queue) -> None:
        """Every ``unkeyed_interval`` seconds: key-less rows of a partitioned queue (only a
        ``Client`` without the code can enqueue them) join the default partition ``""``."""
        now = time.monotonic()
        if now - self._unkeyed_checked.get(queue.name, -math.inf) < self.unkeyed_interval:
            return
        self._unkeyed_checked[queue.name] = now
        adopted = self.engine.store.adopt_unkeyed(queue.name)
        if adopted:
            log.info(
                "%d workflow(s) enqueued on partitioned queue %r without a partition_key "
                'joined the default partition ""',
                adopted,
                queue.name,
            )

    def serve_once(self) -> int:
        """One dequeue pass over the served queues, in the caller's thread (the test engine's
        ``run_until_idle`` drives it). Returns how many workflows it claimed."""
        with self.pass_lock:
            before = self.claimed
            queues = self.served()
            self._refresh_settings(queues, force=True)
            for queue in queues:
                self._serve(queue, self._token_prefix)
            return self.claimed - before

    def _loop(self) -> None:
        engine = self.engine
        token_prefix = self._token_prefix
        backoff = 0.5
        while not self._stop.is_set():
            gather = self._emptied_at + self.claim_gather - time.monotonic()
            if gather > 0 and self._stop.wait(gather):
                return
            queues = self.served()
            keys = [("q", q.name) for q in queues] + [("Q", q.name) for q in queues]
            keys.append(("q", "*stop*"))
            seen = [engine.notifier.version(k) for k in keys]
            wait = (
                engine.poll_interval
                if engine.url.dialect == "sqlite"
                else min(engine.poll_interval, 2.0)
            )
            try:
                self._refresh_settings(queues)
                if any(self.paused(q) for q in queues):
                    # A resume must be seen within about a second even without a wake-up.
                    wait = min(wait, self.settings_interval)
                with self.pass_lock:
                    for queue in queues:
                        wait = min(wait, self._serve(queue, token_prefix))
                self._warn_unknown(queues)
                backoff = 0.5
            except Exception as exc:
                log.warning(
                    "dequeue failed (%s: %s); retrying in %.1fs", type(exc).__name__, exc, backoff
                )
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5)  # resume promptly once the database is back
                continue
            if wait > 0:
                engine.notifier.wait(keys, seen, wait)

    def _serve(self, queue: Queue, token_prefix: str) -> float:
        """Claim what this queue allows now; returns how long until it is worth looking again."""
        engine = self.engine
        stored = self._settings.get(queue.name)
        if stored is not None and stored.paused:
            return engine.poll_interval
        _, worker_concurrency, rate_limit = (
            stored.effective(queue.concurrency, queue.worker_concurrency, queue.rate_limit)
            if stored is not None
            else (queue.concurrency, queue.worker_concurrency, queue.rate_limit)
        )
        with self._lock:
            running = self._running.get(queue.name, 0)
        room = engine.max_workers - engine.inflight
        capacity = engine.max_workers
        if worker_concurrency is not None:
            room = min(room, worker_concurrency - running)
            capacity = min(capacity, worker_concurrency)
        room = min(room, 200)
        if room <= 0:
            return engine.poll_interval
        batch = min(capacity, 200) // 4
        if room < batch and running >= batch - room:
            # Draining a backlog, every finish frees one slot and wakes this loop (``_done``):
            # claiming then would take one or two at a time, a claim transaction per workflow
            # or two. Wait until a quarter of the capacity is free, which the running ones'
            # finishes signal; an idle queue (nothing running here) is claimed from at once.
            return engine.poll_interval
        names = tuple(REGISTRY.workflows)
        by_key: tuple[tuple[str, int], ...] = ()
        if queue.partitioned:
            self._adopt_unkeyed(queue)
            with self._lock:
                by_key = tuple(
                    (k, n) for (q, k), n in self._running_keys.items() if q == queue.name
                )
        # The declaration; the store applies the stored settings in the claim's transaction.
        claim = QueueClaim(
            name=queue.name,
            limit=room,
            concurrency=queue.concurrency,
            rate_limit=queue.rate_limit,
            priority_enabled=queue.priority_enabled,
            names=names,
            versions=(engine.application_version,),
            worker_concurrency=queue.worker_concurrency,
            running_here=running,
            partitioned=queue.partitioned,
            partition_concurrency=queue.partition_concurrency,
            partition_worker_concurrency=queue.partition_worker_concurrency,
            partition_rate_limit=queue.partition_rate_limit,
            running_here_by_key=by_key,
        )
        # Each claim has a token of its own (every run token it writes starts with it), so a
        # retry of a claim whose reply was lost can recognise the rows it took.
        claim_token = f"{token_prefix}{next(self._claim_numbers)}:"
        rows = engine.store.claim_from_queue(claim, engine.executor_id, claim_token)
        with self._lock:
            self.claimed += len(rows)
        metrics.claimed(queue.name, len(rows))
        # A resumed or forked workflow comes back through the queue with steps already
        # recorded: the batch's steps are read in one statement, not one per workflow (on
        # failure, steps=None has each execution read its own).
        # The claim says which have steps where the dialect can (has_steps): none, mostly.
        recorded: dict[str, list[StepRow]] = {}
        unknown = [row.workflow_id for row in rows if row.has_steps is not False]
        if unknown:
            try:
                recorded = engine.store.load_steps_of(unknown)
            except Exception as exc:
                log.warning("could not read the claimed workflows' steps at once (%s)", exc)
        for row in rows:
            defn = REGISTRY.get(row.name)
            assert defn is not None  # the claim takes only names registered here
            key = row.partition_key if queue.partitioned else None
            with self._lock:
                self._running[queue.name] = self._running.get(queue.name, 0) + 1
                if key is not None:
                    self._running_keys[(queue.name, key)] = (
                        self._running_keys.get((queue.name, key), 0) + 1
                    )
            steps = [] if row.has_steps is False else recorded.get(row.workflow_id)
            engine.submit(defn, row, steps, on_done=functools.partial(self._done, queue.name, key))
        next_check = engine.poll_interval
        for limit in (rate_limit, queue.partition_rate_limit):
            if limit is not None and len(rows) < room:
                n, period = limit
                next_check = min(next_check, max(period / n, 0.01))
        earliest = self._earliest_delayed(queue.name) if len(rows) < room else None
        if earliest is not None:
            next_check = min(next_check, max((earliest - engine.clock.now_ms()) / 1000, 0.0))
        if rows and len(rows) == room:
            return 0.0
        self._emptied_at = time.monotonic()
        return next_check

    #: How long the queue's earliest not-yet-due delayed workflow, as last read, is used
    #: instead of reading it again: work arriving one by one makes a pass per arrival, and
    #: the claims themselves take what is due; a pass that used it looks again this soon.
    delayed_reuse = 0.05

    def _earliest_delayed(self, name: str) -> int | None:
        now = time.monotonic()
        read_at, earliest = self._delayed_seen.get(name, (-math.inf, None))
        if now - read_at >= self.delayed_reuse:
            earliest = self.engine.store.earliest_delayed(name)
            self._delayed_seen[name] = (now, earliest)
            return earliest
        # A delayed workflow enqueued since the reading could be due before it: not later
        # than the reading's reuse ends.
        soon = self.engine.clock.now_ms() + int(self.delayed_reuse * 1000)
        return soon if earliest is None else min(earliest, soon)

    def _warn_unknown(self, queues: list[Queue]) -> None:
        now = time.monotonic()
        if now - self._last_unknown_check < 60:
            return
        self._last_unknown_check = now
        unknown = self.engine.store.unknown_enqueued_names(
            [q.name for q in queues], tuple(REGISTRY.workflows)
        )
        for name in unknown:
            log.warning(
                "workflows named %r are ENQUEUED on queues this worker serves, but no workflow of "
                "that name is registered here; they stay ENQUEUED for a worker that knows them",
                name,
            )
