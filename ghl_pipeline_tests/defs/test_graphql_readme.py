"""The README's GraphQL, sent verbatim to a real ``dagster-webserver`` loading workspace.yaml (slow)."""

import json
import re
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import httpx
import pytest
import sqlalchemy as sa

from ghl_pipeline.definitions import defs
from ghl_pipeline.defs.partitions import partition_key
from ghl_pipeline.warehouse.projects import add_project
from ghl_pipeline_tests.webserver import REPO_ROOT, dagster_webserver

pytestmark = pytest.mark.slow

README = (REPO_ROOT / "README.md").read_text()
TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}


def _block(language: str, contains: str) -> str:
    blocks = re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)
    (found,) = [b for b in blocks if contains in b]
    return found


LAUNCH = _block("graphql", "mutation LaunchSync")
STATUS = _block("graphql", "query SyncRun")
VARIABLES = json.loads(_block("json", '"executionParams"'))


def _post(url: str, query: str, variables: dict) -> dict:
    answer = httpx.post(url, json={"query": query, "variables": variables}, timeout=30)
    answer.raise_for_status()
    body = answer.json()
    assert "errors" not in body, body
    return body["data"]


def _launch(url: str, config: dict) -> str:
    variables = json.loads(json.dumps(VARIABLES))
    variables["executionParams"]["runConfigData"]["ops"]["sync_calls"]["config"] = config
    result = _post(url, LAUNCH, variables)["launchRun"]
    assert result["__typename"] == "LaunchRunSuccess", result
    return result["run"]["runId"]


def _wait(url: str, run_id: str) -> dict:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        run = _post(url, STATUS, {"runId": run_id})["runOrError"]
        assert run["__typename"] == "Run", run
        if run["status"] in TERMINAL:
            return run
        time.sleep(0.5)
    pytest.fail(f"run {run_id} did not finish")


def _snapshot(engine) -> tuple[int, int, int]:
    with engine.connect() as conn:
        return tuple(
            conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one()
            for t in ("all_calls", "all_calls_rejects", "ghl_contacts")
        )


def _failure_message(instance: dg.DagsterInstance, run_id: str) -> str:
    for event in instance.all_logs(run_id):
        data = event.dagster_event and event.dagster_event.event_specific_data
        if event.dagster_event and event.dagster_event.is_step_failure:
            return data.user_failure_data.description if data.user_failure_data else data.error.message
    return ""


def test_readme_graphql_launches_polls_and_reports(served_ghl, sync_environment, tmp_path: Path, db_url):
    simulator, _ = served_ghl
    engine = sa.create_engine(db_url, poolclass=sa.NullPool)
    inactive = simulator.locations[1]
    add_project(
        engine, name=inactive.name, location_id=inactive.location_id, api_key=inactive.token, active=False
    )
    project = sync_environment["PROJECT"]
    day = (datetime.now(UTC) - timedelta(days=2)).date().isoformat()
    home = tmp_path / "home"
    with dagster_webserver(REPO_ROOT / "workspace.yaml", dagster_home=home, env=sync_environment) as url:
        run = _wait(url, _launch(url, {"date_from": day, "date_to": day, "project_name": project}))
        assert run["status"] == "SUCCESS"
        tags = {t["key"]: t["value"] for t in run["tags"]}
        summary = json.loads(tags["ghl/summary"])
        with engine.connect() as conn:
            stored = conn.execute(sa.text("SELECT count(*) FROM all_calls")).scalar_one()
        assert int(tags["ghl/new_records"]) == summary["new_records"] == stored > 0
        assert summary["projects"][project]["new_records"] == stored

        # Each bad config of the contract: the run fails with its rule, GHL is never asked, nothing is written.
        simulator.clear_requests()
        before = _snapshot(engine)
        bad = {
            "unparseable date": ({"date_from": "2025-13-45", "date_to": day}, "date_from:"),
            "to before from": ({"date_from": day, "date_to": "2020-01-01"}, "date_to: must not be before"),
            "date and datetime": ({"date_from": day, "date_to": f"{day}T12:00:00Z"}, "not a mix"),
            "over 93 days": ({"date_from": "2025-01-01", "date_to": "2025-12-31"}, "longer than 93 days"),
            "unknown project": (
                {"date_from": day, "date_to": day, "project_name": "Nobody"},
                "not an active project",
            ),
            "inactive project": (
                {"date_from": day, "date_to": day, "project_name": inactive.name},
                "not an active project",
            ),
        }
        failed = {name: _wait(url, _launch(url, config))["runId"] for name, (config, _) in bad.items()}
        assert simulator.requests == []
        assert _snapshot(engine) == before

    with dg.DagsterInstance.from_config(str(home)) as instance:
        for name, (_, words) in bad.items():
            assert instance.get_run_by_id(failed[name]).status == dg.DagsterRunStatus.FAILURE, name
            assert words in _failure_message(instance, failed[name]), name
        # The successful sync shows as a materialization of the partition it covered.
        key = str(partition_key(date.fromisoformat(day), project))
        status = instance.get_status_by_partition(
            dg.AssetKey("all_calls"), [key], defs.resolve_assets_def("all_calls").partitions_def
        )
        assert status == {key: dg.AssetPartitionStatus.MATERIALIZED}
    engine.dispose()
