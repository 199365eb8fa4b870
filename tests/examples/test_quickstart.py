"""The README's quickstart, as a person would run it: start, SIGKILL mid-way, run again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests import processes

SCRIPT = Path(__file__).resolve().parents[2] / "example_projects" / "quickstart" / "checkout.py"

pytestmark = pytest.mark.crash


def run(cwd: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "QUICKSTART_STEP_SECONDS": "0.4", "PYTHONUNBUFFERED": "1"}
    env.pop("DURABLE_DATABASE_URL", None)  # the quickstart's own default: a SQLite file here
    return processes.spawn(
        [sys.executable, str(SCRIPT), *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_killed_midway_resumes_from_the_last_completed_step(tmp_path):
    first = run(tmp_path, "order-42")
    seen: list[str] = []
    deadline = time.monotonic() + 30
    assert first.stdout is not None
    for line in first.stdout:  # read until step 3 has started, then pull the plug
        seen.append(line)
        if "[step 3]" in line or time.monotonic() > deadline:
            break
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    assert any("[step 3]" in line for line in seen), "".join(seen)

    second = run(tmp_path, "order-42")
    out, _ = second.communicate(timeout=60)
    assert second.returncode == 0, out
    assert "Resuming order-42: already done: validate_payment, check_inventory" in out
    assert "[step 1]" not in out and "[step 2]" not in out  # completed steps never run again
    assert "[step 3]" in out and "[step 4]" in out
    assert "'tracking': 'TRACK-ORDER-42'" in out

    third = run(tmp_path, "order-42")
    out, _ = third.communicate(timeout=60)
    assert "already finished earlier; nothing runs twice" in out
    assert "[step" not in out
    assert (tmp_path / "durable.sqlite3").exists()
