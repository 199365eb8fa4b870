"""The example agent under a real uvicorn: SIGKILL mid-run, restart, finish without repeating a
finished model request or tool call; SSE read live over HTTP; one executor per uvicorn worker
process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from durable_core.store import parse_database_url
from tests import processes
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "example_projects" / "fastapi_agent"
pytestmark = pytest.mark.crash


class Server:
    """``uvicorn app:app`` for the example, in its own process."""

    def __init__(self, tmp_path: Path, database_url: str, **env: str):
        self.port = processes.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp_path / f"uvicorn-{self.port}.log"
        self.env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "AGENT_DATABASE_URL": database_url,
            "AGENT_STEP_DELAY": "0.3",
            **env,
        }
        self.env.pop("DURABLE_EXECUTOR_ID", None) if "DURABLE_EXECUTOR_ID" not in env else None
        self.cwd = tmp_path
        self.proc: subprocess.Popen | None = None

    def start(self, *extra: str) -> Server:
        # Its own process group (uvicorn forks workers), killed whole by stop()/kill() and,
        # if the test fails or is interrupted before, by tests.processes' finaliser.
        self.proc = processes.spawn(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "app:app",
                "--app-dir",
                str(EXAMPLE),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                *extra,
            ],
            cwd=self.cwd,
            env=self.env,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
        )

        def up() -> bool:
            assert self.proc.poll() is None, self.log.read_text()
            try:
                return httpx.get(self.url + "/", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        # Generous: each worker imports Pydantic AI, slow on a loaded machine.
        wait_for(up, 120, "uvicorn to serve")
        return self

    def kill(self) -> None:
        processes.kill(self.proc)

    def stop(self) -> None:
        if self.proc is not None:
            processes.stop(self.proc)


@pytest.fixture
def db(database_url):
    engine = create_engine(parse_database_url(database_url).sqlalchemy)
    yield engine
    engine.dispose()


def scalar(db, sql: str, **params):
    with db.connect() as conn:
        return conn.execute(text(sql), params).scalar()


def read_events(server: Server, workflow_id: str, approve: bool = True) -> list[dict]:
    """The run's agent events over SSE until ``end``, approving the report when asked."""
    values = []
    with httpx.Client(base_url=server.url, timeout=30) as client:
        with client.stream("GET", f"/research/{workflow_id}/progress") as events:
            assert events.headers["content-type"].startswith("text/event-stream")
            kind = None
            for line in events.iter_lines():
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: ") and kind == "value":
                    values.append(json.loads(line[6:]))
                    if values[-1]["event_kind"] == "approval_required" and approve:
                        sent = client.post(
                            f"/research/{workflow_id}/approval", json={"approved": True}
                        )
                        assert sent.status_code == 202
                elif kind == "end":
                    break
    return values


