"""One fault against a fleet: worker processes (tests.chaos.run_worker) run queued workflows of
plain and @transaction steps on the throwaway cluster, each worker through a proxy of its
own, while a fault is injected; afterwards the database and the side-effect log are counted.

The three counts every fault must leave at zero:
- workflows not SUCCESS (lost: ERROR, dead-lettered, or stuck PENDING/ENQUEUED at the end);
- duplicate @transaction effects (application rows beyond one per workflow and step);
- plain-step re-runs not explained by a kill or a freeze past the lease (a step may run once
  more for each kill or freeze of a process that had started it).
"""

from __future__ import annotations

import fcntl
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psycopg

from durable_core import Client
from tests.chaos.fleet import ChaosFleet, ChaosWorker
from tests.chaos.flows import APP_TABLE, APP_TABLE_DDL, UNIQUE_TABLE_DDL, fault_queue, steady
from tests.chaos.invariants import by_step, excess_runs, read_executions
from tests.crash.harness import REPO_ROOT, migrate, wait_for
from tests.crash.workers import read_lines
from tests.faultlab.fixtures import FaultDB
from tests.faultlab.proxy import Proxy

WORKERS = 3
TOTAL = 72  # workflows; 24 run at once (3 workers x 8), so the run lasts a few waves
STEPS, WORK = 6, 0.3  # plain steps 1, 3, 5 (0.3 s each), @transaction steps 2, 4, 6
LEASE, HEARTBEAT = 4.0, 1.0
SETTLE = 30.0  # seconds after the fault for every workflow to finish
ARTIFACT = REPO_ROOT / "test-artifacts" / "faults.json"


@dataclass
class Counts:
    """What one fault run left behind."""

    fault: str
    workflows: int
    not_success: int
    duplicate_effects: int
    plain_reruns: int
    unexplained_plain_reruns: int
    kills: int
    freezes: int
    statuses: dict[str, int]
    seconds: float
    detail: dict = field(default_factory=dict)

    def zero_violations(self) -> bool:
        return not (self.not_success or self.duplicate_effects or self.unexplained_plain_reruns)


class FaultRun:
    """The fleet, its proxies and the test's own view of the database, for one fault."""

    def __init__(self, db: FaultDB, tmp_path: Path, *, workers: int = WORKERS, total: int = TOTAL):
        self.db, self.total = db, total
        self.log = str(tmp_path / "effects.log")
        self.fleet = ChaosFleet(
            tmp_path, db.url, ("--lease", str(LEASE), "--heartbeat", str(HEARTBEAT))
        )
        self.proxies: dict[str, Proxy] = {}
        self.workers: dict[str, ChaosWorker] = {}
        self.explained: dict[int, float] = {}  # pid -> kill time, or end of a long freeze
        self.kills = self.freezes = 0
        self.detail: dict = {}
        migrate(db.url)
        with psycopg.connect(db.url, autocommit=True) as conn:
            conn.execute(APP_TABLE_DDL)
            conn.execute(UNIQUE_TABLE_DDL)
        self.client = Client(db.url)
        self.slots = [f"exec-{n}" for n in range(workers)]
        for slot in self.slots:  # in place before the workers start: rules can be set early
            self.proxies[slot] = Proxy(db.cluster.port).start()

    # -- set up -----------------------------------------------------------------------------

    def enqueue(
        self, timeout: float | None = None, effect_work: float = 0.0, unique: bool = False
    ) -> None:
        name = steady.__durable_workflow__.name
        for i in range(self.total):
            self.client.enqueue(
                fault_queue.name, name, self.log, i, STEPS, WORK, effect_work, unique,
                workflow_id=f"wf-{i}", timeout=timeout,
            )  # fmt: skip

    def spawn(self, slot: str, clock_shift: float = 0.0) -> ChaosWorker:
        """Start (or restart) the worker of ``slot``, through that slot's proxy."""
        url = self.db.url_via(self.proxies[slot].port)
        worker = self.fleet.spawn(slot, url, clock_shift=clock_shift)
        self.workers[slot] = worker
        return worker

    def start(
        self,
        clock_shifts: dict[str, float] | None = None,
        timeout: float | None = None,
        effect_work: float = 0.0,
        unique: bool = False,
    ) -> None:
        self.enqueue(timeout=timeout, effect_work=effect_work, unique=unique)
        for slot in self.slots:
            self.spawn(slot, (clock_shifts or {}).get(slot, 0.0))
        for worker in self.workers.values():
            worker.wait_ready(60)
        self.started = time.monotonic()

    # -- during the run ---------------------------------------------------------------------

    def starts(self) -> int:
        return sum(1 for line in read_lines(self.log) if line.startswith("start "))

    def wait_starts(self, n: int, timeout: float = 60) -> None:
        wait_for(lambda: self.starts() >= n, timeout, f"{n} step starts", interval=0.05)

    def count(self, sql: str, *params) -> int:
        with psycopg.connect(self.db.url, autocommit=True, connect_timeout=10) as conn:
            return conn.execute(sql, params).fetchone()[0]

    def busiest_slot(self) -> str:
        """The slot whose worker runs the most workflows right now."""
        held = (
            "SELECT COUNT(*) FROM durable_workflows WHERE status = 'PENDING' AND executor_id = %s"
        )
        return max(self.slots, key=lambda slot: self.count(held, slot))

    def kill(self, slot: str) -> None:
        """SIGKILL the slot's worker; a kill explains one more run of what it had started."""
        self.explained[self.workers[slot].pid] = self.fleet.kill(self.workers[slot])
        self.kills += 1

    def freeze_explains(self, slot: str, until: float) -> None:
        """A freeze past the lease explains one more run of what the frozen worker started."""
        self.explained[self.workers[slot].pid] = until
        self.freezes += 1

    def finished(self) -> bool:
        return (
            self.count(
                "SELECT COUNT(*) FROM durable_workflows WHERE status IN ('PENDING', 'ENQUEUED')"
            )
            == 0
        )

    def wait_finished(self, timeout: float = SETTLE) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.finished():
                return True
            time.sleep(0.2)
        return False

    # -- afterwards -------------------------------------------------------------------------

    def close(self) -> None:
        self.fleet.stop_all()
        for proxy in self.proxies.values():
            proxy.close()
        self.client.close()

    def counts(self, fault: str) -> Counts:
        seconds = time.monotonic() - self.started
        with psycopg.connect(self.db.url, autocommit=True) as conn:
            statuses = dict(
                conn.execute("SELECT status, COUNT(*) FROM durable_workflows GROUP BY status")
            )
            effects = conn.execute(f"SELECT workflow_id, step_id FROM {APP_TABLE}").fetchall()
            failed = conn.execute(
                "SELECT workflow_id, status, error FROM durable_workflows "
                "WHERE status <> 'SUCCESS' ORDER BY workflow_id LIMIT 5"
            ).fetchall()
        per_effect = Counter(map(tuple, effects))
        executions = read_executions(read_lines(self.log))
        plain = [e for e in executions if e.step_id % 2]
        unexplained = excess_runs(plain, self.explained)
        owners: dict[str, set[int]] = {}
        for e in executions:
            owners.setdefault(e.workflow_id, set()).add(e.pid)
        counts = Counts(
            fault=fault,
            workflows=self.total,
            not_success=self.total - statuses.get("SUCCESS", 0),
            duplicate_effects=sum(n - 1 for n in per_effect.values()),
            plain_reruns=len(plain) - len(by_step(plain)),
            unexplained_plain_reruns=len(unexplained),
            kills=self.kills,
            freezes=self.freezes,
            statuses=statuses,
            seconds=round(seconds, 1),
            detail={
                **self.detail,
                "not_success_examples": [list(r) for r in failed],
                "unexplained_examples": unexplained[:5],
                "workflows_run_by_several_processes": sum(
                    1 for pids in owners.values() if len(pids) > 1
                ),
                "proxy_replies_dropped": sum(
                    p.stats.replies_dropped for p in self.proxies.values()
                ),
            },
        )
        return counts


