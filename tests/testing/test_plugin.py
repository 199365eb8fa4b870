"""The pytest plugin, as a user's project sees it: its own test file, no conftest."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

USER_TESTS = """
from durable_core import Queue, step, workflow

jobs = Queue("plugin-jobs")

@step
def double(x):
    return 2 * x

@workflow
def work(x):
    return double(x) + 1

def test_sync(durable_engine):
    assert durable_engine.start_workflow(work, 20).result(timeout=10) == 41
    handle = jobs.enqueue(work, 1)
    durable_engine.run_until_idle()
    assert handle.status().result == 3
    durable_engine.assert_enqueued(queue="plugin-jobs", workflow=work, args=(1,))

async def test_async(durable_engine):
    handle = await durable_engine.start_workflow_async(work, 1)
    assert await handle.result_async(timeout=10) == 3
"""


def test_fixtures_work_in_a_users_project(tmp_path: Path):
    (tmp_path / "test_user.py").write_text(USER_TESTS)
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "durable_core.testing.plugin"]
        + ["-p", "no:cacheprovider", "-o", "asyncio_mode=auto", "test_user.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "2 passed" in run.stdout


def test_entry_point_is_declared():
    pyproject = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    assert '[project.entry-points.pytest11]\n"durable_core.testing.plugin" = ' in pyproject
