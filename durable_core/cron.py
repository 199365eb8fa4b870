"""Cron ticks in a time zone: which instants a schedule fires at, DST included (pure functions).

A cron expression names local wall-clock times; a tick is the instant at which that wall time
happens in the schedule's zone. Two nights a year that is not one-to-one, and the rule here is
the one of classic cron, written down:

- A local time that does not exist (the spring-forward gap: 02:30 on the night New York goes
  from 02:00 to 03:00) fires once, shifted forward by the length of the gap (at 03:30 EDT),
  which is how ``zoneinfo`` reads a nonexistent time (PEP 495, ``fold=0``). If that instant is
  another tick of the same schedule too (``*/30``: 03:30 itself), it is one tick, one run.
- A local time that happens twice (the fall-back hour: 01:30 on the night New York goes from
  02:00 back to 01:00) fires once, at its first occurrence (EDT). A ``*/15`` schedule thus
  has no ticks during the repeated hour's second pass.

Every tick is returned as an aware UTC datetime at whole seconds, so that a tick's workflow ID
(``sched:<schedule>:<UTC time>Z``) is the same in every process.
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
from collections import deque
from collections.abc import Iterator
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import ConfigurationError

__all__ = ["check_cron", "zone", "next_tick", "latest_ticks", "ticks_between"]

UTC = dt.UTC

# Around a clock change a candidate's local time and its instant differ by up to the change;
# the search backs up by the change seen in this window before the instant it starts from.
_CHANGE_WINDOW = dt.timedelta(hours=6)


def check_cron(expression: Any, what: str) -> str:
    """``expression`` if it is a valid five-field cron expression (a sixth field, seconds,
    is accepted); ConfigurationError naming ``what`` otherwise."""
    from croniter import croniter

    if (
        not isinstance(expression, str)
        or len(expression.split()) not in (5, 6)
        or not croniter.is_valid(expression)
    ):
        raise ConfigurationError(f"invalid cron expression {expression!r} for {what}")
    return expression


@functools.lru_cache(maxsize=256)
def zone(name: Any) -> ZoneInfo:
    """The IANA time zone ``name`` (``"Europe/Paris"``, ``"UTC"``); ConfigurationError if
    there is no such zone."""
    if not isinstance(name, str) or not name or "\x00" in name:
        raise ConfigurationError(f"timezone must be an IANA zone name such as 'UTC', not {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigurationError(
            f"unknown time zone {name!r}: use an IANA name such as 'UTC' or 'Europe/Paris'"
        ) from None


def _instant(naive: dt.datetime, tz: ZoneInfo) -> dt.datetime:
    """The instant of local wall time ``naive`` (first occurrence; a gap time shifted)."""
    return naive.replace(tzinfo=tz, fold=0).astimezone(UTC)


def next_tick(expression: str, tz: ZoneInfo, after: dt.datetime) -> dt.datetime:
    """The first tick strictly after the instant ``after`` (aware), as an aware UTC datetime."""
    from croniter import croniter

    after = after.astimezone(UTC)
    local = after.astimezone(tz)
    start = local.replace(tzinfo=None)
    # Just after a spring-forward, a gap time's tick (shifted forward) can lie after ``after``
    # although its wall time is before ``after``'s: start the search that much earlier.
    jump = local.utcoffset() - (after - _CHANGE_WINDOW).astimezone(tz).utcoffset()  # type: ignore[operator]
    if jump > dt.timedelta(0):
        start -= jump
    candidates = croniter(expression, start)
    best: dt.datetime | None = None
    limit: dt.datetime | None = None  # local wall time past which no candidate can beat best
    while True:
        naive = candidates.get_next(dt.datetime)
        if limit is not None and naive > limit:
            assert best is not None
            return best
        instant = _instant(naive, tz)
        if instant <= after:
            continue  # a wall time whose first occurrence is over (the repeated hour)
        if best is None or instant < best:
            best = instant
        real = instant.astimezone(tz).replace(tzinfo=None)
        if real == naive:
            # A wall time that exists: later candidates map to later instants, except gap
            # times, and those fire after the gap's start, which is after this one.
            if limit is None:
                return best
        elif limit is None:
            # A gap time: it fires at ``real``; a wall time after the gap but before ``real``
            # fires earlier. Look at candidates up to ``real``.
            limit = real


_SAMPLE = dt.timedelta(hours=12)  # clock changes are months apart: sampling finds them


def _stable_until(tz: ZoneInfo, start: dt.datetime, upto: dt.datetime) -> dt.datetime:
    """How far from ``start`` (at most ``upto``) the zone keeps ``start``'s UTC offset, by
    samples twelve hours apart; ``start`` itself if the offset changed in the six hours
    before it (a gap time's tick may then lie after ``start``)."""
    offset = start.astimezone(tz).utcoffset()
    if tz.key in ("UTC", "Etc/UTC"):
        return upto
    if (start - _CHANGE_WINDOW).astimezone(tz).utcoffset() != offset:
        return start
    stable = start
    while stable < upto:
        sample = min(stable + _SAMPLE, upto)
        if sample.astimezone(tz).utcoffset() != offset:
            break
        stable = sample
    return stable


def iter_ticks(
    expression: str, tz: ZoneInfo, after: dt.datetime, upto: dt.datetime
) -> Iterator[dt.datetime]:
    """The ticks in ``(after, upto]``, oldest first. Where the zone's offset holds, one pass
    of the cron iterator (local time is UTC plus a constant); across a clock change, tick by
    tick with ``next_tick``."""
    from croniter import croniter

    tick, upto = after.astimezone(UTC), upto.astimezone(UTC)
    while tick < upto:
        stable = _stable_until(tz, tick, upto)
        if stable > tick:
            offset = tick.astimezone(tz).utcoffset()
            assert offset is not None
            candidates = croniter(expression, (tick + offset).replace(tzinfo=None))
            while True:
                found = (candidates.get_next(dt.datetime) - offset).replace(tzinfo=UTC)
                if found > stable:
                    break
                yield found
            tick = stable
            continue
        tick = next_tick(expression, tz, tick)
        if tick > upto:
            return
        yield tick


def ticks_between(
    expression: str, tz: ZoneInfo, after: dt.datetime, upto: dt.datetime, limit: int
) -> list[dt.datetime]:
    """The ticks in ``(after, upto]``, oldest first, at most ``limit`` (the oldest ones)."""
    return list(itertools.islice(iter_ticks(expression, tz, after, upto), limit))


def latest_ticks(
    expression: str, tz: ZoneInfo, after: dt.datetime, upto: dt.datetime, limit: int
) -> list[dt.datetime]:
    """The most recent ``limit`` ticks in ``(after, upto]``, oldest first.

    Bounded work however long the window: the search starts near ``upto`` (a window sized
    from the schedule's spacing there) and reaches further back only while it found fewer
    than ``limit`` ticks, doubling each time, never before ``after``."""
    upto = upto.astimezone(UTC)
    after = after.astimezone(UTC)
    if upto <= after or limit < 1:
        return []
    first = ticks_between(expression, tz, after, upto, limit + 1)
    if len(first) <= limit:
        return first
    # More than ``limit``: estimate the spacing from what was found and search a window that
    # should hold ``limit`` ticks, widening it until it does.
    spacing = (first[-1] - first[0]) / max(len(first) - 1, 1)
    span = max(spacing * (limit + 1), dt.timedelta(seconds=1))
    while True:
        start = max(after, upto - span)
        found = deque(iter_ticks(expression, tz, start, upto), maxlen=limit)
        if len(found) == limit or start == after:
            return list(found)
        span *= 2


def tick_label(tick: dt.datetime) -> str:
    """A tick's part of its workflow ID: UTC, whole seconds (as ``@scheduled`` always had)."""
    return tick.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S") + "Z"
