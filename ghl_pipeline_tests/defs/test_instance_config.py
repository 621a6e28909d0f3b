"""The repo's dagster.yaml: Postgres instance storage from the environment, runs launched at once."""

import shutil
from datetime import timedelta

import dagster as dg
import pytest
from dagster._core.run_coordinator import DefaultRunCoordinator

from ghl_pipeline.definitions import defs
from ghl_pipeline_tests.defs.conftest import TODAY
from ghl_pipeline_tests.webserver import REPO_ROOT


@pytest.fixture
def postgres_instance(tmp_path, empty_db_url, monkeypatch):
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO_ROOT / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_PG_URL", empty_db_url)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        yield instance


def test_dagster_yaml_stores_runs_in_postgres(postgres_instance, projects, resources):
    from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage

    assert isinstance(postgres_instance.run_storage, PostgresRunStorage)
    assert isinstance(postgres_instance.event_log_storage, PostgresEventLogStorage)
    assert isinstance(postgres_instance.run_coordinator, DefaultRunCoordinator)

    day = (TODAY - timedelta(days=3)).isoformat()
    result = defs.resolve_job_def("sync_ghl_calls").execute_in_process(
        run_config={"ops": {"sync_calls": {"config": {"date_from": day, "date_to": day}}}},
        instance=postgres_instance,
        resources=resources,
    )
    assert result.success
    assert int(postgres_instance.get_run_by_id(result.run_id).tags["ghl/new_records"]) > 0


def test_dagster_yaml_without_its_env_var_names_it(tmp_path, monkeypatch):
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO_ROOT / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.delenv("DAGSTER_PG_URL", raising=False)
    with pytest.raises(Exception, match="DAGSTER_PG_URL"):
        dg.DagsterInstance.from_config(str(home))
