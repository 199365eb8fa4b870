"""The FastAPI dashboard in a real browser (Debian's chromium driven by Playwright), at 1280 px,
on SQLite and PostgreSQL: one app under uvicorn per backend, seeded once with the workflows of
``dashboard_app`` and a backlog of 10,000 enqueued workflows, shared by every test here.

Every view is screenshotted to ``$DURABLE_ARTIFACTS_DIR`` (CI's artifacts folder; default a
``durable-artifacts`` folder in the system's temporary directory), never into the repository.
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import drop_postgres_schema, make_postgres_url
from tests.waiting import wait_for

from . import dashboard_app as demo
from .test_streams import serving

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(
    os.environ.get("DURABLE_ARTIFACTS_DIR") or Path(tempfile.gettempdir()) / "durable-artifacts"
)
BACKLOG = 10_000
WIDTH = 1280

if not os.path.exists(CHROMIUM):
    pytest.skip(f"{CHROMIUM} is missing (apt-get install -y chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
expect = sync_api.expect


class Site:
    def __init__(self, backend: str, url: str, durable: demo.Durable, browser) -> None:
        self.backend = backend
        self.url = url
        self.durable = durable
        self.browser = browser
        self.ids: dict[str, str] = {}

    @property
    def engine(self):
        return self.durable.engine

    def page(self):
        context = self.browser.new_context(
            viewport={"width": WIDTH, "height": 900},
            http_credentials={"username": demo.USER, "password": demo.PASSWORD},
        )
        page = context.new_page()
        page.set_default_timeout(20_000)
        return page

    def open(self, fragment: str = "#/workflows"):
        page = self.page()
        page.goto(f"{self.url}/durable/dashboard{fragment}")
        return page

    def shot(self, page, name: str) -> None:
        # Usable at 1280 px: nothing wider than the window (no sideways scrolling).
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= WIDTH, f"{name} is {width} px wide at a {WIDTH} px window"
        page.screenshot(
            path=str(ARTIFACTS / f"fastapi-dashboard-{name}-{self.backend}.png"), full_page=True
        )


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def site(request, tmp_path_factory):
    backend = request.param
    schema = None
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('dash') / 'durable.sqlite3'}"
    else:
        url, schema = make_postgres_url()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    app, durable = demo.make_app(url)
    try:
        with serving(app) as (base, _server), sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"]
            )
            site = Site(backend, base, durable, browser)
            engine = durable.engine
            demo.backfill.enqueue_many(demo.backfill_item, [(i,) for i in range(BACKLOG)])
            order = engine.start_workflow(demo.order, 5, workflow_id="order-5")
            payment = engine.start_workflow(demo.payment, 7, workflow_id="payment-7")
            order.result(timeout=30)
            with pytest.raises(Exception, match="payment gateway refused"):
                payment.result(timeout=30)
            nap = engine.start_workflow(demo.nap, 3600, workflow_id="nap-1")
            wait_for(lambda: len(engine.list_steps(nap.workflow_id)) == 2, 30, "the nap")
            site.ids.update(order="order-5", payment="payment-7", nap="nap-1")
            try:
                yield site
            finally:
                browser.close()
    finally:
        if schema:
            drop_postgres_schema(schema)


def waiting_approval(site: Site, workflow_id: str) -> str:
    engine = site.engine
    engine.start_workflow(demo.approval, workflow_id, workflow_id=workflow_id)
    wait_for(
        lambda: any(s.name == "durable.set_event" for s in engine.list_steps(workflow_id)),
        30,
        "the approval to wait",
    )
    return workflow_id


def rows(page) -> list[str]:
    return page.locator("#workflows tbody tr[data-id]").evaluate_all(
        "trs => trs.map(tr => tr.dataset.id)"
    )


def apply(page) -> None:
    """Click Apply and wait for the list it loads (not the one already shown)."""
    loads = int(page.locator("#workflows").get_attribute("data-loads") or 0)
    page.get_by_role("button", name="Apply").click()
    page.locator(f"#workflows[data-loads='{loads + 1}']").wait_for()


def test_list_filters_narrow_rows_and_id_search_opens_a_workflow(site):
    page = site.open()
    page.locator("#workflows tbody tr[data-id]").first.wait_for()
    total = site.engine.count_workflows()
    assert total > BACKLOG
    assert page.locator("#p-info").inner_text() == f"1–50 of {total:,}"
    site.shot(page, "workflows")

    # Status: only the failed payment.
    page.locator("#f-status input[value=ERROR]").check()
    apply(page)
    expect(page.locator("#p-info")).to_have_text("1–1 of 1")
    assert rows(page) == [site.ids["payment"]]
    assert "ERROR" in page.locator("#workflows tbody").inner_text()
    site.shot(page, "workflows-filtered")

    # Name and a time range (the last hour: everything here) narrow to the order and its child.
    page.locator("#f-status input[value=ERROR]").uncheck()
    page.select_option("#f-name", "dash.order")
    page.select_option("#f-range", "3600")
    apply(page)
    expect(page.locator("#p-info")).to_have_text("1–1 of 1")
    assert rows(page) == [site.ids["order"]]
    # A time range in the past matches nothing.
    page.goto(f"{site.url}/durable/dashboard#/workflows?created_before=2001-01-01T00:00:00Z")
    page.get_by_text("No workflow matches these filters.").wait_for()

    # Search by ID opens the workflow page; an unknown ID says so.
    page.goto(f"{site.url}/durable/dashboard#/workflows")
    page.fill("#f-id", "no-such-workflow")
    page.get_by_role("button", name="Apply").click()
    page.get_by_text("No workflow has the ID no-such-workflow.").wait_for()
    page.fill("#f-id", site.ids["nap"])
    page.get_by_role("button", name="Apply").click()
    page.locator("#wf-title", has_text="dash.nap").wait_for()


def test_workflow_page_timeline_events_streams_child_and_traceback(site):
    page = site.open("#/workflow/" + site.ids["order"])
    steps = page.locator("#steps tr.step")
    steps.first.wait_for()
    names = steps.locator(".step-name").all_inner_texts()
    assert sum("dashboard_app.fetch" in n for n in names) == 2
    assert any("dash.child" in n for n in names)
    assert "SUCCESS" in page.locator("#wf-status").inner_text()
    assert "progress" in page.locator("#events").inner_text()
    assert "3 value(s) · closed" not in page.locator("#streams").inner_text()
    assert "2 value(s) · closed" in page.locator("#streams").inner_text()
    assert "calling the child" in page.locator("#streams").inner_text()
    assert "dash.child" in page.locator("#children").inner_text()
    # Durations: the fetch step sleeps 20 ms.
    fetch_duration = steps.nth(0).locator("td:nth-child(4)").inner_text()
    assert fetch_duration.endswith("ms") and int(fetch_duration.split()[0]) >= 20
    site.shot(page, "workflow")

    page.goto(f"{site.url}/durable/dashboard#/workflow/{site.ids['payment']}")
    page.locator("#wf-error").wait_for()
    assert "StepRetriesExceeded" in page.locator("#wf-error").inner_text()
    assert (
        "ConnectionError: payment gateway refused 7" in page.locator("#wf-error pre").inner_text()
    )
    failed = page.locator("#steps tr.step").nth(1)
    assert "3 attempt(s)" in failed.inner_text()
    assert page.get_by_role("button", name="Resume").is_visible()
    assert not page.get_by_role("button", name="Cancel").is_visible()
    site.shot(page, "workflow-failed")

    page.goto(f"{site.url}/durable/dashboard#/workflow/{site.ids['nap']}")
    page.locator("#wf-waiting").wait_for()
    assert "Waiting for sleep until" in page.locator("#wf-waiting").inner_text()
    assert "in 59m" in page.locator("#wf-waiting").inner_text()


def test_cancel_button_cancels_after_confirmation(site):
    workflow_id = waiting_approval(site, "approval-cancel")
    page = site.open("#/workflow/" + workflow_id)
    page.locator("#wf-waiting", has_text="a message on topic 'approve'").wait_for()
    assert "until" in page.locator("#wf-waiting").inner_text()
    site.shot(page, "workflow-waiting")
    page.get_by_role("button", name="Cancel").click()
    page.locator("#confirm[open]").wait_for()
    site.shot(page, "cancel-confirm")
    # "Keep as it is" changes nothing.
    page.get_by_role("button", name="Keep as it is").click()
    assert site.engine.get_workflow_status(workflow_id).status == "PENDING"
    page.get_by_role("button", name="Cancel").click()
    page.get_by_role("button", name="Confirm").click()
    page.locator("#wf-status", has_text="CANCELLED").wait_for()
    assert site.engine.get_workflow_status(workflow_id).status == "CANCELLED"
    # And Resume puts it back on its way.
    page.get_by_role("button", name="Resume").click()
    page.get_by_role("button", name="Confirm").click()
    expect(page.locator("#flash")).to_have_text(re.compile(r"is now (ENQUEUED|PENDING)\.$"))
    assert site.engine.get_workflow_status(workflow_id).status != "CANCELLED"


def test_fork_from_a_step_runs_a_new_workflow(site):
    page = site.open("#/workflow/" + site.ids["order"])
    page.locator("#steps tr.step").first.wait_for()
    page.locator("#steps tr.step[data-step='2']").get_by_role("button", name="Fork here").click()
    page.locator("#confirm[open]").wait_for()
    assert page.input_value("#fork-step") == "2"
    page.fill("#fork-id", "order-5-forked")
    site.shot(page, "fork-confirm")
    page.get_by_role("button", name="Confirm").click()
    page.locator("#wf-facts", has_text="order-5-forked").wait_for()
    result = site.engine.retrieve_workflow("order-5-forked").result(timeout=30)
    assert result == site.engine.retrieve_workflow("order-5").result(timeout=5)
    steps = site.engine.list_steps("order-5-forked")
    assert steps[0].started_at == site.engine.list_steps("order-5")[0].started_at  # copied


# One page further, in the page itself: click "Older" and wait for the list it loads (an
# observer of the table's load counter, no polling); returns the page's own fetch-and-render
# time and whether "Older" is still enabled. One round trip per page instead of five.
NEXT_PAGE = """async () => {
  const table = document.getElementById("workflows"), next = document.getElementById("p-next");
  const loads = Number(table.dataset.loads);
  const loaded = new Promise((resolve, reject) => {
    new MutationObserver((_, observer) => {
      if (Number(table.dataset.loads) > loads) { observer.disconnect(); resolve(); }
    }).observe(table, { attributes: true, attributeFilter: ["data-loads"] });
    setTimeout(() => reject(new Error(`page ${loads + 1} did not load in 20 s`)), 20000);
  });
  next.click();
  await loaded;
  return [Number(table.dataset.loadMs), !next.disabled];
}"""


def test_pagination_reaches_row_10000(site):
    page = site.open("#/workflows?queue=dash_backfill&status=ENQUEUED&limit=200")
    expect(page.locator("#p-info")).to_have_text(f"1–200 of {BACKLOG:,}")
    began = time.monotonic()
    pages, slowest, more = 1, 0.0, page.locator("#p-next").is_enabled()
    while more:
        load_ms, more = page.evaluate(NEXT_PAGE)
        slowest = max(slowest, load_ms)
        pages += 1
    elapsed = time.monotonic() - began
    assert page.locator("#p-info").inner_text() == f"9,801–10,000 of {BACKLOG:,}"
    assert pages == BACKLOG // 200
    # The oldest enqueued item is the last row of the last page (items enqueued in one
    # millisecond are ordered by ID, so it need not be item 0).
    last = page.locator("#workflows tbody tr[data-id]").last.get_attribute("data-id")
    [oldest] = site.engine.list_workflows(queue="dash_backfill", newest_first=False, limit=1)
    assert last == oldest.workflow_id
    # Generous bounds (a loaded CI machine): the page's own fetch and render of a deep page,
    # and the whole walk. Measured: 20-80 ms per page in the page.
    assert slowest < 3000, f"the slowest page took {slowest:.0f} ms to fetch and render"
    assert elapsed < 120, f"{pages} pages took {elapsed:.1f} s"
    site.shot(page, "workflows-page-50")
    # Back towards the newest, a page at a time.
    page.locator("#p-prev").click()
    expect(page.locator("#p-info")).to_have_text(f"9,601–9,800 of {BACKLOG:,}")


def test_live_refresh_shows_a_new_workflow_without_reload(site):
    page = site.open()
    page.locator("#live.on").wait_for()
    page.locator("#workflows tbody tr[data-id]").first.wait_for()
    page.evaluate("window.notReloaded = true")
    handle = site.engine.start_workflow(demo.child, 41, workflow_id="live-new-1")
    page.locator("#workflows tbody tr[data-id='live-new-1']").wait_for(timeout=20_000)
    assert page.evaluate("window.notReloaded") is True
    handle.result(timeout=30)
    page.locator("#workflows tbody tr[data-id='live-new-1']", has_text="SUCCESS").wait_for()


def test_queues_executors_and_schedules_views(site):
    page = site.open("#/queues")
    backlog = page.locator("#queues tr[data-queue=dash_backfill]")
    backlog.wait_for()
    assert f"{BACKLOG:,}" in backlog.inner_text()
    orders = page.locator("#queues tr[data-queue=dash_orders]")
    served = orders.inner_text()
    assert "50 per 1 s" in served and "\t4\t" in served and "\t2\t" in served
    site.shot(page, "queues")

    # The run-time controls: pause (confirmed), resume, and limits stored for the fleet.
    orders.get_by_role("button", name="Pause").click()
    page.locator("#confirm[open]").wait_for()
    page.get_by_role("button", name="Confirm").click()
    orders.locator(".badge", has_text="paused").wait_for()
    assert site.engine.get_queue("dash_orders").paused
    site.shot(page, "queues-paused")
    orders.get_by_role("button", name="Resume").click()
    page.get_by_role("button", name="Confirm").click()
    orders.get_by_role("button", name="Pause").wait_for()
    assert not site.engine.get_queue("dash_orders").paused
    orders.get_by_role("button", name="Limits…").click()
    page.locator("#confirm-limits").wait_for()
    assert page.input_value("#limit-concurrency") == "4"
    page.fill("#limit-concurrency", "3")
    site.shot(page, "queue-limits")
    page.get_by_role("button", name="Confirm").click()
    expect(orders.locator(".muted", has_text="overridden")).to_have_text("overridden: concurrency")
    queue = site.engine.get_queue("dash_orders")
    assert (queue.concurrency, queue.worker_concurrency, queue.rate_limit) == (3, 2, (50, 1.0))
    site.engine.reset_queue("dash_orders")

    page.goto(f"{site.url}/durable/dashboard#/executors")
    mine = page.locator(f"#executors tr[data-executor='{site.engine.executor_id}']")
    mine.wait_for()
    assert "live" in mine.inner_text() and "this process" in mine.inner_text()
    site.shot(page, "executors")

    page.goto(f"{site.url}/durable/dashboard#/schedules")
    nightly = page.locator("#schedules tbody tr", has_text="dash.nightly")
    nightly.wait_for()
    assert "0 3 * * *" in nightly.inner_text() and "never ran" in nightly.inner_text()
    site.shot(page, "schedules")


def test_browser_posts_need_the_dashboards_header(site):
    """A cross-site form riding on the browser's basic-auth credentials cannot cancel."""
    workflow_id = waiting_approval(site, "approval-csrf")
    page = site.open()
    forged = page.request.post(
        f"{site.url}/durable/workflows/{workflow_id}/cancel",
        headers={"Origin": "https://evil.example", "Content-Type": "text/plain"},
    )
    assert forged.status == 403
    assert "X-Durable-Action" in forged.text()
    assert site.engine.get_workflow_status(workflow_id).status == "PENDING"
    # Without credentials nothing is served at all.
    anonymous = httpx.get(f"{site.url}/durable/dashboard")
    assert anonymous.status_code == 401
    site.engine.cancel_workflow(workflow_id)


