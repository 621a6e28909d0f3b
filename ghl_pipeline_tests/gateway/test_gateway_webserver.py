"""The gateway against a real ``dagster-webserver`` loading the repo's workspace.yaml (slow).

Needs ``ghl_pipeline.definitions`` (the lead's Dagster definitions); skips with the reason until then.
The job's own environment (database, GHL simulator, demo projects) comes from ``sync_environment``.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ghl_pipeline.gateway import create_app
from ghl_pipeline_tests.gateway.conftest import TestClient, bearer, make_settings, make_token

REPO_ROOT = Path(__file__).resolve().parents[2]
WEBSERVER_START_TIMEOUT = 120.0
RUN_TIMEOUT = 180.0
# Without the daemon a queued run would wait forever; the default coordinator launches at once.
INSTANCE_YAML = """\
run_coordinator:
  module: dagster._core.run_coordinator
  class: DefaultRunCoordinator
telemetry:
  enabled: false
"""

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def dagster_webserver(workspace: Path, *, dagster_home: Path, env: dict[str, str]) -> Iterator[str]:
    """Run ``dagster-webserver -w workspace`` on a free loopback port; yield its GraphQL URL."""
    dagster_home.mkdir(parents=True, exist_ok=True)
    (dagster_home / "dagster.yaml").write_text(INSTANCE_YAML)
    port = free_port()
    webserver = Path(sys.executable).with_name("dagster-webserver")
    log_path = dagster_home / "webserver.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(webserver), "-w", str(workspace), "-h", "127.0.0.1", "-p", str(port)],
            cwd=workspace.parent,
            env={**env, "DAGSTER_HOME": str(dagster_home)},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so the code server child dies with it
        )
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + WEBSERVER_START_TIMEOUT
            while True:
                if process.poll() is not None:
                    pytest.fail(f"dagster-webserver exited early:\n{log_path.read_text()[-3000:]}")
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{base}/server_info", timeout=2).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    pytest.fail(f"dagster-webserver did not start:\n{log_path.read_text()[-3000:]}")
                time.sleep(0.5)
            yield f"{base}/graphql"
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


@pytest.fixture(scope="module")
def definitions_available() -> None:
    try:
        importlib.import_module("ghl_pipeline.definitions")
    except ImportError as exc:
        pytest.skip(f"ghl_pipeline.definitions cannot be imported yet ({exc}); the lead's job is needed")
    if not (REPO_ROOT / "workspace.yaml").exists():
        pytest.skip("workspace.yaml is missing at the repo root")


@pytest.fixture
def sync_environment(definitions_available, db_url) -> Iterator[dict[str, str]]:
    """Environment for the webserver and its runs: a fresh database and the GHL simulator with one project."""
    from ghl_pipeline.ghl.simulator import GHLSimulator
    from ghl_pipeline.warehouse.db import get_engine
    from ghl_pipeline.warehouse.projects import add_project

    simulator = GHLSimulator.demo()
    location = simulator.locations[0]  # Acme Roofing: a modest number of calls per day
    add_project(
        get_engine(db_url), name=location.name, location_id=location.location_id, api_key=location.token
    )
    server = simulator.serve(host="127.0.0.1", port=0)
    try:
        yield {**os.environ, "DATABASE_URL": db_url, "GHL_API_BASE_URL": server.url, "PROJECT": location.name}
    finally:
        server.stop()


@pytest.fixture
def gateway(sync_environment, tmp_path) -> Iterator[tuple[TestClient, str]]:
    with dagster_webserver(
        REPO_ROOT / "workspace.yaml", dagster_home=tmp_path / "home", env=sync_environment
    ) as url:
        app = create_app(make_settings(dagster_graphql_url=url, jwks_url=None))
        with TestClient(app) as client:
            yield client, sync_environment["PROJECT"]


def wait_for_run(client: TestClient, run_id: str, headers: dict[str, str]) -> dict:
    """Poll ``GET /sync/{runId}`` the way the dashboard does, until the run is done."""
    deadline = time.monotonic() + RUN_TIMEOUT
    while time.monotonic() < deadline:
        answer = client.get(f"/sync/{run_id}", headers=headers).json()
        if answer["done"]:
            return answer
        time.sleep(1.0)
    pytest.fail(f"run {run_id} did not finish within {RUN_TIMEOUT}s")


def test_gateway_against_a_real_webserver(gateway):
    client, project = gateway
    headers = bearer(make_token())
    day = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 2 * 86400))  # a day over in every zone
    body = {"dateFrom": day, "dateTo": day, "projectName": project}

    # Refused tokens and bad bodies never launch.
    for refused in ({}, bearer(make_token(exp=int(time.time()) - 60)), bearer(make_token(aud="anon"))):
        assert client.post("/sync", json=body, headers=refused).status_code == 401
    assert client.post("/sync", json={**body, "dateFrom": "yesterday"}, headers=headers).status_code == 400

    first = client.post("/sync", json=body, headers=headers)
    assert first.status_code == 202, first.text
    run_id = first.json()["runId"]
    second = client.post("/sync", json=body, headers=headers)
    assert second.status_code == 200, second.text
    assert second.json()["runId"] == run_id and second.json()["alreadyRunning"] is True

    answer = wait_for_run(client, run_id, headers)
    assert answer["status"] == "SUCCESS", json.dumps(answer)
    assert isinstance(answer["newRecords"], int) and answer["newRecords"] > 0
    assert set(answer["projects"]) == {project}
    assert {"new_records", "updated_records", "rejected_records"} <= set(answer["projects"][project])
