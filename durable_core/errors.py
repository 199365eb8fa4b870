"""Every error the library raises, in one place.

Each message names the workflow, step or argument involved and, where it helps, what to do.
"""

from __future__ import annotations

from typing import Any


class DurableError(Exception):
    """Base class of every error raised by durable-workflows."""


class WorkflowNotFound(DurableError, LookupError):
    def __init__(self, workflow_id: str):
        self.workflow_id = workflow_id
        super().__init__(f"No workflow with ID {workflow_id!r} exists in the system database.")


class WorkflowCancelled(DurableError):
    def __init__(self, workflow_id: str, reason: str = "it was cancelled"):
        self.workflow_id = workflow_id
        super().__init__(f"Workflow {workflow_id!r} did not finish: {reason}.")


class WorkflowConflict(DurableError):
    def __init__(self, workflow_id: str, existing_name: str, requested_name: str):
        self.workflow_id = workflow_id
        super().__init__(
            f"Workflow ID {workflow_id!r} already belongs to workflow {existing_name!r}; "
            f"it cannot be reused for {requested_name!r}. Choose another workflow_id."
        )


class NonDeterministicWorkflow(DurableError):
    def __init__(self, workflow_id: str, step_id: int, recorded: str, called: str):
        self.workflow_id = workflow_id
        self.step_id = step_id
        super().__init__(
            f"Workflow {workflow_id!r} is not deterministic: step {step_id} was recorded as "
            f"{recorded!r} but the replay called {called!r}. A workflow must call the same steps "
            "in the same order every time it runs."
        )


class StepRetriesExceeded(DurableError):
    def __init__(self, step_name: str, attempts: int, last_error: BaseException | None):
        self.step_name = step_name
        self.attempts = attempts
        self.last_error = last_error
        detail = f"{type(last_error).__name__}: {last_error}" if last_error else "unknown error"
        super().__init__(f"Step {step_name!r} failed {attempts} time(s); last error: {detail}")

    def __reduce__(self) -> tuple[Any, ...]:  # keeps the exception rebuildable from its args
        return (type(self), (self.step_name, self.attempts, self.last_error))


class StepInterrupted(DurableError):
    """A step raised a ``BaseException`` that is not an ``Exception`` (``SystemExit``,
    ``KeyboardInterrupt`` in a worker thread, a sub-task's ``CancelledError``, a custom one).
    It is recorded as the step's failure, like any error, instead of unwinding the worker."""

    def __init__(self, step_name: str, error_type: str, message: str):
        self.step_name = step_name
        self.error_type = error_type
        self.error_message = message
        super().__init__(f"Step {step_name!r} raised {error_type}: {message}")

    def __reduce__(self) -> tuple[Any, ...]:  # keeps the exception rebuildable from its args
        return (type(self), (self.step_name, self.error_type, self.error_message))


class SerializationError(DurableError, TypeError):
    """A value could not be encoded or decoded by the configured serializer."""


class WorkflowFailed(DurableError):
    """A workflow ended in error and its original exception type cannot be rebuilt here."""

    def __init__(self, workflow_id: str, error_type: str, message: str, status: str = "ERROR"):
        self.workflow_id = workflow_id
        self.error_type = error_type
        self.error_message = message
        self.status = status
        super().__init__(f"Workflow {workflow_id!r} failed ({status}): {error_type}: {message}")


class DeduplicationConflict(DurableError):
    def __init__(self, queue_name: str, deduplication_id: str):
        self.queue_name = queue_name
        self.deduplication_id = deduplication_id
        super().__init__(
            f"Queue {queue_name!r} already holds an enqueued or running workflow with "
            f"deduplication_id {deduplication_id!r}."
        )


class NotInWorkflow(DurableError, RuntimeError):
    def __init__(self, what: str):
        super().__init__(f"{what} can only be called inside a running workflow.")


class EngineNotRunning(DurableError, RuntimeError):
    """No engine is launched where one is needed (the default engine, or this engine)."""


