"""The admin dashboard in a real browser: Debian's chromium driven by Playwright."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from django.contrib.auth.models import User

from durable_core import start_workflow
from tests.django.testapp import workflows as wf

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def test_admin_open_workflow_see_steps_cancel_running(web_engine, live_server, monkeypatch):
    password = uuid.uuid4().hex
    user = User.objects.create_superuser(f"browser-{uuid.uuid4().hex[:6]}", "b@x.org", password)
    running = start_workflow(wf.step_then_wait, 21)
    # Wait until its first step is recorded (the workflow is then parked in recv).
    from tests.django.conftest import wait_for

    wait_for(lambda: web_engine.list_steps(running.workflow_id), what="first step")
    # Playwright's sync API runs an event loop in this thread; the ORM calls that follow in
    # this test are still plain synchronous calls.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    backend = os.environ.get("DURABLE_DJANGO_DB", "sqlite")
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(20_000)
            ARTIFACTS.mkdir(exist_ok=True)
            (ARTIFACTS / ".gitignore").write_text("*\n")

            page.goto(f"{live_server.url}/admin/login/?next=/admin/django_durable/workflow/")
            page.fill("#id_username", user.username)
            page.fill("#id_password", password)
            page.click("input[type=submit]")
            page.wait_for_selector("#result_list")
            assert running.workflow_id in page.content()
            page.screenshot(path=str(ARTIFACTS / f"admin-workflows-{backend}.png"), full_page=True)

            page.click(f"a[href*='{running.workflow_id}']")
            page.wait_for_selector("#durable-steps")
            steps = page.locator("#durable-steps tr.durable-step")
            assert steps.count() == 1
            assert "tests.django.testapp.workflows.add" in steps.first.inner_text()
            assert "42" in steps.first.inner_text()
            assert "21" in page.locator("#durable-inputs").inner_text()
            page.screenshot(path=str(ARTIFACTS / f"admin-workflow-{backend}.png"), full_page=True)

            page.goto(f"{live_server.url}/admin/django_durable/workflow/?q={running.workflow_id}")
            page.check(f"input.action-select[value='{running.workflow_id}']")
            page.select_option("select[name=action]", "cancel_workflows")
            page.click("button[name=index]")
            page.wait_for_selector("ul.messagelist")
            assert "Cancelled 1 workflow" in page.inner_text("ul.messagelist")
            page.screenshot(path=str(ARTIFACTS / f"admin-cancelled-{backend}.png"), full_page=True)
        finally:
            browser.close()
    assert running.status().status == "CANCELLED"
