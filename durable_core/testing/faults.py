"""Crash injection and step stubs: the test engine's ``StepHooks``.

A simulated crash is a ``BaseException`` raised at a step boundary of one execution: it
unwinds the workflow without recording anything (user code's ``except Exception`` cannot
catch it, a ``@transaction`` step's transaction rolls back), leaving the workflow PENDING
under this executor exactly as a killed process leaves it. ``TestEngine.recover()`` then
resumes it the way a restarted worker does.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..context import ExecutionStopped
from ..registry import StepDef

#: Where a crash happens relative to the step it names.
BEFORE = "before"  # the step's body has not run
DURING = "during"  # the body ran (a @transaction's writes roll back); no checkpoint
AFTER = "after"  # the checkpoint is written


class SimulatedCrash(ExecutionStopped):
    """The execution died here, as if its process was killed (raised by crash injection)."""

    def __init__(self, where: str, step: str, workflow_id: str, step_id: int):
        self.where, self.step, self.workflow_id, self.step_id = where, step, workflow_id, step_id
        super().__init__(
            f"simulated crash {where} step {step_id} ({step}) of workflow {workflow_id!r}"
        )


def _step_name(step: Any) -> str | int:
    if isinstance(step, bool):
        raise TypeError("step must be a step name, a step function or a step index")
    if isinstance(step, int):
        if step < 1:
            raise ValueError(f"step index must be >= 1 (step IDs start at 1), not {step}")
        return step
    if isinstance(step, str):
        if not step:
            raise ValueError("step name must not be empty")
        return step
    defn = getattr(step, "__durable_step__", None)
    if defn is None:
        raise TypeError(f"step must be a step name, a @step function or an index, not {step!r}")
    return str(defn.name)


def _matches(selector: str | int, step_id: int, name: str) -> bool:
    if isinstance(selector, int):
        return selector == step_id
    return name == selector or name.endswith("." + selector)


def _workflow_matches(selector: str | None, workflow: str, workflow_id: str) -> bool:
    if selector is None:
        return True
    return selector in (workflow, workflow_id) or workflow.endswith("." + selector)


def _workflow_selector(workflow: Any) -> str | None:
    if workflow is None or isinstance(workflow, str):
        return workflow
    defn = getattr(workflow, "__durable_workflow__", None)
    if defn is None:
        raise TypeError(f"workflow must be a name, an ID or a @workflow function, not {workflow!r}")
    return str(defn.name)


@dataclass
class Crash:
    """An armed crash. ``fired`` once an execution died at it; ``wait()`` blocks until then."""

    where: str
    step: str | int
    workflow: str | None
    times: int = 1
    hits: list[SimulatedCrash] = field(default_factory=list)
    _event: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def fired(self) -> bool:
        return bool(self.hits)

    @property
    def armed(self) -> bool:
        return len(self.hits) < self.times

    def wait(self, timeout: float = 10.0) -> SimulatedCrash:
        """Wait until the crash has happened; returns the first one."""
        if not self._event.wait(timeout):
            raise AssertionError(
                f"crash {self.where} step {self.step!r} did not happen within {timeout}s: "
                "no step of that name (or index) ran"
            )
        return self.hits[0]

    def describe(self) -> str:
        return f"crash_{self.where}({self.step!r})"


@dataclass
class Stub:
    """A substitute step body. ``calls`` holds the ``(args, kwargs)`` of each call."""

    step: str | int
    workflow: str | None
    body: Callable[..., Any]
    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = field(default_factory=list)


class Faults:
    """The crashes and stubs armed on one test engine (thread-safe: steps run on many threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.crashes: list[Crash] = []
        self.stubs: list[Stub] = []
        #: Workflow IDs of executions that died of a simulated crash, for recover() to wait on.
        self.crashed: list[str] = []

    def arm(self, where: str, step: Any, workflow: Any = None, times: int = 1) -> Crash:
        if times < 1:
            raise ValueError(f"times must be >= 1, not {times}")
        crash = Crash(where, _step_name(step), _workflow_selector(workflow), times)
        with self._lock:
            self.crashes.append(crash)
        return crash

    def stub(
        self,
        step: Any,
        *,
        returns: Any = None,
        raises: BaseException | type[BaseException] | None = None,
        fn: Callable[..., Any] | None = None,
        workflow: Any = None,
    ) -> Stub:
        if fn is not None and raises is not None:
            raise TypeError("give either fn= or raises=, not both")

        def body(*args: Any, **kwargs: Any) -> Any:
            if fn is not None:
                return fn(*args, **kwargs)
            if raises is not None:
                raise raises
            return returns

        stub = Stub(_step_name(step), _workflow_selector(workflow), body)
        with self._lock:
            self.stubs.insert(0, stub)  # the latest stub of a step wins
        return stub

    def clear(self) -> None:
        with self._lock:
            self.crashes.clear()
            self.stubs.clear()

    def unfired(self) -> list[Crash]:
        with self._lock:
            return [c for c in self.crashes if not c.fired]

    def take_crashed(self) -> list[str]:
        with self._lock:
            crashed, self.crashed = self.crashed, []
            return crashed

    # -- StepHooks ---------------------------------------------------------------------------

    def _take(
        self, where: str, workflow: str, workflow_id: str, step_id: int, name: str
    ) -> tuple[Crash, SimulatedCrash] | None:
        with self._lock:
            for crash in self.crashes:
                if (
                    crash.where == where
                    and crash.armed
                    and _matches(crash.step, step_id, name)
                    and _workflow_matches(crash.workflow, workflow, workflow_id)
                ):
                    exc = SimulatedCrash(where, name, workflow_id, step_id)
                    crash.hits.append(exc)
                    self.crashed.append(workflow_id)
                    return crash, exc
        return None

    def before_step(self, workflow: str, workflow_id: str, step_id: int, defn: StepDef) -> StepDef:
        taken = self._take(BEFORE, workflow, workflow_id, step_id, defn.name)
        if taken is not None:
            _fire(*taken)
        with self._lock:
            stub = next(
                (
                    s
                    for s in self.stubs
                    if _matches(s.step, step_id, defn.name)
                    and _workflow_matches(s.workflow, workflow, workflow_id)
                ),
                None,
            )
        body = defn.fn
        if stub is not None:
            body = self._recording(stub)
        during = self._take(DURING, workflow, workflow_id, step_id, defn.name)
        if during is not None:
            body = _then_crash(body, *during)
        if body is defn.fn:
            return defn
        if defn.is_async:
            body = _as_async(body)
        return dataclasses.replace(defn, fn=body)

    def after_step(self, workflow: str, workflow_id: str, step_id: int, defn: StepDef) -> None:
        taken = self._take(AFTER, workflow, workflow_id, step_id, defn.name)
        if taken is not None:
            _fire(*taken)

    @staticmethod
    def _recording(stub: Stub) -> Callable[..., Any]:
        def body(*args: Any, **kwargs: Any) -> Any:
            stub.calls.append((args, kwargs))
            return stub.body(*args, **kwargs)

        return body


def _fire(crash: Crash, exc: SimulatedCrash) -> None:
    crash._event.set()
    raise exc


def _then_crash(body: Callable[..., Any], crash: Crash, exc: SimulatedCrash) -> Callable[..., Any]:
    def run(*args: Any, **kwargs: Any) -> Any:
        result = body(*args, **kwargs)
        if hasattr(result, "__await__"):

            async def finish() -> Any:
                await result
                _fire(crash, exc)

            return finish()
        _fire(crash, exc)

    return run


def _as_async(body: Callable[..., Any]) -> Callable[..., Any]:
    """An async step's body must stay awaitable whatever wraps it."""

    async def run(*args: Any, **kwargs: Any) -> Any:
        result = body(*args, **kwargs)
        if hasattr(result, "__await__"):
            return await result
        return result

    return run
