"""A real browser (Debian's chromium, driven by Playwright) opens the dashboard and sees a
workflow's steps; and the agent page shows SSE progress. Screenshots go to
``$DURABLE_ARTIFACTS_DIR`` (default ``durable-artifacts`` in the temporary directory)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import httpx
import pytest

from .test_example_process import Server, wait_for

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(
    os.environ.get("DURABLE_ARTIFACTS_DIR") or Path(tempfile.gettempdir()) / "durable-artifacts"
)

if not os.path.exists(CHROMIUM):
    pytest.skip(f"{CHROMIUM} is missing (apt-get install -y chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")


@pytest.fixture
def browser():
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"]
        )
        yield browser
        browser.close()


def test_dashboard_shows_a_workflows_steps(tmp_path: Path, database_url, backend, browser):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    server = Server(tmp_path, database_url, AGENT_STEP_DELAY="0.05").start()
    try:
        started = httpx.post(
            server.url + "/research", json={"topic": "browsers"}, headers={"Idempotency-Key": "b-1"}
        )
        assert started.status_code == 202
        wait_for(
            lambda: httpx.get(server.url + "/research/b-1").json()["pending"], 30, "the approval"
        )

        # The agent's own page follows the SSE stream (the agent's events) and offers the
        # approval of the report it asks to publish.
        page = browser.new_page()
        page.goto(server.url + "/#b-1")
        page.locator("#draft", has_text="Report on browsers").wait_for(timeout=15_000)
        page.get_by_role("button", name="Approve").click()
        page.get_by_text("The report on browsers is published").wait_for(timeout=15_000)
        tools = page.locator("#progress li.tool").all_inner_texts()
        assert [t.split(" ")[1] for t in tools if t.startswith("←")] == [
            "web_search:",
            "read_page:",
            "read_page:",
            "read_page:",
            "publish_report:",
        ]
        page.screenshot(path=str(ARTIFACTS / f"agent-{backend}.png"), full_page=True)

        context = browser.new_context(http_credentials={"username": "admin", "password": "admin"})
        dashboard = context.new_page()
        dashboard.goto(server.url + "/durable/dashboard")
        row = dashboard.locator("#workflows tbody tr", has_text="b-1")
        row.wait_for(timeout=15_000)
        assert "SUCCESS" in row.inner_text()
        row.get_by_role("link", name="b-1").click()
        steps = dashboard.locator("#steps tr.step")
        steps.first.wait_for(timeout=15_000)
        names = steps.locator(".step-name").all_inner_texts()
        assert names.count("model:researcher") == 4
        assert names.count("tool:web_search") == 1
        assert names.count("tool:read_page") == 3
        assert names.count("tool:publish_report") == 1
        assert "durable.recv" in names  # the approval wait
        assert dashboard.locator("#wf-status").inner_text() == "SUCCESS"
        dashboard.screenshot(path=str(ARTIFACTS / f"dashboard-{backend}.png"), full_page=True)

        # Without credentials the dashboard is not served.
        anonymous = browser.new_context().request.get(server.url + "/durable/dashboard")
        assert anonymous.status == 401
    finally:
        server.stop()
