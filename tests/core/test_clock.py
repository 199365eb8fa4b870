"""The Clock seam: the engine's times come from one clock, by default the database's."""

from __future__ import annotations

import time
import uuid

from durable_core import Engine, workflow
from durable_core.clock import Clock, DatabaseClock


class FixedOffsetClock(DatabaseClock):
    """A clock that is ``shift`` seconds off the database and never recalibrates."""

    def __init__(self, shift: float) -> None:
        super().__init__()
        self.shift = shift
        self.calibrations = 0

    def calibrate(self, read_database_ms) -> None:
        self.calibrations += 1

    def time(self) -> float:
        return time.time() + self.shift

    def now_ms(self) -> int:
        return int(self.time() * 1000)


@workflow(name="test_clock.stamp")
def stamp() -> str:
    return "ok"


def test_database_clock_follows_the_database(engine):
    assert isinstance(engine.clock, DatabaseClock)
    assert isinstance(engine.clock, Clock)
    assert engine.clock.calibrated
    before = engine.clock.now_ms()
    database = engine.store.database_time_ms()
    after = engine.clock.now_ms()
    # Generous: the reading and ours bracket each other within a round trip plus slack.
    assert before - 500 <= database <= after + 500


def test_database_clock_ignores_a_shifted_host_clock(engine, monkeypatch):
    reference = engine.clock.now_ms()
    monkeypatch.setattr(time, "time", lambda: 0.0)  # the host's wall clock jumps to 1970
    assert abs(engine.clock.now_ms() - reference) < 5_000
    engine.clock.calibrate(engine.store.database_time_ms)  # recalibration reads the database
    assert abs(engine.clock.now_ms() - reference) < 5_000


def test_engine_uses_the_clock_it_is_given(database_url):
    clock = FixedOffsetClock(shift=3600)
    with Engine(database_url, executor_id=f"clock-{uuid.uuid4().hex[:6]}", clock=clock) as eng:
        assert eng.clock is clock and clock.calibrations >= 1
        handle = eng.start_workflow(stamp)
        assert handle.result(timeout=30) == "ok"
        created = eng.store.get_workflow(handle.workflow_id).created_at
        assert abs(created - (time.time() + 3600) * 1000) < 60_000
