"""Worker processes that run the chaos workflows (``tests.chaos.run_worker``), tracked with
their pids and the times they were killed."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests import processes
from tests.crash.harness import REPO_ROOT, Worker
from tests.faultlab.clockshift import ENV


class ChaosWorker(Worker):
    """``tests.crash.harness.Worker``, running the module that also registers tests.chaos."""

    def __init__(
        self,
        tmp_path: Path,
        database_url: str,
        executor_id: str,
        *options: str,
        clock_shift: float = 0.0,
    ):
        self.executor_id = executor_id
        stamp = time.monotonic_ns()
        self.ready_file = tmp_path / f"ready-{executor_id}-{stamp}"
        self.output = tmp_path / f"worker-{executor_id}-{stamp}.out"
        # A shifted wall clock is installed before the worker imports anything.
        launcher = ["-m", "tests.faultlab.clockshift"] if clock_shift else ["-m"]
        command = [
            sys.executable, *launcher, "tests.chaos.run_worker", database_url, executor_id,
            "--ready", str(self.ready_file), *options,
        ]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), ENV: str(clock_shift)}
        with open(self.output, "wb") as out:
            self.proc = processes.spawn(
                command, cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
            )


@dataclass
class ChaosFleet:
    """Every process a test started, with each one's death time (None while alive)."""

    tmp_path: Path
    database_url: str
    options: tuple[str, ...] = ()
    workers: list[ChaosWorker] = field(default_factory=list)
    died_at: dict[int, float] = field(default_factory=dict)

    def spawn(
        self, executor_id: str, database_url: str | None = None, clock_shift: float = 0.0
    ) -> ChaosWorker:
        """A worker on the fleet's database, or on ``database_url`` (say, through a proxy)."""
        worker = ChaosWorker(
            self.tmp_path,
            database_url or self.database_url,
            executor_id,
            *self.options,
            clock_shift=clock_shift,
        )
        self.workers.append(worker)
        return worker

    def kill(self, worker: ChaosWorker) -> float:
        killed_at = worker.kill()
        self.died_at[worker.pid] = killed_at
        return killed_at

    def live(self) -> list[ChaosWorker]:
        return [w for w in self.workers if w.proc.poll() is None]

    def outputs(self, tail: int = 3000) -> str:
        return "\n".join(
            f"--- {w.executor_id} pid {w.pid}\n{w.log_text()[-tail:]}" for w in self.workers
        )

    def stop_all(self) -> None:
        for worker in self.workers:
            worker.stop()
