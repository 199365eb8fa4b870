"""The test engine: a launched Engine on a fresh database, with the test toolkit on it."""

from __future__ import annotations

import collections
import contextlib
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from .. import recovery
from ..clock import Clock
from ..engine import Engine, get_default_engine, set_default_engine
from ..handles import WorkflowHandle, WorkflowStatus
from ..registry import REGISTRY, WorkflowDef, resolve_workflow
from ..scheduler import Scheduler
from ..store import parse_database_url
from .clock import TestClock
from .faults import AFTER, BEFORE, DURING, Crash, Faults, Stub


@dataclass(frozen=True, slots=True)
class Message:
    """A message as stored: who it went to, on which topic, and the value."""

    destination_id: str
    topic: str | None
    message: Any


def fresh_database(
    database_url: str | None = None, schema_prefix: str = "durable_test_"
) -> tuple[str, Callable[[], None]]:
    """A new, empty system database and the function that removes it: SQLite in a temporary
    directory by default; for a ``postgresql://`` URL, a new schema in that database (every
    connection made with the returned URL sees only it)."""
    if database_url is None:
        directory = tempfile.mkdtemp(prefix="durable-test-")
        return f"sqlite:///{directory}/durable.sqlite3", lambda: shutil.rmtree(
            directory, ignore_errors=True
        )
    if parse_database_url(database_url).dialect == "postgresql":
        return _fresh_postgres(database_url, schema_prefix)
    raise ValueError(
        f"a fresh database needs None (SQLite) or a PostgreSQL URL, not {database_url!r}"
    )


def _fresh_postgres(url: str, prefix: str) -> tuple[str, Callable[[], None]]:
    """A URL whose connections see only a new, empty schema; and how to drop it."""
    import psycopg
    from psycopg import sql

    schema = f"{prefix}{uuid.uuid4().hex[:12]}"
    base = parse_database_url(url).url
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    sep = "&" if "?" in base else "?"
    scoped = f"{base}{sep}options={quote(f'-csearch_path={schema}')}"

    def drop() -> None:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))

    return scoped, drop


