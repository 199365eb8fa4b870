"""An outage of twice the lease, with no process killed, re-runs no plain step (issue 10,
"Outages and stalls longer than the lease").

Three real workers (lease 3 s, heartbeat 1 s) run queued workflows of many short plain steps on
the suite's throwaway PostgreSQL cluster, which is stopped twice for 2 x lease + 1 s mid-run. When it
returns, every worker's heartbeat is older than the lease; a worker that judged the others at
once would adopt their live work and run its steps a second time. Each worker waits until it
has itself been in contact for a full lease, by which time the others have renewed.
"""

from __future__ import annotations

import time

import pytest

from durable_core import Client
from tests.crash.harness import Fleet, wait_for
from tests.crash.workers import lease_queue, read_lines, stepping

pytestmark = [pytest.mark.crash, pytest.mark.timeout(240)]

LEASE = 3
OUTAGE = 2 * LEASE + 1
OUTAGES = 2
WORKERS, WORKFLOWS, STEPS, WORK = 3, 21, 25, 0.3


def starts(log: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for line in read_lines(log):
        what, tag, _ = line.split()
        if what == "start":
            counts[tag] = counts.get(tag, 0) + 1
    return counts


def test_outage_of_twice_the_lease_reruns_no_plain_step(fault_db, tmp_path):
    log = str(tmp_path / "effects.log")
    fleet = Fleet(tmp_path, fault_db.url)
    try:
        workers = [
            fleet.spawn(f"w{i}", "--lease", str(LEASE), "--heartbeat", "1") for i in range(WORKERS)
        ]
        for w in workers:
            w.wait_ready()
        name = stepping.__durable_workflow__.name
        with Client(fault_db.url) as client:
            handles = [
                client.enqueue(lease_queue.name, name, log, f"wf{i}", STEPS, WORK)
                for i in range(WORKFLOWS)
            ]
            wait_for(lambda: sum(starts(log).values()) >= 40, 60, "the run to be under way")
            running = {h.status().executor_id for h in handles if h.status().status == "PENDING"}
            assert len(running) == WORKERS, "every worker should hold work when the server stops"
            for _ in range(OUTAGES):
                with fault_db.cluster.down():
                    time.sleep(OUTAGE)  # the fault itself: the server stays down this long
                time.sleep(LEASE + 1)  # running again for a while: a new phase of the fleet
            for h in handles:
                assert h.result(timeout=120) == STEPS
        assert all(w.proc.poll() is None for w in workers), fleet.outputs()
        counts = starts(log)
        assert len(counts) == WORKFLOWS * STEPS
        rerun = sorted(tag for tag, n in counts.items() if n > 1)
        print(
            f"{len(rerun)} of {len(counts)} plain steps ran twice after {OUTAGES} outages of {OUTAGE}s"
        )
        assert rerun == [], fleet.outputs()[-5000:]
    finally:
        fleet.stop_all()
