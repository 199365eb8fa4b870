"""Every check of a value that a caller hands the public API, in one place.

A bad value fails here, before anything is stored, with a ``ConfigurationError`` (a
``ValueError``) that names the argument: never later as a raw driver error, and never by
storing something that breaks reading it back (a deadline past year 9999 made every listing
fail). Engine, ``Queue.enqueue``, ``Client`` and the listings all use these functions.
A leaf module: it imports nothing of this package but the errors.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from collections.abc import Iterable
from typing import Any

from .errors import ConfigurationError

#: IDs, names and keys are at most this many UTF-8 bytes in every table and migration: they
#: are indexed (two of them in one key at most), and PostgreSQL B-tree entries are limited to
#: 2704 bytes.
MAX_ID_BYTES = 1000
#: Stored durations (workflow timeouts, delays, sleeps) are at most about 100 years: a deadline
#: must stay a valid datetime and a BIGINT of milliseconds.
MAX_SECONDS = 100 * 365 * 24 * 3600.0
#: INTEGER columns (priority, max_recovery_attempts, step IDs) hold 32-bit signed values.
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
#: LIMIT/OFFSET take 64-bit integers on both backends.
INT64_MAX = 2**63 - 1


def is_storable_text(value: str) -> bool:
    """Whether both backends can hold ``value`` in a TEXT column (PostgreSQL refuses NUL;
    neither driver encodes lone surrogates)."""
    if "\x00" in value:
        return False
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def text(value: Any, what: str, *, allow_empty: bool = True, max_bytes: int | None = None) -> str:
    """A string both backends store as given, at most ``max_bytes`` UTF-8 bytes."""
    if not isinstance(value, str):
        raise ConfigurationError(f"{what} must be a string, not {type(value).__name__}")
    if not value and not allow_empty:
        raise ConfigurationError(f"{what} must be a non-empty string")
    if "\x00" in value:
        raise ConfigurationError(f"{what} must not contain NUL characters")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise ConfigurationError(f"{what} must be valid Unicode (no lone surrogates)") from None
    if max_bytes is not None and size > max_bytes:
        raise ConfigurationError(
            f"{what} is {size} bytes (UTF-8), longer than the limit of {max_bytes}: "
            "use a shorter one"
        )
    return value


def workflow_id(value: Any, what: str = "workflow_id") -> str:
    """A workflow ID: a non-empty string of at most 1000 UTF-8 bytes, no NUL."""
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"{what} must be a non-empty string, not {value!r:.80}")
    return text(value, what, max_bytes=MAX_ID_BYTES)


def optional_workflow_id(value: Any, what: str = "workflow_id") -> str | None:
    """None (a new ID is generated) or a valid workflow ID; ``""`` is refused, not replaced."""
    return None if value is None else workflow_id(value, what)


def child_workflow_id(parent_id: str, step_id: int) -> str:
    """The ID of the child a workflow starts at ``step_id`` without naming it:
    ``parent-N``, deterministic (replay finds it again). A parent ID so long that the suffix
    would cross the 1000-byte rule keeps a prefix and a digest of the whole parent ID instead,
    so children (and their children) stay unique and within the rule."""
    child = f"{parent_id}-{step_id}"
    if len(child.encode("utf-8")) <= MAX_ID_BYTES:
        return child
    digest = hashlib.sha256(parent_id.encode("utf-8")).hexdigest()[:32]
    suffix = f"~{digest}-{step_id}"
    room = MAX_ID_BYTES - len(suffix.encode("ascii"))
    prefix = parent_id.encode("utf-8")[:room].decode("utf-8", errors="ignore")
    return prefix + suffix


def key(value: Any, what: str, allow_none: bool = False) -> str:
    """A topic, event key, stream key or idempotency key (None is ``""`` where allowed)."""
    if value is None and allow_none:
        return ""
    return text(value, what, max_bytes=MAX_ID_BYTES)


def name(value: Any, what: str) -> str:
    """A workflow or queue name: non-empty, storable, bounded."""
    return text(value, what, allow_empty=False, max_bytes=MAX_ID_BYTES)


def optional_name(value: Any, what: str) -> str | None:
    return None if value is None else name(value, what)


def optional_text(value: Any, what: str) -> str | None:
    """An optional stored label (application version): storable, bounded."""
    return None if value is None else text(value, what, max_bytes=MAX_ID_BYTES)


def deduplication_id(value: Any) -> str | None:
    """None, or a non-empty key (an empty one collided in the unique index)."""
    if value is None:
        return None
    return text(value, "deduplication_id", allow_empty=False, max_bytes=MAX_ID_BYTES)


def partition_key(value: Any) -> str | None:
    """None, or a partition key: storable, bounded (empty is the default partition)."""
    if value is None:
        return None
    return text(value, "partition_key", max_bytes=MAX_ID_BYTES)


def debounce_key(value: Any) -> str | None:
    """None, or a non-empty debounce key."""
    if value is None:
        return None
    return text(value, "debounce_key", allow_empty=False, max_bytes=MAX_ID_BYTES)


def debounce(
    key: Any, seconds: Any, max_wait: Any, **conflicting: Any
) -> tuple[str, float, float | None] | None:
    """``enqueue(debounce_key=, debounce=, debounce_max_wait=)``: None when not debounced,
    else (key, window, cap) with both key and window given. ``conflicting`` are options a
    debounced enqueue cannot take (its one workflow gets a generated ID and its own delay)."""
    if key is None and seconds is None and max_wait is None:
        return None
    if key is None or seconds is None:
        raise ConfigurationError("a debounced enqueue needs both debounce_key and debounce")
    given = sorted(name for name, value in conflicting.items() if value is not None)
    if given:
        raise ConfigurationError(f"a debounced enqueue cannot take {', '.join(given)}")
    window = delay_seconds(seconds, "debounce")
    assert window is not None
    if window <= 0:
        raise ConfigurationError(f"debounce must be a positive number of seconds, not {seconds!r}")
    cap = delay_seconds(max_wait, "debounce_max_wait")
    return debounce_key(key) or "", window, cap


def integer(value: Any, what: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigurationError(f"{what} must be an integer, not {value!r:.80}")
    if not low <= value <= high:
        raise ConfigurationError(f"{what} must be between {low} and {high}, not {value}")
    return int(value)


def priority(value: Any) -> int:
    """None (0) or a 32-bit integer; lower runs first."""
    return 0 if value is None else integer(value, "priority", INT32_MIN, INT32_MAX)


def max_recovery_attempts(value: Any) -> int | None:
    """None (no limit) or an integer >= 0."""
    if value is None:
        return None
    return integer(value, "max_recovery_attempts", 0, INT32_MAX)


def step_number(value: Any, what: str = "start_step") -> int:
    return integer(value, what, 1, INT32_MAX)


def _seconds(value: Any, what: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or math.isnan(value)
        or value < 0
    ):
        raise ConfigurationError(
            f"{what} must be a non-negative number of seconds or None, not {value!r:.80}"
        )
    return float(value)


def wait_seconds(value: Any, what: str = "timeout") -> float | None:
    """How long a caller waits (result, recv, get_event): None or ``inf`` wait without limit."""
    if value is None:
        return None
    return _seconds(value, what)


def timeout_seconds(value: Any, what: str = "timeout") -> float | None:
    """A workflow's timeout, stored as a deadline: None or ``inf`` mean none; at most
    ``MAX_SECONDS``."""
    if value is None:
        return None
    seconds = _seconds(value, what)
    if seconds == math.inf:
        return None
    if seconds > MAX_SECONDS:
        raise ConfigurationError(
            f"{what} must be at most {MAX_SECONDS:.0f} seconds (about 100 years), not {value!r}; "
            "pass None for no limit"
        )
    return seconds


def delay_seconds(value: Any, what: str = "delay") -> float | None:
    """A stored delay or sleep: finite, at most ``MAX_SECONDS``."""
    if value is None:
        return None
    seconds = _seconds(value, what)
    if seconds > MAX_SECONDS:
        raise ConfigurationError(
            f"{what} must be a finite number of seconds, at most {MAX_SECONDS:.0f} "
            f"(about 100 years), not {value!r}"
        )
    return seconds


def limit(value: Any) -> int | None:
    """A listing's page size: None (all) or an integer >= 0."""
    return None if value is None else integer(value, "limit", 0, INT64_MAX)


