"""Click → `ghl-sync-done` of the "Sync from GHL" button in Chromium, beside a no-op run via the same gateway.

Starts the embedded Postgres (or uses DATABASE_URL), the GHL simulator on loopback (one project with
at least --calls calls "today" in its zone), a real dagster-webserver on the repo's workspace.yaml
(DefaultRunCoordinator, in-process executor), the gateway under uvicorn, the dashboard stand-in page
on another origin and Debian's Chromium (Playwright). Each round, interleaved so machine noise hits
both alike:

- button: a real click on `<ghl-sync-button>` (project, today) until its `ghl-sync-done` event;
- no-op: the same page launches the `health_check` job through the same gateway (a benchmark-only
  route on the gateway app, not shipped) and waits with the same long poll.

It prints medians, the button / no-op ratio (target ≤ 1.3x) and, for both, the part after the run's
end: from Dagster's recorded `endTime` to the moment the page had the answer (target ≤ 300 ms).

    .venv/bin/python benchmarks/bench_button.py [--rounds 7] [--calls 200]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]

from bench_dashboard_latency import _simulator_with_calls_today  # noqa: E402

from ghl_pipeline.gateway import GatewaySettings  # noqa: E402
from ghl_pipeline.gateway.dagster import TERMINAL_STATUSES  # noqa: E402
from ghl_pipeline.warehouse.db import database_url, get_engine  # noqa: E402
from ghl_pipeline.warehouse.projects import add_project  # noqa: E402
from ghl_pipeline.warehouse.schema import upgrade  # noqa: E402
from ghl_pipeline_tests.browser.harness import (  # noqa: E402
    chromium,
    open_dashboard,
    run_times,
    serve_gateway,
    serve_page,
)
from ghl_pipeline_tests.webserver import dagster_webserver  # noqa: E402

SECRET = "bench-button-hs256-secret-0123456789abcdef"
LAUNCH_NOOP = """
mutation($p: ExecutionParams!) { launchRun(executionParams: $p) {
  __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }"""
NOOP_STATUS = "query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }"

# In the page: a real click, then wait for the button's event (timestamps from the page's clock).
CLICK_RESULT = """() => { window.__next = new Promise((resolve) => {
  const b = document.querySelector('#sync');
  b.addEventListener('ghl-sync-done', (e) => resolve({ at: Date.now(), runId: e.detail.runId,
    newRecords: e.detail.newRecords }), { once: true });
  b.addEventListener('ghl-sync-error', (e) => resolve({ error: e.detail.message }), { once: true });
}); }"""
# In the page: the no-op through the gateway's bench route, waited for with the same long poll.
NOOP_IN_PAGE = """async (gateway) => {
  const started = Date.now();
  const { runId } = await (await fetch(`${gateway}/bench/noop`, { method: 'POST' })).json();
  for (;;) {
    const run = await (await fetch(`${gateway}/bench/noop/${runId}?wait=25`)).json();
    if (run.done) return { started, at: Date.now(), runId, status: run.status };
  }
}"""


def _noop_routes(graphql: str, poll_seconds: float) -> list[Route]:
    """Benchmark-only gateway routes: launch `health_check`, and long-poll it like `GET /sync/{runId}`."""
    client = httpx.AsyncClient(timeout=30)

    async def launch(request: Request) -> JSONResponse:
        params = {
            "selector": {
                "repositoryLocationName": "ghl_pipeline",
                "repositoryName": "__repository__",
                "jobName": "health_check",
            },
            "runConfigData": {},
        }
        answer = (await client.post(graphql, json={"query": LAUNCH_NOOP, "variables": {"p": params}})).json()
        return JSONResponse({"runId": answer["data"]["launchRun"]["run"]["runId"]}, status_code=202)

    async def status(request: Request) -> JSONResponse:
        deadline = time.monotonic() + float(request.query_params.get("wait", "0"))
        while True:
            variables = {"id": request.path_params["run_id"]}
            answer = await client.post(graphql, json={"query": NOOP_STATUS, "variables": variables})
            run_status = answer.json()["data"]["runOrError"]["status"]
            if run_status in TERMINAL_STATUSES or time.monotonic() >= deadline:
                return JSONResponse({"status": run_status, "done": run_status in TERMINAL_STATUSES})
            await asyncio.sleep(poll_seconds)

    return [Route("/bench/noop", launch, methods=["POST"]), Route("/bench/noop/{run_id}", status)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=200, help="calls the project has today (at least)")
    args = parser.parse_args()

    import jwt

    url = database_url()
    engine = get_engine(url)
    upgrade(engine)
    simulator, project = _simulator_with_calls_today(args.calls)
    add_project(
        engine,
        name=project.name,
        location_id=project.location_id,
        api_key=project.token,
        timezone=project.timezone,
    )
    ghl = simulator.serve()
    today = datetime.now(UTC).astimezone(ZoneInfo(project.timezone)).date().isoformat()
    now = int(time.time())
    token = jwt.encode(
        {"sub": "bench", "aud": "authenticated", "role": "authenticated", "iat": now, "exp": now + 7200},
        SECRET,
        algorithm="HS256",
    )
    env = {**os.environ, "DATABASE_URL": url, "GHL_API_BASE_URL": ghl.url}
    home = Path(tempfile.mkdtemp(prefix="bench_button_"))
    button, noop, button_after, noop_after = [], [], [], []
    button_launch, button_run, noop_run = [], [], []  # click → POST /sync answered; run start → end
    try:
        with (
            dagster_webserver(REPO / "workspace.yaml", dagster_home=home, env=env) as graphql,
            serve_page() as origin,
        ):
            settings = GatewaySettings(
                dagster_graphql_url=graphql, jwt_secret=SECRET, cors_origins=(origin,), database_url=url
            )
            routes = _noop_routes(graphql, settings.status_poll_seconds)
            with serve_gateway(settings, extra_routes=routes) as gateway, chromium() as browser:
                page = open_dashboard(
                    browser, origin, gateway, date_from=today, date_to=today, project_name=project.name
                )
                page.evaluate("(token) => { window.__token = token; }", token)

                launched_at: list[float] = []
                page.on(
                    "response",
                    lambda r: (
                        launched_at.append(time.time())
                        if r.request.method == "POST" and r.url.endswith("/sync")
                        else None
                    ),
                )

                def click_once() -> tuple[float, float]:
                    page.evaluate(CLICK_RESULT)
                    clicks = page.evaluate("() => window.__clicks.length")
                    page.locator("#sync button").click()
                    result = page.evaluate("() => window.__next")
                    if "error" in result:
                        raise SystemExit(f"the button failed: {result['error']}")
                    clicked = page.evaluate("(n) => window.__clicks[n]", clicks)
                    times = run_times(graphql, result["runId"])
                    button_launch.append(launched_at[-1] - clicked / 1000)
                    button_run.append(times["endTime"] - times["startTime"])
                    return (result["at"] - clicked) / 1000, result["at"] / 1000 - times["endTime"]

                def noop_once() -> tuple[float, float]:
                    result = page.evaluate(NOOP_IN_PAGE, gateway)
                    if result["status"] != "SUCCESS":
                        raise SystemExit(f"health_check ended {result['status']}")
                    times = run_times(graphql, result["runId"])
                    noop_run.append(times["endTime"] - times["startTime"])
                    return (
                        (result["at"] - result["started"]) / 1000,
                        result["at"] / 1000 - times["endTime"],
                    )

                noop_once()  # warm-up: the code server's first run loads everything
                click_once()
                del button_launch[:], button_run[:], noop_run[:]
                for _ in range(args.rounds):
                    total, after = noop_once()
                    noop.append(total)
                    noop_after.append(after)
                    total, after = click_once()
                    button.append(total)
                    button_after.append(after)
    finally:
        ghl.stop()

    def ms(values: list[float]) -> str:
        return f"median {statistics.median(values) * 1000:.0f} ms (min {min(values) * 1000:.0f}, max {max(values) * 1000:.0f})"

    b, n = statistics.median(button), statistics.median(noop)
    print(f"rounds: {args.rounds}; button: '{project.name}' today ({today}), re-synced each round")
    print(
        f"no-op (health_check) via the gateway, launch → answer in the page: median {n:.2f} s (min {min(noop):.2f}, max {max(noop):.2f})"
    )
    print(
        f"button click → ghl-sync-done:                                  median {b:.2f} s (min {min(button):.2f}, max {max(button):.2f})"
    )
    print(f"button / no-op: {b / n:.2f}x (target ≤ 1.3x)")
    print(
        f"inside the button's time: click → POST /sync answered {ms(button_launch)}; "
        f"Dagster run start → end: sync {ms(button_run)}, no-op {ms(noop_run)}"
    )
    print(
        f"after the run's end (Dagster endTime → answer in the page): button {ms(button_after)}; no-op {ms(noop_after)} (target ≤ 300 ms)"
    )


if __name__ == "__main__":
    main()
