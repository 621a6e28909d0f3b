"""The gateway against a real ``dagster-webserver`` loading the repo's workspace.yaml (slow).

Needs ``ghl_pipeline.definitions`` (the lead's Dagster definitions); skips with the reason until then.
The job's own environment (database, GHL simulator, demo projects) comes from ``sync_environment``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from ghl_pipeline.gateway import create_app
from ghl_pipeline_tests.gateway.conftest import TestClient, bearer, make_settings, make_token
from ghl_pipeline_tests.webserver import REPO_ROOT, RUN_TIMEOUT, dagster_webserver

pytestmark = pytest.mark.slow


@pytest.fixture
def gateway(sync_environment, tmp_path) -> Iterator[tuple[TestClient, str]]:
    with dagster_webserver(
        REPO_ROOT / "workspace.yaml", dagster_home=tmp_path / "home", env=sync_environment
    ) as url:
        settings = make_settings(
            dagster_graphql_url=url, jwks_url=None, database_url=sync_environment["DATABASE_URL"]
        )
        app = create_app(settings)
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
