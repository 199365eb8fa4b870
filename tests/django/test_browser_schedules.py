"""The admin's schedule management in a real browser (issue 14): add a schedule through the
form, see it listed, run it now with the action, backfill it from its page."""

from __future__ import annotations

from tests.django.test_browser import browser_page, shot  # noqa: F401  (the fixture)
from tests.django.testapp import workflows as wf

NIGHTLY = wf.nightly_report.__durable_workflow__.name


def test_admin_add_schedule_run_now_and_backfill(browser_page, web_engine):  # noqa: F811
    page, base = browser_page
    page.goto(f"{base}/admin/django_durable/schedule/add/")
    page.fill("#id_schedule_id", "browser-weekly")
    page.fill("#id_workflow_name", NIGHTLY)
    page.fill("#id_cron", "0 6 * * 1")
    page.fill("#id_timezone", "Europe/Paris")
    page.select_option("#id_overlap", "allow")
    shot(page, "schedule-add")
    page.click("input[name=_save]")
    page.wait_for_selector("#changelist")
    assert "browser-weekly" in page.inner_text("#result_list")
    assert web_engine.get_schedule("browser-weekly").timezone == "Europe/Paris"

    page.check("input[name=_selected_action][value=browser-weekly]")
    page.select_option("select[name=action]", "trigger_schedules")
    page.click("button[name=index]")
    page.wait_for_selector("ul.messagelist")
    assert "Started sched:browser-weekly:trigger:" in page.inner_text("ul.messagelist")
    shot(page, "schedule-run-now")

    page.goto(f"{base}/admin/django_durable/schedule/browser-weekly/change/")
    page.click("text=Backfill…")
    page.fill("#id_start", "2026-01-01 00:00")
    page.fill("#id_end", "2026-01-15 00:00")
    page.click("input[type=submit][value=Backfill]")
    page.wait_for_selector("ul.messagelist")
    assert "2 tick(s), 2 new run(s)" in page.inner_text("ul.messagelist")
    shot(page, "schedule-backfilled")

    page.goto(f"{base}/admin/django_durable/workflow/schedules/")
    page.wait_for_selector("#durable-schedules")
    assert "browser-weekly" in page.inner_text("#durable-schedules")