class EngineAlreadyRunning(DurableError, RuntimeError):
    """A call that reconfigures an engine was made while it runs (it must come before
    launch, or after shutdown)."""


class AsyncCallRequired(DurableError, TypeError):
    """A blocking call was made where only its ``_async`` twin can work (say, starting a
    workflow inside a request whose session is an ``AsyncSession``)."""


class WaitInTransaction(DurableError, RuntimeError):
    """A wait (``handle.result()``) inside the caller's open transaction on the system database
    (Django's ``atomic()``) for a workflow that cannot end before that transaction does: one
    started in it runs only after the commit, and on SQLite the transaction holds the write
    lock every workflow needs. Raised at once instead of waiting for a timeout."""

    def __init__(self, workflow_id: str, reason: str):
        self.workflow_id = workflow_id
        super().__init__(
            f"handle.result() on workflow {workflow_id!r} inside transaction.atomic(): {reason} "
            "Wait for it after the atomic() block; handle.status() works inside it."
        )


class SchemaVersionError(DurableError):
    """The system database was migrated by a newer release than this code knows."""


class DatabaseUnavailable(DurableError, ConnectionError):
    """The system database could not be reached."""


class ConfigurationError(DurableError, ValueError):
    """An argument or setting is invalid."""


class DatabaseConfigurationError(ConfigurationError):
    """The system database refused this process for a reason that waiting cannot fix: the
    database does not exist, the role does not exist, or authentication failed. Unlike an
    outage, it is not retried."""


class StoreClosed(DurableError):
    """The engine (or client) was shut down: its connections to the system database are
    closed. Work left unfinished is recovered by its executor's next launch or adopted."""


class ExecutorIdInUse(ConfigurationError):
    """Another live process (a fresh heartbeat from another host or process ID) runs under
    this executor ID. Two processes sharing one executor ID would corrupt each other's work."""


class RetryAfter(DurableError):
    """Raised by a step body to ask for a retry after ``seconds`` (an HTTP 429 or 503
    ``Retry-After``). That delay replaces the backoff for this attempt (no jitter, no
    ``max_delay`` cap: the server said when); it still counts against ``retries``, and it is
    retried even when ``retry_on`` does not list it (``should_retry``, if given, still decides)."""

    def __init__(self, seconds: float, message: str | None = None):
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
            raise ValueError(f"RetryAfter seconds must be a number >= 0, got {seconds!r}")
        self.seconds = float(seconds)
        self.message = message
        super().__init__(message or f"retry after {self.seconds:g}s")

    def __reduce__(self) -> tuple[Any, ...]:  # keeps the exception rebuildable from its args
        return (type(self), (self.seconds, self.message))


class StepTimeout(DurableError, TimeoutError):
    """An attempt of a step ran longer than its ``@step(timeout=...)``. It counts as a failed
    attempt for the retry policy. An async body is cancelled; a sync body cannot be stopped
    in Python, so the workflow stops waiting for it while its thread may keep running."""

    def __init__(self, step_name: str, timeout: float):
        self.step_name = step_name
        self.timeout = timeout
        super().__init__(f"Step {step_name!r} did not finish within its timeout of {timeout:g}s")

    def __reduce__(self) -> tuple[Any, ...]:  # keeps the exception rebuildable from its args
        return (type(self), (self.step_name, self.timeout))


class ScheduleNotFound(DurableError, LookupError):
    def __init__(self, schedule_id: str):
        self.schedule_id = schedule_id
        super().__init__(f"No schedule with ID {schedule_id!r} exists in the system database.")


class ScheduleConflict(DurableError):
    """A schedule ID that is taken, or a change a schedule does not allow (the cron of a
    code-defined one)."""

    def __init__(self, schedule_id: str, reason: str):
        self.schedule_id = schedule_id
        super().__init__(f"Schedule {schedule_id!r}: {reason}.")
