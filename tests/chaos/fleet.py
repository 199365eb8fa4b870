"""Worker processes that run the chaos workflows (``tests.chaos.run_worker``), tracked with
their pids and the times they were killed."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.crash.harness import REPO_ROOT, Worker


class ChaosWorker(Worker):
    """``tests.crash.harness.Worker``, running the module that also registers tests.chaos."""

    def __init__(self, tmp_path: Path, database_url: str, executor_id: str, *options: str):
        self.executor_id = executor_id
        stamp = time.monotonic_ns()
        self.ready_file = tmp_path / f"ready-{executor_id}-{stamp}"
        self.output = tmp_path / f"worker-{executor_id}-{stamp}.out"
        command = [
            sys.executable, "-m", "tests.chaos.run_worker", database_url, executor_id,
            "--ready", str(self.ready_file), *options,
        ]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        with open(self.output, "wb") as out:
            self.proc = subprocess.Popen(
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

    def spawn(self, executor_id: str) -> ChaosWorker:
        worker = ChaosWorker(self.tmp_path, self.database_url, executor_id, *self.options)
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
