"""How long the dashboard waits: a `sync_ghl_calls` run launched over GraphQL, from launch to SUCCESS.

Starts the embedded Postgres (or uses DATABASE_URL), the GHL simulator on loopback and a real
dagster-webserver on the repo's workspace.yaml, with the instance settings the README recommends
(DefaultRunCoordinator, in-process executor). In the same run it times the `health_check` job (a run
that does almost nothing) as the baseline: Dagster's own overhead on this machine.

    .venv/bin/python benchmarks/bench_dashboard_latency.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx

from ghl_pipeline.ghl.simulator import GHLSimulator, SimLocation
from ghl_pipeline.warehouse.db import database_url, get_engine
from ghl_pipeline.warehouse.projects import add_project
from ghl_pipeline.warehouse.schema import upgrade

REPO = Path(__file__).resolve().parents[1]
INSTANCE_YAML = """\
run_coordinator:
  module: dagster._core.run_coordinator.default_run_coordinator
  class: DefaultRunCoordinator
telemetry:
  enabled: false
"""
LAUNCH = """
mutation($p: ExecutionParams!) { launchRun(executionParams: $p) {
  __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }"""
STATUS = "query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _timed_run(url: str, job: str, run_config: dict) -> float:
    params = {
        "selector": {
            "repositoryLocationName": "ghl_pipeline",
            "repositoryName": "__repository__",
            "jobName": job,
        },
        "runConfigData": run_config,
    }
    started = time.perf_counter()
    answer = httpx.post(url, json={"query": LAUNCH, "variables": {"p": params}}, timeout=30).json()
    launched = answer["data"]["launchRun"]
    if launched["__typename"] != "LaunchRunSuccess":
        raise SystemExit(f"launch failed: {launched}")
    run_id = launched["run"]["runId"]
    while True:
        status = httpx.post(url, json={"query": STATUS, "variables": {"id": run_id}}, timeout=30).json()
        status = status["data"]["runOrError"]["status"]
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            if status != "SUCCESS":
                raise SystemExit(f"{job} run {run_id} ended {status}")
            return time.perf_counter() - started
        time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=200, help="calls the project has today (at least)")
    args = parser.parse_args()

    url = database_url()
    engine = get_engine(url)
    upgrade(engine)
    simulator, acme = _simulator_with_calls_today(args.calls)
    add_project(
        engine, name=acme.name, location_id=acme.location_id, api_key=acme.token, timezone=acme.timezone
    )
    server = simulator.serve()
    today = datetime.now(UTC).astimezone(ZoneInfo(acme.timezone)).date().isoformat()
    sync_config = {
        "ops": {"sync_calls": {"config": {"date_from": today, "date_to": today, "project_name": acme.name}}}
    }

    home = Path(tempfile.mkdtemp(prefix="bench_latency_"))
    (home / "dagster.yaml").write_text(INSTANCE_YAML)
    port = _free_port()
    env = {**os.environ, "DAGSTER_HOME": str(home), "DATABASE_URL": url, "GHL_API_BASE_URL": server.url}
    webserver = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("dagster-webserver")),
            "-w",
            "workspace.yaml",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    graphql = f"http://127.0.0.1:{port}/graphql"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/server_info", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("dagster-webserver did not start")
            time.sleep(0.5)
        _timed_run(graphql, "health_check", {})  # warm-up: the code server's first run loads everything
        _timed_run(graphql, "sync_ghl_calls", sync_config)
        baseline, sync = [], []
        for _ in range(args.rounds):  # interleaved, so machine noise hits both alike
            baseline.append(_timed_run(graphql, "health_check", {}))
            sync.append(_timed_run(graphql, "sync_ghl_calls", sync_config))
    finally:
        os.killpg(webserver.pid, signal.SIGTERM)
        webserver.wait(timeout=30)
        server.stop()

    calls = len(simulator.ground_truth(acme.location_id, *_today_window(acme.timezone)))
    b, s = statistics.median(baseline), statistics.median(sync)
    print(f"rounds: {args.rounds}; sync of today for one project: {calls} calls (re-synced each round)")
    print(
        f"health_check (no-op) launch→SUCCESS: median {b:.2f} s  (min {min(baseline):.2f}, max {max(baseline):.2f})"
    )
    print(
        f"sync_ghl_calls       launch→SUCCESS: median {s:.2f} s  (min {min(sync):.2f}, max {max(sync):.2f})"
    )
    print(f"sync / no-op: {s / b:.2f}x")


def _simulator_with_calls_today(calls: int) -> tuple[GHLSimulator, SimLocation]:
    """A one-location simulator whose local "today" so far holds at least ``calls`` calls."""
    tz = "America/Chicago"
    per_day = calls
    while True:
        location = SimLocation(
            location_id="latencyBenchLoc0001",
            token="pit-latency-bench",
            name="Latency Bench",
            timezone=tz,
            calls_per_day=per_day,
            contacts=max(200, calls),
        )
        simulator = GHLSimulator([location])
        if len(simulator.ground_truth(location.location_id, *_today_window(tz))) >= calls:
            return simulator, location
        per_day = int(per_day * 1.25) + 10  # early in the local day: more calls per day, same count so far


def _today_window(tz: str):
    from ghl_pipeline.windows import local_days_window

    today = datetime.now(UTC).astimezone(ZoneInfo(tz)).date()
    return local_days_window(today, today, tz)


if __name__ == "__main__":
    main()