def test_schedule_controls_create_pause_trigger_backfill_edit_delete(site):
    """Schedules managed from the dashboard through the router's /schedules endpoints, each
    action behind the confirmation (and the X-Durable-Action header the router asks of a
    browser). One page, no reload: the whole walk costs a few seconds."""
    from durable_core.errors import ScheduleNotFound

    engine = site.engine
    page = site.open("#/schedules")
    page.get_by_role("button", name="New schedule…").click()
    page.locator("#confirm-schedule").wait_for()
    page.fill("#sched-id", "dash-hourly")
    page.select_option("#sched-workflow", "dash.report")
    page.fill("#sched-cron", "0 * * * *")
    page.fill("#sched-kwargs", '{"title": "hourly"}')
    site.shot(page, "schedule-new")
    page.get_by_role("button", name="Confirm").click()
    row = page.locator("#schedules tr[data-schedule='dash-hourly']")
    row.wait_for()
    created = engine.get_schedule("dash-hourly")
    assert (created.workflow_name, created.cron, created.kwargs) == (
        "dash.report",
        "0 * * * *",
        {"title": "hourly"},
    )
    assert "created at run time" in row.inner_text()
    # The @scheduled workflow no scheduler recorded (the app runs none) is listed beside it.
    expect(page.locator("#schedules tr[data-schedule='dash.nightly']")).to_contain_text(
        "not recorded yet"
    )
    site.shot(page, "schedules-managed")

    row.get_by_role("button", name="Pause").click()
    page.get_by_role("button", name="Confirm").click()
    row.locator(".badge", has_text="paused").wait_for()
    assert engine.get_schedule("dash-hourly").paused
    row.get_by_role("button", name="Resume").click()
    page.get_by_role("button", name="Confirm").click()
    row.get_by_role("button", name="Pause").wait_for()
    assert not engine.get_schedule("dash-hourly").paused

    row.get_by_role("button", name="Trigger now").click()
    page.get_by_role("button", name="Confirm").click()
    flashed = page.locator("#flash")
    expect(flashed).to_have_text(re.compile(r"^Started sched:dash-hourly:trigger:\w+ from"))
    triggered = flashed.inner_text().split()[1]
    assert engine.get_workflow_status(triggered).name == "dash.report"

    # Backfill three hours (local times in the form; the cron ticks on the hour).
    row.get_by_role("button", name="Backfill…").click()
    page.locator("#confirm-backfill").wait_for()
    page.fill("#backfill-start", "2026-01-01T00:00:00")
    page.fill("#backfill-end", "2026-01-01T03:00:00")
    site.shot(page, "schedule-backfill")
    page.get_by_role("button", name="Confirm").click()
    expect(flashed).to_have_text(re.compile(r"3 tick\(s\) in the range, 3 run\(s\) started now"))
    runs = engine.list_workflows(name="dash.report", limit=100)
    backfilled = [w for w in runs if ":trigger:" not in w.workflow_id]
    assert len(backfilled) == 3

    row.get_by_role("button", name="Edit…").click()
    assert page.input_value("#sched-cron") == "0 * * * *"
    assert page.locator("#sched-id").is_disabled()
    page.fill("#sched-cron", "30 * * * *")
    page.get_by_role("button", name="Confirm").click()
    expect(row.locator("td:nth-child(3)")).to_contain_text("30 * * * *")
    assert engine.get_schedule("dash-hourly").cron == "30 * * * *"
    assert engine.get_schedule("dash-hourly").kwargs == {"title": "hourly"}  # untouched

    row.get_by_role("button", name="Delete").click()
    page.get_by_role("button", name="Keep as it is").click()
    assert engine.get_schedule("dash-hourly")  # kept
    row.get_by_role("button", name="Delete").click()
    page.get_by_role("button", name="Confirm").click()
    expect(row).to_have_count(0)
    with pytest.raises(ScheduleNotFound):
        engine.get_schedule("dash-hourly")
