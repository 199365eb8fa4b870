"""Chaos: 500 workflows across 3 worker processes on PostgreSQL while a chaos loop SIGKILLs a
random worker every few seconds (restarting it at once, or only after its lease expired so
the others adopt its work) and restarts PostgreSQL (the suite's own throwaway cluster) once mid-run. At the end the database and
the side-effect log must show: every workflow SUCCESS, every @transaction effect exactly once,
every message received exactly once, no plain step run more often than the crashes that hit
it allow, and no workflow run by two live processes at once."""

from __future__ import annotations

import json
import random
import time
from collections import Counter

import pytest

from durable_core import Client
from tests.chaos.fleet import ChaosFleet
from tests.chaos.flows import APP_TABLE, APP_TABLE_DDL, chaos_queue, paired
from tests.chaos.invariants import (
    by_step,
    concurrent_owners,
    excess_runs,
    read_executions,
    unfinished_without_crash,
)
from tests.crash.harness import REPO_ROOT, app_engine, migrate
from tests.crash.workers import read_lines

pytestmark = [pytest.mark.crash, pytest.mark.slow, pytest.mark.timeout(290)]

TOTAL = 500
WORKERS = 3
LEASE, HEARTBEAT = 4, 1
KILL_GAP = (1.5, 3.0)  # seconds between kills, drawn from a seeded generator
ADOPT_EVERY = 4  # every 4th victim stays dead past its lease: the others adopt its work
PG_RESTART_AFTER = 25.0  # seconds into the run
RUN_DEADLINE = 200.0
STEP_NAMES = [
    paired.__module__ + ".plain",
    paired.__module__ + ".effect",
    "durable.send",
    "durable.sleep",
    "durable.recv",
    paired.__module__ + ".plain",
]


def count(client: Client, sql: str, *params) -> int:
    return client.store.fetchone(sql, params)[0]