class TestEngine(Engine):
    """An Engine for tests: a fresh database, the queues served in this process, virtual
    time, and tools to crash executions, stub steps and look at what was enqueued and sent.

    Parameters:
        database_url: None (default) for SQLite in a temporary directory removed at
            shutdown; a ``postgresql://`` URL for a new schema in that database, dropped at
            shutdown (``fresh_schema=False`` uses the URL as it is; ``schema_prefix`` names it).
        clock: default a new ``TestClock`` (time stands still until advanced); any
            ``Clock`` works, but only a ``TestClock`` can be advanced.
        auto_advance: while a caller waits for a workflow's result (``handle.result()``)
            and nothing can run until time passes, skip to the next due time.
        schedules: the ``@scheduled`` workflows whose cron ticks this engine fires on its
            clock: an iterable of them, True for every registered one, None for none.
        run_in_caller: run sync workflows in the thread that calls ``run_until_idle()`` or
            waits for a result, instead of on a pool: they then share that thread's database
            connections (a Django ``TestCase``'s open transaction). Time skips only inside
            those calls.
        Other keyword arguments are the Engine's.
    """

    __test__ = False  # not a pytest test class, whatever imports it

    def __init__(
        self,
        database_url: str | None = None,
        *,
        fresh_schema: bool = True,
        schema_prefix: str = "durable_test_",
        clock: Clock | None = None,
        auto_advance: bool = True,
        schedules: Iterable[Any] | bool | None = None,
        run_in_caller: bool = False,
        **engine_options: Any,
    ) -> None:
        self._cleanups: list[Callable[[], None]] = []
        if database_url is None or (
            fresh_schema and parse_database_url(database_url).dialect == "postgresql"
        ):
            database_url, remove = fresh_database(database_url, schema_prefix)
            self._cleanups.append(remove)
        engine_options.setdefault("executor_id", f"test-{uuid.uuid4().hex[:8]}")
        # A scheduler would start every @scheduled workflow of every imported test module.
        engine_options.setdefault("run_scheduler", False)
        # Waits park at once: a parked workflow is woken by the clock's timers, exactly.
        engine_options.setdefault("suspend_threshold", 0.0)
        super().__init__(
            database_url, clock=clock if clock is not None else TestClock(), **engine_options
        )
        self.faults = Faults()
        self.step_hooks = self.faults
        self.auto_advance = auto_advance
        self.run_in_caller = run_in_caller
        self._queued: collections.deque[Callable[[], None]] = collections.deque()
        self._previous_default: Engine | None = None
        self._schedule_defs = _scheduled(schedules)
        self._leave_clock: Any = None
        self._heartbeat_at = self._adopted_at = float("-inf")  # on the clock
        self._awaited: list[str] = []  # workflow IDs whose results callers wait for
        self._keeper: threading.Thread | None = None
        self._keeper_wake = threading.Condition()

    # -- lifecycle -----------------------------------------------------------------------------

    def launch(self) -> TestEngine:
        """Launch and become the default engine (the previous default comes back at shutdown)."""
        with contextlib.suppress(Exception):
            self._previous_default = get_default_engine()
        super().launch()
        set_default_engine(self)
        if self.scheduler is None:
            # Stored schedules, and the @scheduled workflows in ``schedules=``: fired at each
            # tick the test clock passes (no thread), or by a scheduler thread on another clock.
            self.scheduler = Scheduler(self, code=self._schedule_defs)
            if isinstance(self.clock, TestClock):
                self.scheduler.sync_code()
                self.scheduler.run_due()  # as a launching scheduler does: missed ticks
            else:
                self.scheduler.start()
        if isinstance(self.clock, TestClock) and self._leave_clock is None:
            self._leave_clock = self.clock.participate(self._next_due, self._catch_up)
            if self.auto_advance and not self.run_in_caller:
                self._keeper = threading.Thread(
                    target=self._keep_time, name="durable-test-clock", daemon=True
                )
                self._keeper.start()
        return self

    def shutdown(self, timeout: float = 5) -> None:
        """Shut down, restore the previous default engine, remove the test database."""
        launched, was_default = self._launched, False
        with contextlib.suppress(Exception):
            was_default = get_default_engine() is self
        if self._leave_clock is not None:
            self._leave_clock()
        with self._keeper_wake:
            self._keeper_wake.notify_all()
        super().shutdown(timeout)
        if self._keeper is not None:
            self._keeper.join(timeout=2)
        previous = self._previous_default
        if launched and was_default:
            set_default_engine(previous if previous is not None and previous._launched else None)
        while self._cleanups:
            with contextlib.suppress(Exception):
                self._cleanups.pop()()

    def __enter__(self) -> TestEngine:
        return self.launch()

    # -- running in the caller's thread ------------------------------------------------------------

    def submit(
        self,
        defn: WorkflowDef,
        row: Any,
        steps: list[Any] | None,
        on_done: Callable[[], None] | None = None,
    ) -> None:
        """As Engine's; with ``run_in_caller`` a sync workflow waits for the caller's thread."""
        if not self.run_in_caller or defn.is_async:
            super().submit(defn, row, steps, on_done)
            return
        self.track_inflight(1, row.workflow_id)
        self._queued.append(lambda: self.run_sync(defn, row, steps, on_done))

    def run_in_pool(self, fn: Callable[[], None]) -> None:
        if not self.run_in_caller:
            super().run_in_pool(fn)
            return
        self._queued.append(fn)

    def _run_queued(self) -> bool:
        """Run, in this thread, the workflows waiting for the caller's thread. A wait they
        hold in place (a step's retry delay) moves the clock, since nothing else runs."""
        if not self._queued:
            return False
        with self._driving():
            while self._queued:
                self._queued.popleft()()
        return True

    def _driving(self) -> contextlib.AbstractContextManager[Any]:
        if self.run_in_caller and self.auto_advance and isinstance(self.clock, TestClock):
            return self.clock.driven_by_this_thread()
        return contextlib.nullcontext()

    # -- crash injection -------------------------------------------------------------------------

    def crash_before(self, step: Any, *, workflow: Any = None, times: int = 1) -> Crash:
        """The next execution to reach ``step`` (a name, a step function or a step index) dies
        just before its body runs, as if its process was killed there."""
        return self.faults.arm(BEFORE, step, workflow, times)

    def crash_during(self, step: Any, *, workflow: Any = None, times: int = 1) -> Crash:
        """``step``'s body runs, then the execution dies before its checkpoint is written: a
        plain step's effects have happened (it will run again), a ``@transaction`` step's
        writes roll back."""
        return self.faults.arm(DURING, step, workflow, times)

    def crash_after(self, step: Any, *, workflow: Any = None, times: int = 1) -> Crash:
        """The execution dies right after ``step``'s checkpoint is written."""
        return self.faults.arm(AFTER, step, workflow, times)

    def recover(self, timeout: float = 10.0) -> list[WorkflowHandle[Any]]:
        """Resume crashed executions the way a restarted worker does (recovery of this
        executor's PENDING workflows). Waits first until every armed crash has happened and
        its execution has unwound; an armed crash that never happens fails the test."""
        deadline = time.monotonic() + timeout
        for crash in self.faults.unfired():
            crash.wait(max(deadline - time.monotonic(), 0))
        crashed = self.faults.take_crashed()
        # The crashed execution's thread is unwinding; recovery skips what still runs here.
        while any(self.runs_here(wid) for wid in crashed):
            if time.monotonic() > deadline:
                raise AssertionError(f"crashed executions {crashed} did not unwind in {timeout}s")
            time.sleep(0.001)
        return self.recover_pending()

    # -- stubs -----------------------------------------------------------------------------------

    def stub_step(
        self,
        step: Any,
        *,
        returns: Any = None,
        raises: BaseException | type[BaseException] | None = None,
        fn: Any = None,
        workflow: Any = None,
    ) -> Stub:
        """Replace the body of ``step`` (name, step function or index) for this engine:
        return ``returns``, raise ``raises``, or call ``fn`` with the step's arguments. The
        outcome is checkpointed as the real one would be. Returns the stub (``stub.calls``)."""
        return self.faults.stub(step, returns=returns, raises=raises, fn=fn, workflow=workflow)

    def clear_faults(self) -> None:
        """Disarm every crash and remove every stub."""
        self.faults.clear()

    # -- what happened -------------------------------------------------------------------------

    def enqueued(self, queue: str | None = None, workflow: Any = None) -> list[WorkflowStatus]:
        """Workflows put on a queue (whatever they became since), oldest first."""
        name = None if workflow is None else _workflow_name(workflow)
        rows = self.list_workflows(name=name, queue=queue, limit=None, newest_first=False)
        return [w for w in rows if w.queue is not None and not w.queue.startswith("_durable")]

    def assert_enqueued(
        self,
        queue: str | None = None,
        workflow: Any = None,
        args: tuple[Any, ...] | list[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        count: int | None = None,
    ) -> list[WorkflowStatus]:
        """Assert that workflows were enqueued: on ``queue``, of ``workflow``, whose
        arguments start with ``args`` and whose keyword arguments include ``kwargs``
        (``count``: exactly that many). Returns the matches."""
        found = self.enqueued(queue, workflow)
        matches = [w for w in found if _args_match(w, args, kwargs)]
        wanted = f"queue={queue!r} workflow={workflow and _workflow_name(workflow)!r}"
        wanted += f" args={args!r} kwargs={kwargs!r}"
        if (count is None and not matches) or (count is not None and len(matches) != count):
            listing = "\n".join(
                f"  {w.queue}: {w.name}{tuple(w.args)!r} {w.kwargs!r} [{w.status}]" for w in found
            )
            expected = "at least one" if count is None else f"exactly {count}"
            raise AssertionError(
                f"expected {expected} enqueued workflow matching {wanted}, found "
                f"{len(matches)}; enqueued:\n{listing or '  (none)'}"
            )
        return matches

    def messages_received(self, workflow_id: str) -> list[Message]:
        """Messages sent to ``workflow_id``, in the order they arrived."""
        return [
            Message(workflow_id, topic or None, self.serializer.loads(payload))
            for topic, payload, _, _ in self.store.list_messages(workflow_id)
        ]

    def messages_sent(self, workflow_id: str) -> list[Message]:
        """Messages ``workflow_id`` sent with ``send()``, in order."""
        return [
            Message(destination, topic or None, self.serializer.loads(payload))
            for destination, topic, payload in self.store.list_messages_sent_by(workflow_id)
        ]

    def events(self, workflow_id: str) -> list[tuple[str, Any]]:
        """Every ``set_event(key, value)`` of ``workflow_id``, in order."""
        return [
            (key, self.serializer.loads(value))
            for _, key, value in self.store.list_event_history(workflow_id)
        ]

    # -- time ------------------------------------------------------------------------------------

    def advance(self, seconds: float) -> None:
        """Move the test clock forward (see ``TestClock.advance``); what falls due on the way
        runs in order, and this returns once the engine is idle again."""
        self._test_clock().advance(seconds)

    def _test_clock(self) -> TestClock:
        if not isinstance(self.clock, TestClock):
            raise TypeError(f"{self!r} runs on {self.clock!r}, which cannot be advanced")
        return self.clock

    def _next_due(self, schedules: bool = True) -> float | None:
        """The next time something of this engine falls due (epoch seconds on its clock)."""
        if not self._launched:
            return None
        times = []
        if self._timers is not None:
            times.append(self._timers.next_due())
        times.append(_seconds(self.store.enqueued_times(self.clock.now_ms())[0]))
        times.append(_seconds(self.store.earliest_deadline()))
        if schedules and self.scheduler is not None:
            times.append(self.scheduler.next_due())
        known = [t for t in times if t is not None]
        return min(known) if known else None

    def _catch_up(self) -> None:
        """Do what is due at the clock's new time, then wait until the engine is idle."""
        if not self._launched or self._stopping.is_set():
            return
        assert self._timers is not None
        self._timers.run_due()  # parked sleeps and recv/get_event timeouts wake
        self._timers.wake()
        self.notifier.wake_waiters()  # waits in place re-check their deadlines
        self.store.expire_deadlines()  # workflow timeouts
        now = self.clock.time()
        if now - self._heartbeat_at >= self.heartbeat_seconds:
            self._heartbeat_at = now
            recovery.heartbeat(self)  # this executor's lease stays fresh in virtual time
        if now > self._adopted_at:
            self._adopted_at = now
            self.fleet_watch.executors()  # lost executors, before their work is adopted
            self.adopt_orphans()  # other executors' expired leases
            self.fleet_watch.queues()
        self._fire_schedules()
        if isinstance(self.clock, TestClock) and self.clock.driving():
            return  # moved by a wait in the thread that runs workflows: they run after it
        self._settle(time.monotonic() + 30)

    def _fire_schedules(self) -> None:
        # The rows were just read by the clock's look at what is due (``_next_due``): a pass,
        # which reads them again to fire, only when a tick is due now.
        if self.scheduler is not None:
            upcoming = self.scheduler.next_due(refresh=False)
            if upcoming is not None and upcoming <= self.clock.time():
                self.scheduler.run_due()

    def _held_on_clock(self) -> int:
        return self.clock.waiting if isinstance(self.clock, TestClock) else 0

    def _idle(self) -> bool:
        """Nothing runs: every execution here is parked or held on the clock, and no queued
        work can be claimed now."""
        if self._inflight > self._held_on_clock():
            return False
        if self.queue_worker is None:
            return True
        # Under the pass lock no workflow is claimed without being counted in flight.
        with self.queue_worker.pass_lock:
            _, startable = self.store.enqueued_times(self.clock.now_ms())
            if startable and self.queue_worker.serve_once():
                return False
            return self._inflight <= self._held_on_clock()

    def _settle(self, deadline: float) -> None:
        while self._run_queued() or not self._idle():
            if time.monotonic() > deadline:
                raise TimeoutError("workflows were still running when run_until_idle timed out")
            with self._inflight_cond:
                self._inflight_cond.wait(0.005)

    def run_until_idle(
        self, timeout: float = 30.0, *, advance_time: bool = True, within: float | None = None
    ) -> None:
        """Serve queued work and run until nothing can happen without an outside message:
        every workflow has finished or waits for one. With ``advance_time`` (default) the
        test clock skips ahead whenever all that is left is waiting for a time (sleeps,
        timeouts, delays; cron ticks fire on the way but do not by themselves keep it
        going), at most ``within`` seconds from now when given (schedules whose runs wait
        keep something due forever: bound them)."""
        deadline = time.monotonic() + timeout
        horizon = None if within is None else self.clock.time() + within
        while True:
            self._settle(deadline)
            if not advance_time or not isinstance(self.clock, TestClock):
                return
            due = self._workflow_due()
            if due is None:
                return
            if horizon is not None and due > horizon:
                self.clock.advance_to(max(horizon, self.clock.time()))
                self._settle(deadline)
                return
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"work was still due after skipping to {self.clock.datetime.isoformat()} "
                    f"for {timeout}s; pass within= to bound how far run_until_idle skips"
                )
            self.clock.advance_to(due)

    def _workflow_due(self) -> float | None:
        """The next time a workflow (not a cron tick) is due, if it is in the future."""
        assert isinstance(self.clock, TestClock)
        times = [self._next_due(schedules=False), self.clock.next_due_of_waits()]
        future = [t for t in times if t is not None and t > self.clock.time()]
        return min(future) if future else None

    @contextlib.contextmanager
    def awaiting_result(self, workflow_id: str) -> Iterator[None]:
        """While a caller waits for a result, the clock skips ahead when nothing can run
        (``auto_advance``)."""
        with self._keeper_wake:
            self._awaited.append(workflow_id)
            self._keeper_wake.notify_all()
        try:
            if self.run_in_caller and self._awaiting_unfinished():
                # Nobody else runs them: run them here (and skip time, with auto_advance).
                self.run_until_idle(advance_time=self.auto_advance)
            with self._driving():  # a direct call's waits move the clock too
                yield
        finally:
            with self._keeper_wake:
                self._awaited.remove(workflow_id)

    def _awaiting_unfinished(self) -> bool:
        """Whether a caller waits for a workflow that has not finished. While the engine is
        idle nothing can finish it but time passing, so skipping ahead is then safe."""
        with self._keeper_wake:
            awaited = list(self._awaited)
        for workflow_id in awaited:
            outcome = self.store.get_outcome(workflow_id)
            if outcome is not None and outcome[0] in ("PENDING", "ENQUEUED"):
                return True
        return False

    def _keep_time(self) -> None:
        while self._launched and not self._stopping.is_set():
            with self._keeper_wake:
                if not self._awaited:
                    self._keeper_wake.wait(0.5)
                    continue
            try:
                if self._idle() and self._awaiting_unfinished():
                    due = self._workflow_due()
                    if due is not None:
                        self._test_clock().advance_to(due)
                        continue
            except Exception:
                if self._stopping.is_set():
                    return
                raise
            with self._keeper_wake:
                self._keeper_wake.wait(0.005)


