"""The README's GraphQL, sent verbatim to a real ``dagster-webserver`` loading workspace.yaml (slow)."""

import json
import re
import time
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

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


def test_readme_graphql_launches_polls_and_reports(sync_environment, tmp_path: Path, db_url):
    engine = sa.create_engine(db_url, poolclass=sa.NullPool)
    project = sync_environment["PROJECT"]
    day = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 2 * 86400))
    with dagster_webserver(
        REPO_ROOT / "workspace.yaml", dagster_home=tmp_path / "home", env=sync_environment
    ) as url:
        run = _wait(url, _launch(url, {"date_from": day, "date_to": day, "project_name": project}))
        assert run["status"] == "SUCCESS"
        tags = {t["key"]: t["value"] for t in run["tags"]}
        summary = json.loads(tags["ghl/summary"])
        with engine.connect() as conn:
            stored = conn.execute(sa.text("SELECT count(*) FROM all_calls")).scalar_one()
        assert int(tags["ghl/new_records"]) == summary["new_records"] == stored > 0
        assert summary["projects"][project]["new_records"] == stored

        # Bad config over GraphQL: the run fails with the rule, and nothing is written.
        failed = _wait(
            url, _launch(url, {"date_from": day, "date_to": "2000-01-01", "project_name": project})
        )
        assert failed["status"] == "FAILURE"
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM all_calls")).scalar_one() == stored
    engine.dispose()
