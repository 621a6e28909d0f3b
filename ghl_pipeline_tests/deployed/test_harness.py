"""The harness of the deployed tier: the repo's dagster.yaml on Postgres, a real webserver and daemon (slow)."""

from __future__ import annotations

import psutil
import pytest

from ghl_pipeline_tests.deployment import deployed_system

pytestmark = pytest.mark.slow


def _processes_with_home(home: str) -> list[int]:
    pids = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if proc.environ().get("DAGSTER_HOME") == home:
                pids.append(proc.pid)
        except psutil.Error:
            continue
    return pids


def test_the_deployed_system_runs_a_job_launched_over_graphql_and_leaves_nothing_behind(
    tmp_path, sync_environment
):
    with deployed_system(tmp_path, env=sync_environment) as system:
        home = str(system.dagster_home)
        assert (system.dagster_home / "dagster.yaml").read_text().startswith("# Production instance config")
        assert system.env["DAGSTER_PG_URL"].startswith("postgresql+psycopg2://")
        assert system.daemon_healthy(), system.daemon_statuses()
        assert system.code_server_pids(), "the webserver and the daemon each start a code server"

        run_id = system.launch_run("health_check", tags={"ghl/test": "harness"})
        assert system.wait_run(run_id, timeout=180) == "SUCCESS", system.logs()
        run = system.run(run_id)
        assert {"key": "ghl/test", "value": "harness"} in run["tags"]

        assert system.daemon_healthy(), system.daemon_statuses()
        for worker in system.run_processes():  # a worker may still be exiting; it is ours
            assert worker.ppid in system.code_server_pids() or worker.ppid == 1
        ticks = system.sensor_and_schedule_ticks()  # the query works; sensors are not asserted on here
        assert all(t.kind in ("SENSOR", "SCHEDULE") for t in ticks)

    assert _processes_with_home(home) == []