def record(counts: Counts) -> None:
    """Keep the counts of every fault run in test-artifacts/faults.json (for the docs)."""
    ARTIFACT.parent.mkdir(exist_ok=True)
    # Read, add, write under a lock: pytest-xdist workers may record faults at the same time.
    with open(ARTIFACT.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            runs = json.loads(ARTIFACT.read_text())
        except (FileNotFoundError, ValueError):
            runs = {}
        runs[counts.fault] = asdict(counts)
        ARTIFACT.write_text(json.dumps(runs, indent=2, sort_keys=True) + "\n")


def run_fault(
    db: FaultDB,
    tmp_path: Path,
    fault: str,
    inject: Callable[[FaultRun], None],
    *,
    prepare: Callable[[FaultRun], None] | None = None,
    clock_shifts: dict[str, float] | None = None,
    timeout: float | None = None,
    effect_work: float = 0.0,
    unique: bool = False,
    total: int = TOTAL,
) -> Counts:
    """Start the fleet (``prepare`` runs before the workers start), wait until work is in
    flight, ``inject`` the fault (it returns when the fault is over), let the fleet finish,
    count."""
    run = FaultRun(db, tmp_path, total=total)
    try:
        if prepare is not None:
            prepare(run)
        run.start(clock_shifts, timeout=timeout, effect_work=effect_work, unique=unique)
        # Work in flight before the fault (a fault that stops all work from the start, such as
        # lost claim replies, is counted afterwards rather than failing here).
        deadline = time.monotonic() + 60
        while run.starts() < 12 and time.monotonic() < deadline:
            time.sleep(0.05)
        inject(run)
        finished = run.wait_finished()
        counts = run.counts(fault)
        counts.detail["finished_in_time"] = finished
        record(counts)
        print(f"fault counts: {json.dumps(asdict(counts))}")
        if not counts.zero_violations():
            print(run.fleet.outputs(tail=2000))
        return counts
    finally:
        run.close()


def assert_no_violations(counts: Counts) -> None:
    assert (counts.not_success, counts.duplicate_effects, counts.unexplained_plain_reruns) == (
        0,
        0,
        0,
    ), (
        f"{counts.fault}: {counts.not_success} workflows not SUCCESS {counts.statuses}, "
        f"{counts.duplicate_effects} duplicate @transaction effects, "
        f"{counts.unexplained_plain_reruns} unexplained plain-step re-runs; {counts.detail}"
    )
