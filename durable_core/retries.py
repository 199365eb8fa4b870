"""A step's retry policy: which failures are retried, and how long to wait before each retry.

Pure functions of the step's settings and the failure, so the one retry loop (the step plan in
``execution.py``, run by both drivers) stays short and the policy is testable on its own.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from .errors import ConfigurationError, RetryAfter


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """``retries`` retries after the first failure; the n-th waits
    ``min(retry_delay * backoff**(n-1), max_delay)`` times a jitter factor in
    ``[1 - jitter, 1]``. ``retry_on`` (exception classes) limits which failures are retried;
    ``should_retry(exc, attempt)`` decides last. A ``RetryAfter`` sets its own delay."""

    retries: int = 0
    retry_delay: float = 1.0
    backoff: float = 2.0
    max_delay: float = 60.0
    jitter: float = 0.1
    retry_on: tuple[type[BaseException], ...] | None = None
    should_retry: Callable[[BaseException, int], bool] | None = None

    def retryable(self, failure: BaseException, attempt: int) -> bool:
        """Whether ``failure`` of attempt number ``attempt`` (1-based) is worth a retry, not
        counting how many retries are left."""
        if not isinstance(failure, RetryAfter) and self.retry_on is not None:
            if not isinstance(failure, self.retry_on):
                return False
        if self.should_retry is not None:
            return bool(self.should_retry(failure, attempt))
        return True

    def delay(self, failure: BaseException, attempt: int, seed: str) -> float:
        """Seconds to wait after attempt ``attempt`` failed with ``failure``.

        The jitter is drawn from a generator seeded with ``seed`` (workflow ID and step ID)
        and the attempt: workflows that fail together spread their retries apart, and the
        same workflow waits the same time on every run (tests can assert it exactly)."""
        if isinstance(failure, RetryAfter):
            return failure.seconds
        base = min(self.retry_delay * self.backoff ** (attempt - 1), self.max_delay)
        if not self.jitter:
            return base
        factor = 1.0 - self.jitter * random.Random(f"{seed}:{attempt}").random()
        return base * factor


def check(
    retries: int,
    retry_delay: float,
    backoff: float,
    max_delay: float,
    jitter: float,
    retry_on: object,
    should_retry: object,
    timeout: object,
) -> tuple[type[BaseException], ...] | None:
    """Validate ``@step``'s retry and timeout arguments; returns ``retry_on`` as a tuple."""
    if retries < 0 or retry_delay < 0 or backoff < 1 or max_delay < 0:
        raise ConfigurationError(
            "step retries and retry_delay must be >= 0, backoff >= 1 and max_delay >= 0"
        )
    if not 0 <= jitter <= 1:
        raise ConfigurationError(f"step jitter must be between 0 and 1, got {jitter!r}")
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0
    ):
        raise ConfigurationError(f"step timeout must be a number of seconds > 0, got {timeout!r}")
    if should_retry is not None and not callable(should_retry):
        raise ConfigurationError("step should_retry must be a callable (exc, attempt) -> bool")
    if retry_on is None:
        return None
    classes = tuple(retry_on) if isinstance(retry_on, list | tuple | set) else (retry_on,)
    for cls in classes:
        if not (isinstance(cls, type) and issubclass(cls, BaseException)):
            raise ConfigurationError(
                f"step retry_on must be exception classes, got {cls!r} in {retry_on!r}"
            )
    return classes
