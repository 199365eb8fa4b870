"""Processes the tests spawn never outlive them (``tests.processes``): a server's whole tree
is stopped, and a pytest that is interrupted or killed outright leaves nothing running.
(An interrupted run once left two ``uvicorn --workers 2`` trees running for 45 minutes.)"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from tests import processes
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]

# A leader that forks a child which ignores SIGTERM (as a worker busy in a step might), then
# prints both PIDs and sleeps.
TREE = textwrap.dedent(
    """
    import signal, subprocess, sys, time
    child = subprocess.Popen([sys.executable, "-c",
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(120)"])
    print(child.pid, flush=True)
    time.sleep(120)
    """
)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie awaiting its reaper is gone for us
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"


def test_stop_ends_the_whole_tree_even_a_child_that_ignores_sigterm():
    leader = processes.spawn([sys.executable, "-c", TREE], stdout=subprocess.PIPE, text=True)
    child = int(leader.stdout.readline())
    assert os.getpgid(child) == leader.pid != os.getpgid(0)  # a group of its own
    processes.stop(leader, timeout=5)
    leader.stdout.close()
    assert leader.returncode == -signal.SIGTERM
    wait_for(lambda: not alive(child), 10, "the child to be killed")
    assert leader.pid not in processes.spawned()


def test_a_test_that_fails_or_is_interrupted_leaves_nothing(tmp_path):
    """The autouse fixture's finaliser kills what a test spawned and left running: a test
    that fails, and one interrupted by Ctrl-C (KeyboardInterrupt) part way."""
    (tmp_path / "test_inner.py").write_text(
        textwrap.dedent(
            f"""
            import subprocess, sys
            from tests import processes

            TREE = {TREE!r}

            def spawn_tree(name):
                leader = processes.spawn([sys.executable, "-c", TREE],
                                         stdout=subprocess.PIPE, text=True)
                with open(name, "w") as f:
                    f.write(f"{{leader.pid}} {{leader.stdout.readline()}}")

            def test_fails():
                spawn_tree("failed.pids")
                assert False

            def test_interrupted():
                spawn_tree("interrupted.pids")
                raise KeyboardInterrupt
            """
        )
    )
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.conftest", "-q", "-p", "no:cacheprovider"]
        + ["--rootdir", str(tmp_path), str(tmp_path / "test_inner.py")],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stdout + done.stderr  # interrupted
    for name in ("failed.pids", "interrupted.pids"):
        pids = [int(p) for p in (tmp_path / name).read_text().split()]
        assert len(pids) == 2
        for pid in pids:
            wait_for(lambda pid=pid: not alive(pid), 10, f"{name} {pid} to be gone")


def test_a_killed_pytest_leaves_nothing_running(tmp_path):
    """SIGKILL of the test process (or of its job's process group): no finaliser runs, and
    the spawned group, in a session of its own, did not die with it. The reaper does it."""
    script = textwrap.dedent(
        f"""
        import subprocess, sys, time
        from tests import processes
        leader = processes.spawn([sys.executable, "-c", {TREE!r}],
                                 stdout=subprocess.PIPE, text=True)
        print(leader.pid, leader.stdout.readline().strip(), flush=True)
        time.sleep(120)
        """
    )
    runner = subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,  # killed as a job's group would be, below
    )
    try:
        pids = [int(p) for p in runner.stdout.readline().split()]
        assert len(pids) == 2 and all(alive(p) for p in pids)
        os.killpg(runner.pid, signal.SIGKILL)
        runner.wait(timeout=10)
        started = time.monotonic()
        for pid in pids:
            wait_for(lambda pid=pid: not alive(pid), 15, f"{pid} to be reaped")
        assert time.monotonic() - started < 15
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
