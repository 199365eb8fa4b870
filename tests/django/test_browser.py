"""The admin dashboard in a real browser: Debian's chromium driven by Playwright.

Screenshots of each page go to ``$DURABLE_ARTIFACTS_DIR`` (CI's artifacts folder; default a
``durable-artifacts`` folder in the system's temporary directory), never into the repository.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path

import pytest
from django.contrib.auth.models import User

from durable_core import start_workflow
from tests.django.conftest import wait_for
from tests.django.testapp import workflows as wf

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(
    os.environ.get("DURABLE_ARTIFACTS_DIR") or Path(tempfile.gettempdir()) / "durable-artifacts"
)


@pytest.fixture
def browser_page(web_engine, live_server, monkeypatch):
    password = uuid.uuid4().hex
    user = User.objects.create_superuser(f"browser-{uuid.uuid4().hex[:6]}", "b@x.org", password)
    # Playwright's sync API runs an event loop in this thread; the ORM calls that follow in
    # this test are still plain synchronous calls.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    playwright = pytest.importorskip("playwright.sync_api")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(20_000)
            page.goto(f"{live_server.url}/admin/login/?next=/admin/django_durable/workflow/")
            page.fill("#id_username", user.username)
            page.fill("#id_password", password)
            page.click("input[type=submit]")
            page.wait_for_selector("#changelist")
            yield page, live_server.url
        finally:
            browser.close()


def shot(page, name: str) -> None:
    backend = os.environ.get("DURABLE_DJANGO_DB", "sqlite")
    page.screenshot(path=str(ARTIFACTS / f"admin-{name}-{backend}.png"), full_page=True)


def test_admin_open_workflow_see_steps_cancel_running(browser_page, web_engine):
    page, base = browser_page
    running = start_workflow(wf.step_then_wait, 21)
    wait_for(lambda: web_engine.list_steps(running.workflow_id), what="first step")
    page.goto(f"{base}/admin/django_durable/workflow/")
    assert running.workflow_id in page.content()
    shot(page, "workflows")

    page.click(f"a[href*='{running.workflow_id}']")
    page.wait_for_selector("#durable-steps")
    steps = page.locator("#durable-steps tr.durable-step")
    assert steps.count() == 1
    assert "tests.django.testapp.workflows.add" in steps.first.inner_text()
    assert "42" in steps.first.inner_text()
    assert "21" in page.locator("#durable-inputs").inner_text()
    assert "Waiting for a message" in page.locator("#durable-waiting").inner_text()
    shot(page, "workflow")

    # The Cancel button, then the confirmation page.
    page.click("#durable-actions a.danger")
    page.wait_for_selector("#durable-confirm")
    shot(page, "cancel-confirm")
    page.click("input[name=confirm]")
    page.wait_for_selector("ul.messagelist")
    assert "Cancelled 1 workflow" in page.inner_text("ul.messagelist")
    shot(page, "cancelled")
    assert running.status().status == "CANCELLED"


def test_admin_failure_fork_and_overview_pages(browser_page, web_engine):
    page, base = browser_page
    failed = start_workflow(wf.fails_in_a_step, 7)
    with pytest.raises(Exception, match="declined 7"):
        failed.result(timeout=20)
    chatty = start_workflow(wf.chatty, 4)
    wait_for(lambda: web_engine.get_event(chatty.workflow_id, "progress", timeout=0))
    wait_for(lambda: len(web_engine.list_steps(chatty.workflow_id)) >= 6, what="stream")
    web_engine.send(chatty.workflow_id, {"note": "hello"}, topic="other")
    wf.test_queue.enqueue(wf.adder, 1, 1, delay=600)

    page.goto(f"{base}/admin/django_durable/workflow/{failed.workflow_id}/change/")
    page.wait_for_selector("#durable-traceback")
    assert "card network down" in page.inner_text("#durable-traceback")
    shot(page, "failed")

    page.goto(f"{base}/admin/django_durable/workflow/{chatty.workflow_id}/change/")
    page.wait_for_selector("#durable-streams")
    assert "hello" in page.inner_text("#durable-messages")
    shot(page, "events-messages-streams")

    page.goto(f"{base}/admin/django_durable/workflow/{failed.workflow_id}/fork/")
    page.wait_for_selector("#id_start_step")
    page.select_option("#id_start_step", "1")
    shot(page, "fork-confirm")
    page.click("input[name=confirm]")
    page.wait_for_selector("ul.messagelist")
    assert "New workflow" in page.inner_text("ul.messagelist")
    shot(page, "forked")

    for name, expected in (
        ("queues", "django-tests"),
        ("executors", web_engine.executor_id),
        ("schedules", "nightly_report"),
    ):
        page.goto(f"{base}/admin/django_durable/workflow/{name}/")
        page.wait_for_selector(f"#durable-{name}")
        assert expected in page.inner_text(f"#durable-{name}")
        shot(page, name)


def test_admin_queues_pause_limit_and_resume(browser_page, web_engine):
    page, base = browser_page
    name = wf.test_queue.name
    wf.test_queue.enqueue(wf.adder, 1, 1, delay=600)
    page.goto(f"{base}/admin/django_durable/workflow/queues/")
    row = page.locator(f"tr.durable-queue[data-queue='{name}']")
    row.locator("input.durable-pause").click()
    page.wait_for_selector("ul.messagelist")
    assert f"Paused queue '{name}'" in page.inner_text("ul.messagelist")
    assert web_engine.get_queue(name).paused
    row = page.locator(f"tr.durable-queue[data-queue='{name}']")
    assert "paused" in row.inner_text()
    row.locator("input[name=concurrency]").fill("3")
    row.locator("input[name=rate_limit]").fill("20/1")
    row.locator("form.durable-limits input[type=submit]").click()
    page.wait_for_selector("ul.messagelist")
    assert (web_engine.get_queue(name).concurrency, web_engine.get_queue(name).rate_limit) == (
        3,
        (20, 1.0),
    )
    shot(page, "queues-managed")
    page.locator(f"tr.durable-queue[data-queue='{name}'] input.durable-resume").click()
    page.wait_for_selector("ul.messagelist")
    assert not web_engine.get_queue(name).paused