def test_chaos(fault_db, tmp_path):
    url, log = fault_db.url, str(tmp_path / "effects.log")
    migrate(url)
    app = app_engine(url)
    with app.begin() as conn:
        conn.exec_driver_sql(APP_TABLE_DDL)
    client = Client(url)
    name = paired.__durable_workflow__.name
    for i in range(TOTAL):
        client.enqueue(chaos_queue.name, name, log, i, f"chaos-{i ^ 1}", workflow_id=f"chaos-{i}")
    fleet = ChaosFleet(tmp_path, url, ("--lease", str(LEASE), "--heartbeat", str(HEARTBEAT)))
    rng = random.Random(20240607)
    slots = {f"exec-{n}": fleet.spawn(f"exec-{n}") for n in range(WORKERS)}
    kills, adoptions, held_by_dead = 0, 0, {}
    delayed: dict[str, float] = {}  # slot -> when to restart it
    pg_downtime = None
    success_sql = "SELECT COUNT(*) FROM durable_workflows WHERE status = 'SUCCESS'"
    held_sql = (
        "SELECT COUNT(*) FROM durable_workflows WHERE status = 'PENDING' AND executor_id = %s"
    )
    try:
        for worker in slots.values():
            worker.wait_ready()
        started = time.monotonic()
        next_kill = started + rng.uniform(*KILL_GAP)
        while (done := count(client, success_sql)) < TOTAL:
            now = time.monotonic()
            failed = client.store.fetchall(
                "SELECT workflow_id, status, error FROM durable_workflows "
                "WHERE status NOT IN ('SUCCESS', 'PENDING', 'ENQUEUED') LIMIT 5"
            )
            assert not failed, f"workflows failed: {failed}\n{fleet.outputs()}"
            if now - started > RUN_DEADLINE:
                raise AssertionError(
                    f"only {done}/{TOTAL} workflows done after {RUN_DEADLINE}s:\n" + fleet.outputs()
                )
            if pg_downtime is None and now - started >= PG_RESTART_AFTER:
                pg_downtime = fault_db.cluster.restart()
            for slot, when in list(delayed.items()):
                if now >= when:
                    adoptions += held_by_dead.pop(slot) - count(client, held_sql, slot)
                    slots[slot] = fleet.spawn(slot)
                    del delayed[slot]
            live = [s for s in slots if s not in delayed]
            if now >= next_kill and len(live) >= 2:
                slot = rng.choice(live)
                fleet.kill(slots[slot])
                kills += 1
                if kills % ADOPT_EVERY == 0:
                    held_by_dead[slot] = count(client, held_sql, slot)
                    delayed[slot] = time.monotonic() + LEASE + 3
                else:  # same executor ID: it recovers its own work at launch
                    slots[slot] = fleet.spawn(slot)
                next_kill = time.monotonic() + rng.uniform(*KILL_GAP)
            time.sleep(0.1)
        duration = time.monotonic() - started
        assert pg_downtime is not None, "the run ended before PostgreSQL was restarted"
    finally:
        fleet.stop_all()

    # -- invariants, from the database and the side-effect log ----------------------------------
    statuses = client.store.fetchall(
        "SELECT status, COUNT(*) FROM durable_workflows GROUP BY status"
    )
    assert statuses == [("SUCCESS", TOTAL)]
    outputs = dict(client.store.fetchall("SELECT workflow_id, output FROM durable_workflows"))
    for i in range(TOTAL):  # each received its partner's one message
        expected = [i, {"from": f"chaos-{i ^ 1}", "index": i ^ 1}]
        assert client.serializer.loads(outputs[f"chaos-{i}"]) == expected
    messages = client.store.fetchall(
        "SELECT destination_id, consumed_at IS NOT NULL FROM durable_notifications"
    )
    assert sorted(messages) == sorted((f"chaos-{i}", True) for i in range(TOTAL))  # one each
    steps: dict[str, list[str]] = {}
    for wid, _, step_name in client.store.fetchall(
        "SELECT workflow_id, step_id, name FROM durable_steps WHERE step_id > 0 "
        "ORDER BY workflow_id, step_id"  # (a waiting recv marks its deadline at -step_id)
    ):
        steps.setdefault(wid, []).append(step_name)
    assert len(steps) == TOTAL and all(names == STEP_NAMES for names in steps.values())

    app.dispose()  # its pooled connections died with the PostgreSQL restart
    with app.connect() as conn:
        effects = conn.exec_driver_sql(f"SELECT workflow_id, step_id FROM {APP_TABLE}").fetchall()
    app.dispose()
    per_key = Counter((w, s) for w, s in effects)
    assert len(effects) == TOTAL, f"{len(effects)} @transaction effects for {TOTAL} workflows"
    assert set(per_key) == {(f"chaos-{i}", 2) for i in range(TOTAL)}
    assert max(per_key.values()) == 1

    executions = read_executions(read_lines(log))
    grouped = by_step(executions)
    assert set(grouped) == {(f"chaos-{i}", s) for i in range(TOTAL) for s in (1, 2, 6)}
    plain_runs = [e for e in executions if e.step_id != 2]
    assert excess_runs(plain_runs, fleet.died_at) == []
    assert unfinished_without_crash(executions, fleet.died_at) == []
    assert concurrent_owners(executions, fleet.died_at) == []

    recoveries = count(client, "SELECT COALESCE(SUM(recovery_attempts), 0) FROM durable_workflows")
    client.close()
    counts = {
        "workflows": TOTAL,
        "worker_processes": WORKERS,
        "kills": kills,
        "worker_restarts": len(fleet.workers) - WORKERS,
        "restarts_after_lease": kills // ADOPT_EVERY,
        "workflows_adopted_by_other_workers": adoptions,
        "postgres_restarts": 1,
        "postgres_restart_seconds": round(pg_downtime, 2),
        "recoveries": recoveries,
        "plain_step_executions": len(plain_runs),
        "plain_step_reexecutions": len(plain_runs) - 2 * TOTAL,
        "transaction_step_executions": len(executions) - len(plain_runs),
        "transaction_step_reexecutions": len(executions) - len(plain_runs) - TOTAL,
        "transaction_effects": len(effects),
        "duration_seconds": round(duration, 1),
    }
    print("chaos counts: " + json.dumps(counts))
    artifacts = REPO_ROOT / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    (artifacts / "chaos.json").write_text(json.dumps(counts, indent=2) + "\n")
    assert kills >= 10, "the chaos loop should have killed a worker every few seconds"
    assert adoptions >= 1, "a worker that stayed dead past its lease should have been adopted"