def _seconds(ms: int | None) -> float | None:
    return None if ms is None else ms / 1000


def _scheduled(schedules: Iterable[Any] | bool | None) -> list[WorkflowDef]:
    if schedules is None or schedules is False:
        return []
    if schedules is True:
        return [d for d in REGISTRY.workflows.values() if d.schedule]
    defs = [resolve_workflow(fn) for fn in schedules]
    for defn in defs:
        if not defn.schedule:
            raise ValueError(f"workflow {defn.name!r} is not @scheduled")
    return defs


def _workflow_name(workflow: Any) -> str:
    return workflow if isinstance(workflow, str) else resolve_workflow(workflow).name


def _args_match(
    w: WorkflowStatus, args: tuple[Any, ...] | list[Any] | None, kwargs: dict[str, Any] | None
) -> bool:
    if args is not None and tuple(w.args[: len(args)]) != tuple(args):
        return False
    if kwargs is not None and any(w.kwargs.get(k, object()) != v for k, v in kwargs.items()):
        return False
    return True


@contextlib.contextmanager
def test_engine(database_url: str | None = None, **options: Any) -> Iterator[TestEngine]:
    """``with test_engine() as engine:`` a launched TestEngine, shut down and removed after."""
    engine = TestEngine(database_url, **options)
    engine.launch()
    try:
        yield engine
    finally:
        engine.shutdown()


test_engine.__test__ = False  # type: ignore[attr-defined]