def test_sigkill_mid_run_then_restart_repeats_no_finished_model_request_or_tool_call(
    tmp_path, database_url, db
):
    calls = tmp_path / "calls.log"  # one line per model request and tool call actually made
    env = {
        "DURABLE_EXECUTOR_ID": "agent-crash-test",  # the restart resumes its own work at once
        "AGENT_CALL_LOG": str(calls),
    }
    server = Server(tmp_path, database_url, **env).start()
    try:
        started = httpx.post(
            server.url + "/research",
            json={"topic": "durable execution"},
            headers={"Idempotency-Key": "crash-1"},
        )
        assert started.status_code == 202, started.text
        notes = "SELECT COUNT(*) FROM agent_notes WHERE workflow_id = 'crash-1'"
        wait_for(lambda: scalar(db, notes) >= 1, 30, "the first note")
        server.kill()
        before = calls.read_text().splitlines()
        assert 1 <= scalar(db, notes) < 3, "the kill should land mid-research"
        status = "SELECT status FROM durable_workflows WHERE workflow_id = 'crash-1'"
        assert scalar(db, status) == "PENDING"

        server = Server(tmp_path, database_url, **env).start()
        # A retried POST with the same key finds the same workflow.
        again = httpx.post(
            server.url + "/research",
            json={"topic": "durable execution"},
            headers={"Idempotency-Key": "crash-1"},
        )
        assert again.json()["workflow_id"] == "crash-1"
        values = read_events(server, "crash-1")
        final = wait_for(
            lambda: (
                (r := httpx.get(server.url + "/research/crash-1").json())["status"] == "SUCCESS"
                and r
            ),
            30,
            "SUCCESS",
        )
        assert final["result"]["status"] == "published"
    finally:
        server.stop()

    # Every model request and tool call ran once, except the one the kill interrupted (its
    # checkpoint was never written), which ran again after the restart.
    after = calls.read_text().splitlines()
    assert sorted(set(after)) == sorted(
        ["model:turn-0", "model:turn-1", "model:turn-2", "model:turn-3"]
        + ["tool:web_search:durable execution", "tool:publish_report:Report on durable execution"]
        + [
            f"tool:read_page:https://example.org/durable-execution/{page}"
            for page in ("overview", "history", "critique")
        ]
    )
    repeated = {line for line in after if after.count(line) > 1}
    assert repeated <= {before[-1]}, (before, after)
    assert len(after) - len(set(after)) == len(repeated) <= 1

    # The stream holds each event once: the replay wrote nothing twice.
    results = [v["part"]["tool_name"] for v in values if v["event_kind"] == "function_tool_result"]
    assert results == ["web_search", "read_page", "read_page", "read_page", "publish_report"]
    assert [v["event_kind"] for v in values].count("approval_required") == 1
    assert values[-1]["event_kind"] == "done" and values[-1]["status"] == "published"
    steps = (
        "SELECT COUNT(*) FROM durable_steps WHERE workflow_id = 'crash-1' AND name LIKE 'tool:%'"
    )
    assert scalar(db, steps) == 5
    assert scalar(db, notes) == 3
    assert scalar(db, "SELECT COUNT(DISTINCT url) FROM agent_notes") == 3
    assert scalar(db, "SELECT COUNT(*) FROM agent_reports WHERE workflow_id = 'crash-1'") == 1
    assert scalar(db, "SELECT COUNT(*) FROM agent_requests") == 1
    assert (
        scalar(db, "SELECT recovery_attempts FROM durable_workflows WHERE workflow_id = 'crash-1'")
        >= 1
    )


def executors(db) -> list[tuple]:
    with db.connect() as conn:
        return [
            tuple(r) for r in conn.execute(text("SELECT executor_id, pid FROM durable_executors"))
        ]


def test_each_uvicorn_worker_has_its_own_executor(tmp_path, database_url, db):
    server = Server(tmp_path, database_url).start("--workers", "2")
    try:
        rows = wait_for(lambda: len(r := executors(db)) >= 2 and r, 40, "two executors")
    finally:
        server.stop()
    ids = {executor for executor, _ in rows}
    pids = {pid for _, pid in rows}
    assert len(ids) == len(rows) == 2
    assert len(pids) == 2
    assert all(str(pid) in executor for executor, pid in rows)


def test_sigterm_with_an_open_stream_exits_promptly(tmp_path, database_url, db):
    """uvicorn waits for open responses before it runs the lifespan's shutdown: an SSE stream
    waiting for an approval must end on SIGTERM itself, or the process never exits."""
    import threading

    server = Server(tmp_path, database_url).start()
    lines: list[str] = []
    waiting = threading.Event()

    def listen() -> None:
        try:
            with httpx.Client(base_url=server.url, timeout=60) as client:
                with client.stream("GET", "/research/term-1/progress") as events:
                    for line in events.iter_lines():
                        lines.append(line)
                        if "approval_required" in line:
                            waiting.set()
        except httpx.HTTPError:
            pass  # the server closing the connection is the expected end

    try:
        started = httpx.post(
            server.url + "/research", json={"topic": "t"}, headers={"Idempotency-Key": "term-1"}
        )
        assert started.status_code == 202, started.text
        listener = threading.Thread(target=listen, daemon=True)
        listener.start()
        assert waiting.wait(30), lines
        signalled = time.monotonic()
        os.kill(server.proc.pid, signal.SIGTERM)
        server.proc.wait(timeout=30)
        took = time.monotonic() - signalled
        listener.join(10)
    finally:
        server.stop()
    # uvicorn re-raises the SIGTERM it handled once it has shut down gracefully.
    assert server.proc.returncode in (0, -signal.SIGTERM), server.log.read_text()
    assert "Application shutdown complete" in server.log.read_text()
    assert took < 20, f"exit took {took:.1f} s after SIGTERM"
    assert not listener.is_alive()
    assert "event: end" not in lines  # cut by the shutdown: the browser reconnects elsewhere
