"""Durable time and messages across a SIGKILL: a sleep wakes at its recorded time, and
messages sent while the receiver was dead are received exactly once, in order."""

from __future__ import annotations

import json
import time

import pytest

from durable_core.messaging import read_wait_mark
from tests.crash.harness import wait_for
from tests.crash.workers import read_lines, receiver, sleeper, times_out

pytestmark = [pytest.mark.crash, pytest.mark.timeout(150)]

# Long enough that a restarted worker on two loaded cores (several seconds to start and import)
# still resumes before "restart + SLEEP_SECONDS", the earliest a fresh sleep could end.
SLEEP_SECONDS = 10.0


def test_sleep_killed_midway_wakes_at_the_original_time(fleet, client, tmp_path):
    log = str(tmp_path / "effects.log")
    args = json.dumps([log, SLEEP_SECONDS])
    first = fleet.spawn(
        "exec-s", "--start", sleeper.__name__, "--workflow-id", "wf-sleep", "--args", args
    )
    first.wait_ready()
    c = client()

    def recorded_wake_time() -> float | None:
        steps = c.list_steps("wf-sleep")
        return next((s.result for s in steps if s.name == "durable.sleep"), None)

    wake_at = wait_for(recorded_wake_time, 30, "the sleep to record its wake-up time")
    # Kill half-way through the sleep, so "a full sleep after restart" and "the original time"
    # differ by half the sleep.
    wait_for(lambda: time.time() >= wake_at - SLEEP_SECONDS / 2, 10, "half the sleep to pass")
    first.kill()
    restarted_at = time.time()

    second = fleet.spawn("exec-s")
    second.wait_ready()  # launch() has recovered the workflow by now
    recovered_at = time.time()
    woke = c.retrieve_workflow("wf-sleep").result(timeout=30)
    print(
        f"woke {woke - wake_at:+.3f}s from the recorded time; restart at {restarted_at - wake_at:+.3f}s"
    )
    # Not early: `woke` is this host's clock, `wake_at` the database's clock as the engine
    # estimates it (to within half a reading's round trip, milliseconds on a loaded machine).
    assert woke >= wake_at - 0.1
    assert woke < restarted_at + SLEEP_SECONDS - 0.5  # not a fresh full sleep after restart
    # at the recorded time, or at once if past (a loaded machine may lag the timer a little)
    assert woke - max(wake_at, recovered_at) < SLEEP_SECONDS / 4
    lines = read_lines(log)
    assert sum(line.startswith("before ") for line in lines) == 1
    assert sum(line.startswith("woke ") for line in lines) == 1
    assert [s.name for s in c.list_steps("wf-sleep")].count("durable.sleep") == 1


def test_messages_sent_while_receiver_was_dead_arrive_once_in_order(fleet, client, tmp_path):
    log = str(tmp_path / "effects.log")
    args = json.dumps([log, 4, "orders"])
    first = fleet.spawn(
        "exec-r", "--start", receiver.__name__, "--workflow-id", "wf-recv", "--args", args
    )
    wait_for(lambda: "ready" in read_lines(log), 30, "the receiver to start waiting")
    c = client()
    c.send("wf-recv", {"n": 1}, topic="orders")
    wait_for(
        lambda: [s.name for s in c.list_steps("wf-recv")].count("durable.recv") == 1,
        30,
        "the first message to be received",
    )
    first.kill()

    for n in (2, 3, 4):  # nobody is running the receiver now
        c.send("wf-recv", {"n": n}, topic="orders")
    c.send("wf-recv", "other topic", topic="noise")
    assert c.retrieve_workflow("wf-recv").status().status == "PENDING"

    fleet.spawn("exec-r")
    assert c.retrieve_workflow("wf-recv").result(timeout=30) == [{"n": n} for n in (1, 2, 3, 4)]
    recvs = [s for s in c.list_steps("wf-recv") if s.name == "durable.recv"]
    assert [s.result for s in recvs] == [{"n": n} for n in (1, 2, 3, 4)]
    assert read_lines(log).count("ready") == 1
    # Consumed messages are marked consumed; the one on another topic is still waiting.
    rows = c.store.fetchall(
        "SELECT topic FROM durable_notifications WHERE destination_id = %s AND consumed_at IS NULL",
        ("wf-recv",),
    )
    assert [r[0] for r in rows] == ["noise"]


def test_recv_timeout_keeps_its_original_deadline_across_a_crash(fleet, client, tmp_path):
    log = str(tmp_path / "effects.log")
    args = json.dumps([log, SLEEP_SECONDS])
    first = fleet.spawn(
        "exec-t", "--start", times_out.__name__, "--workflow-id", "wf-timeout", "--args", args
    )
    wait_for(lambda: "ready" in read_lines(log), 30, "the receiver to start waiting")
    c = client()
    engine_store = c.store

    def recorded_deadline() -> float | None:
        marks = [s for s in engine_store.load_steps("wf-timeout") if s.step_id < 0]
        return read_wait_mark(marks[0].output).deadline if marks else None

    deadline = wait_for(recorded_deadline, 30, "the recv to record its deadline")
    wait_for(lambda: time.time() >= deadline - SLEEP_SECONDS / 2, 10, "half the wait to pass")
    first.kill()
    restarted_at = time.time()
    fleet.spawn("exec-t")
    got, timed_out_at = c.retrieve_workflow("wf-timeout").result(timeout=30)
    assert got is None
    assert timed_out_at >= deadline
    assert timed_out_at < restarted_at + SLEEP_SECONDS - 0.5  # not a fresh full timeout
    assert [s.name for s in c.list_steps("wf-timeout")] == [
        "tests.crash.workers.note",
        "durable.recv",
        "tests.crash.workers.clock",
    ]
