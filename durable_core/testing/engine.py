"""The test engine: a launched Engine on a fresh database, with the test toolkit on it."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from ..engine import Engine, get_default_engine, set_default_engine
from ..handles import WorkflowHandle, WorkflowStatus
from ..registry import resolve_workflow
from ..store import parse_database_url
from .faults import AFTER, BEFORE, DURING, Crash, Faults, Stub


@dataclass(frozen=True, slots=True)
class Message:
    """A message as stored: who it went to, on which topic, and the value."""

    destination_id: str
    topic: str | None
    message: Any


def _fresh_postgres(url: str, prefix: str) -> tuple[str, Any]:
    """A URL whose connections see only a new, empty schema; and how to drop it."""
    import psycopg

    schema = f"{prefix}{uuid.uuid4().hex[:12]}"
    base = parse_database_url(url).url
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in base else "?"
    scoped = f"{base}{sep}options={quote(f'-csearch_path={schema}')}"

    def drop() -> None:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')

    return scoped, drop


class TestEngine(Engine):
    """An Engine for tests: a fresh database, the queues served in this process, and tools
    to crash executions, stub steps and look at what was enqueued and sent.

    Parameters:
        database_url: None (default) for SQLite in a temporary directory removed at
            shutdown; a ``postgresql://`` URL for a new schema in that database, dropped at
            shutdown (``fresh_schema=False`` uses the URL as it is; ``schema_prefix`` names it).
        Other keyword arguments are the Engine's.
    """

    __test__ = False  # not a pytest test class, whatever imports it

    def __init__(
        self,
        database_url: str | None = None,
        *,
        fresh_schema: bool = True,
        schema_prefix: str = "durable_test_",
        **engine_options: Any,
    ) -> None:
        self._cleanups: list[Any] = []
        if database_url is None:
            directory = tempfile.mkdtemp(prefix="durable-test-")
            self._cleanups.append(lambda: shutil.rmtree(directory, ignore_errors=True))
            database_url = f"sqlite:///{directory}/durable.sqlite3"
        elif fresh_schema and parse_database_url(database_url).dialect == "postgresql":
            database_url, drop = _fresh_postgres(database_url, schema_prefix)
            self._cleanups.append(drop)
        engine_options.setdefault("executor_id", f"test-{uuid.uuid4().hex[:8]}")
        # A scheduler would start every @scheduled workflow of every imported test module.
        engine_options.setdefault("run_scheduler", False)
        engine_options.setdefault("suspend_threshold", 0.05)
        super().__init__(database_url, **engine_options)
        self.faults = Faults()
        self.step_hooks = self.faults
        self._previous_default: Engine | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    def launch(self) -> TestEngine:
        """Launch and become the default engine (the previous default comes back at shutdown)."""
        with contextlib.suppress(Exception):
            self._previous_default = get_default_engine()
        super().launch()
        set_default_engine(self)
        return self

    def shutdown(self, timeout: float = 5) -> None:
        """Shut down, restore the previous default engine, remove the test database."""
        launched = self._launched
        super().shutdown(timeout)
        if launched:
            set_default_engine(self._previous_default)
        while self._cleanups:
            with contextlib.suppress(Exception):
                self._cleanups.pop()()

    def __enter__(self) -> TestEngine:
        return self.launch()

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

    def recover(self, timeout: float = 10.0) -> list[WorkflowHandle]:
        """Resume crashed executions the way a restarted worker does (recovery of this
        executor's PENDING workflows). Waits first until every armed crash has happened and
        its execution has unwound; an armed crash that never happens fails the test."""
        deadline = time.monotonic() + timeout
        for crash in self.faults.unfired():
            crash.wait(max(deadline - time.monotonic(), 0))
        crashed = self.faults.take_crashed()
        # The crashed execution's thread is unwinding; recovery skips what still runs here.
        while any(wid in self._running for wid in crashed):
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
        args: tuple | list | None = None,
        kwargs: dict | None = None,
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

    # -- running to quiescence --------------------------------------------------------------------

    def run_until_idle(self, timeout: float = 30.0) -> None:
        """Serve queued work and wait until nothing can run without time passing or an outside
        message: every workflow has finished or waits."""
        deadline = time.monotonic() + timeout
        while True:
            self._wait_no_inflight(deadline)
            if self.queue_worker is None:
                return
            # Under the pass lock no workflow is claimed without being counted in flight.
            with self.queue_worker.pass_lock:
                if not self.queue_worker.serve_once() and self._inflight == 0:
                    return
            if time.monotonic() > deadline:
                raise TimeoutError(f"workflows were still running after {timeout}s")

    def _wait_no_inflight(self, deadline: float) -> None:
        with self._inflight_cond:
            while self._inflight > 0:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError("workflows were still running when run_until_idle timed out")
                self._inflight_cond.wait(min(remaining, 0.5))


def _workflow_name(workflow: Any) -> str:
    return workflow if isinstance(workflow, str) else resolve_workflow(workflow).name


def _args_match(w: WorkflowStatus, args: tuple | list | None, kwargs: dict | None) -> bool:
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
