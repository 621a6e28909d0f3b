"""The "Sync from GHL" button in a real Chromium, against the real gateway, webserver, job and Postgres.

A page served from ``http://localhost:<port>`` imports ``/client/ghl-sync.js`` from the gateway on
``http://127.0.0.1:<port>`` (another origin, so CORS is exercised), places ``<ghl-sync-button>`` and
shows a toast from its events. Behind the gateway: a real ``dagster-webserver`` on the repo's
workspace, running ``sync_ghl_calls`` against the GHL simulator on loopback and a real Postgres.
Three demo projects: Acme Roofing and Globex Solar sync; Initech HVAC's token is revoked in GHL.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from ghl_pipeline.gateway import GatewaySettings
from ghl_pipeline_tests.browser.harness import (
    chromium,
    open_dashboard,
    run_times,
    serve_gateway,
    serve_page,
    sync_run_ids,
)
from ghl_pipeline_tests.gateway.conftest import HS_SECRET, ISSUER, make_token
from ghl_pipeline_tests.webserver import REPO_ROOT, RUN_TIMEOUT, dagster_webserver

pytestmark = pytest.mark.slow

EVENT_TIMEOUT_MS = int(RUN_TIMEOUT * 1000)


class Stack:
    """Everything a test needs to drive the button and check what it did."""

    def __init__(
        self, *, browser: Any, page_origin: str, gateway: str, graphql: str, engine: sa.Engine, simulator
    ):
        self.browser = browser
        self.page_origin = page_origin
        self.gateway = gateway
        self.graphql = graphql
        self.engine = engine
        self.simulator = simulator

    def dashboard(self, **attributes: str) -> Any:
        page = open_dashboard(self.browser, self.page_origin, self.gateway, **attributes)
        page.evaluate("(token) => { window.__token = token; }", make_token())
        return page

    def rows(self, project: str | None = None) -> int:
        sql = "SELECT count(*) FROM all_calls" + (" WHERE project_name = :p" if project else "")
        with self.engine.connect() as conn:
            return conn.execute(sa.text(sql), {"p": project}).scalar_one()

    def runs(self) -> set[str]:
        return sync_run_ids(self.graphql)


@pytest.fixture(scope="module")
def stack(pg_admin_url, _schema_template, tmp_path_factory) -> Iterator[Stack]:
    from ghl_pipeline.ghl.simulator import GHLSimulator
    from ghl_pipeline.warehouse.db import get_engine
    from ghl_pipeline.warehouse.projects import add_project
    from ghl_pipeline_tests.conftest import _fresh_database

    databases = _fresh_database(pg_admin_url, _schema_template)
    db_url = next(databases)
    engine = get_engine(db_url)
    simulator = GHLSimulator.demo(busy_calls_per_day=120)
    for location in simulator.locations:
        add_project(engine, name=location.name, location_id=location.location_id, api_key=location.token)
    initech = next(loc for loc in simulator.locations if loc.name == "Initech HVAC")
    simulator.revoke_token(initech.location_id)  # its owner revoked the private integration token
    ghl = simulator.serve(host="127.0.0.1", port=0)
    env = {"DATABASE_URL": db_url, "GHL_API_BASE_URL": ghl.url}
    try:
        with (
            dagster_webserver(
                REPO_ROOT / "workspace.yaml",
                dagster_home=tmp_path_factory.mktemp("browser_home"),
                env={**os.environ, **env},
            ) as graphql,
            serve_page() as page_origin,
        ):
            settings = GatewaySettings(
                dagster_graphql_url=graphql,
                jwt_secret=HS_SECRET,
                jwt_issuer=ISSUER,
                cors_origins=(page_origin,),
                database_url=db_url,
            )
            with serve_gateway(settings) as gateway, chromium() as browser:
                yield Stack(
                    browser=browser,
                    page_origin=page_origin,
                    gateway=gateway,
                    graphql=graphql,
                    engine=engine,
                    simulator=simulator,
                )
    finally:
        ghl.stop()
        databases.close()


def _local_day(zone: str, days_ago: int = 0) -> str:
    return (datetime.now(UTC).astimezone(ZoneInfo(zone)).date() - timedelta(days=days_ago)).isoformat()


def _wait_for_event(page: Any) -> dict:
    page.wait_for_function("() => window.__events.length > 0", timeout=EVENT_TIMEOUT_MS)
    time.sleep(0.3)  # a second event, if the button (wrongly) fired one, would arrive by now
    events = page.evaluate("() => window.__events")
    assert len(events) == 1, events
    return events[0]


def test_click_syncs_and_toasts_the_new_records(stack):
    day = _local_day("America/Chicago", days_ago=1)  # a whole day of calls, whatever the hour
    page = stack.dashboard(date_from=day, date_to=day, project_name="Acme Roofing")
    button = page.locator("#sync button")
    assert button.text_content().strip() == "Sync from GHL" and button.is_enabled()
    rows_before, runs_before = stack.rows(), stack.runs()

    button.click()
    event = _wait_for_event(page)

    assert event["type"] == "ghl-sync-done", event
    result = event["detail"]
    gained = stack.rows() - rows_before
    assert gained > 0 and result["newRecords"] == gained
    assert result["status"] == "SUCCESS" and result["failedProjects"] == []
    assert set(result["projects"]) == {"Acme Roofing"}
    assert result["message"] == f"Synced {gained} new call records"
    assert page.locator("#toast").text_content() == f"Synced {gained} new call records"
    # While it ran: the spinner turned and the button was disabled; afterwards it is back.
    states = page.evaluate("() => window.__states")
    assert states[0] == {"syncing": True, "disabled": True, "label": "Syncing…", "spin": "ghl-sync-spin"}
    assert states[-1]["syncing"] is False and states[-1]["disabled"] is False
    assert button.is_enabled() and button.text_content().strip() == "Sync from GHL"
    # One run, and the toast followed the run's end without a polling lag.
    (run_id,) = stack.runs() - runs_before
    assert result["runId"] == run_id
    ended = run_times(stack.graphql, run_id)["endTime"]
    assert event["at"] / 1000 - ended < 1.5, event["at"] / 1000 - ended


def test_expired_token_asks_to_sign_in_and_launches_nothing(stack):
    today = _local_day("America/Chicago")
    page = stack.dashboard(date_from=today, date_to=today, project_name="Acme Roofing")
    page.evaluate("(token) => { window.__token = token; }", make_token(exp=int(time.time()) - 60))
    runs_before = stack.runs()

    page.locator("#sync button").click()
    event = _wait_for_event(page)

    assert event["type"] == "ghl-sync-error"
    assert event["detail"]["message"] == "Please sign in again" and event["detail"]["status"] == 401
    assert page.locator("#toast").text_content() == "Please sign in again"
    assert stack.runs() == runs_before
    assert page.locator("#sync button").is_enabled()


def test_signed_out_asks_to_sign_in_without_calling_the_gateway(stack):
    today = _local_day("America/Chicago")
    page = stack.dashboard(date_from=today, date_to=today, project_name="Acme Roofing")
    page.evaluate("() => { window.__token = null; }")  # getSession() found no session
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))

    page.locator("#sync button").click()
    event = _wait_for_event(page)

    assert event["type"] == "ghl-sync-error" and event["detail"]["message"] == "Please sign in again"
    assert not [url for url in requests if url.startswith(stack.gateway)]


def test_double_click_launches_one_run(stack):
    day = (datetime.now(UTC).date() - timedelta(days=2)).isoformat()
    page = stack.dashboard(date_from=day, date_to=day, project_name="Globex Solar")
    runs_before = stack.runs()

    page.locator("#sync button").dblclick()
    event = _wait_for_event(page)

    assert event["type"] == "ghl-sync-done", event
    new_runs = stack.runs() - runs_before
    assert new_runs == {event["detail"]["runId"]}
    assert page.evaluate("() => window.__clicks.length") == 1  # the second landed on a disabled button

    # Code that calls sync() twice (say, two handlers) also gets one run: the second call is a no-op.
    runs_before = stack.runs()
    second = page.evaluate(
        "async () => { const b = document.querySelector('#sync'); const first = b.sync();"
        " const second = await b.sync(); return { first: (await first).runId, second }; }"
    )
    assert second["second"] is None
    assert stack.runs() - runs_before == {second["first"]}


def test_unknown_project_shows_the_gateways_message(stack):
    today = _local_day("America/Chicago")
    page = stack.dashboard(date_from=today, date_to=today, project_name="Acme Rofing")
    runs_before = stack.runs()

    page.locator("#sync button").click()
    event = _wait_for_event(page)

    expected = "Unknown project: 'Acme Rofing' (did you mean 'Acme Roofing'?)"
    assert event["type"] == "ghl-sync-error"
    assert event["detail"] == {"message": expected, "status": 400, "field": "projectName", "result": None}
    assert page.locator("#toast").text_content() == expected
    assert stack.runs() == runs_before


UPGRADE_LATE = """async ({ gateway, token, day }) => {
  // As a React app renders it when the client module loads after the first render: the element is
  // created, given its attributes and its getAccessToken property while still a plain HTMLElement.
  const el = document.createElement("ghl-sync-button");
  for (const [name, value] of [["gateway-url", gateway], ["date-from", day], ["date-to", day],
                               ["project-name", "Acme Roofing"]]) el.setAttribute(name, value);
  el.getAccessToken = async () => token;
  document.body.append(el);
  const upgradedBefore = el.shadowRoot !== null;
  const outcome = new Promise((resolve) => {
    el.addEventListener("ghl-sync-done", (e) => resolve({ type: e.type, detail: e.detail }));
    el.addEventListener("ghl-sync-error", (e) => resolve({ type: e.type, detail: e.detail }));
  });
  await import(`${gateway}/client/ghl-sync.js`); // defines the element: it upgrades in place
  el.shadowRoot.querySelector("button").click();
  return { upgradedBefore, ...(await outcome) };
}"""


def test_element_upgraded_after_render_keeps_its_token_getter(stack):
    page = open_dashboard(stack.browser, stack.page_origin, stack.gateway, manual="1")
    day = _local_day("America/Chicago", days_ago=3)
    rows_before = stack.rows("Acme Roofing")

    answer = page.evaluate(UPGRADE_LATE, {"gateway": stack.gateway, "token": make_token(), "day": day})

    assert answer["upgradedBefore"] is False
    assert answer["type"] == "ghl-sync-done", answer
    assert answer["detail"]["newRecords"] == stack.rows("Acme Roofing") - rows_before > 0


def test_one_failed_project_of_three_gives_the_partial_message(stack):
    day = (datetime.now(UTC).date() - timedelta(days=1)).isoformat()
    page = stack.dashboard(date_from=day, date_to=day)  # every active project
    rows_before = stack.rows()

    page.locator("#sync button").click()
    event = _wait_for_event(page)

    assert event["type"] == "ghl-sync-done", event
    result = event["detail"]
    gained = stack.rows() - rows_before
    assert result["newRecords"] == gained and gained > 0
    assert set(result["projects"]) == {"Acme Roofing", "Globex Solar"}
    assert [f["name"] for f in result["failedProjects"]] == ["Initech HVAC"]
    assert result["failedProjects"][0]["kind"] == "auth"
    reason = result["failedProjects"][0]["reason"]
    assert "token" in reason  # the run side's words for a person, e.g. "GHL token revoked or invalid"
    expected = f"Synced {gained} new call records; 1 project failed: Initech HVAC — {reason}"
    assert result["message"] == expected
    assert page.locator("#toast").text_content() == expected
    assert "sync_ghl_calls" not in expected