def offset(value: Any) -> int:
    return 0 if value is None else integer(value, "offset", 0, INT64_MAX)


def statuses(value: Any) -> list[str] | None:
    """A listing's status filter: None, one status or several."""
    if value is None:
        return None
    items: Iterable[Any] = [value] if isinstance(value, str) else value
    try:
        result = [text(str(s), "status", max_bytes=100) for s in items]
    except TypeError:
        raise ConfigurationError(
            f"status must be a status, a list of statuses or None, not {value!r:.80}"
        ) from None
    return result or None


def timestamp_ms(value: Any, what: str) -> int | None:
    """A listing's time bound (``created_after``/``created_before``): None or a datetime
    (naive means UTC), as epoch milliseconds."""
    if value is None:
        return None
    if not isinstance(value, dt.datetime):
        raise ConfigurationError(f"{what} must be a datetime.datetime, not {value!r:.80}")
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    try:
        return int(value.timestamp() * 1000)
    except (OverflowError, ValueError, OSError):
        raise ConfigurationError(f"{what} is out of range: {value!r}") from None


def keyword_arguments(value: Any, what: str = "kwargs") -> dict[str, Any]:
    """The workflow's keyword arguments as a dict with string keys."""
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise ConfigurationError(f"{what} must be a dict with string keys, not {value!r:.80}")
    return value


MAX_QUEUE_LIMIT = 2**31 - 1  # an INTEGER column on PostgreSQL


def queue_limit(value: Any, what: str) -> int | None:
    """``concurrency`` or ``worker_concurrency`` of a queue: a positive integer or None."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_QUEUE_LIMIT:
        raise ConfigurationError(f"{what} must be a positive integer or None, not {value!r:.80}")
    return value


def rate_limit(value: Any, what: str) -> tuple[int, float] | None:
    """``rate_limit=(n, seconds)`` of a queue: at most n starts in any window that long."""
    if value is None:
        return None
    try:
        n, period = value
    except (TypeError, ValueError):
        raise ConfigurationError(f"{what} must be a tuple (n, seconds) or None") from None
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_QUEUE_LIMIT:
        raise ConfigurationError(f"{what} count must be a positive integer, not {n!r:.80}")
    if (
        isinstance(period, bool)
        or not isinstance(period, int | float)
        or math.isnan(period)
        or not 0 < period <= MAX_SECONDS
    ):
        raise ConfigurationError(
            f"{what} period must be a positive number of seconds, not {period!r:.80}"
        )
    return (n, float(period))
