"""The repo's dagster.yaml: Postgres storage from the environment; the local home gets the same settings."""

import shutil
from datetime import timedelta

import dagster as dg
import pytest
import yaml

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
    assert postgres_instance.run_monitoring_enabled

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


def test_local_home_carries_the_production_settings_storage_aside(tmp_path, monkeypatch):
    from ghl_pipeline.runs import INSTANCE_SETTINGS, dagster_instance

    production = yaml.safe_load((REPO_ROOT / "dagster.yaml").read_text())
    assert production.pop("storage")
    assert production == yaml.safe_load(INSTANCE_SETTINGS.read_text())

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    instance = dagster_instance()  # what the demo and the CLI use: ./.dagster_home
    try:
        local = yaml.safe_load((tmp_path / ".dagster_home" / "dagster.yaml").read_text())
        assert local == production
        assert instance.run_monitoring_enabled
    finally:
        instance.dispose()


def test_an_operators_own_dagster_yaml_is_left_alone(tmp_path, monkeypatch):
    from ghl_pipeline.runs import write_local_instance_settings

    mine = "telemetry:\n  enabled: true\n"
    (tmp_path / "dagster.yaml").write_text(mine)
    write_local_instance_settings(tmp_path)
    assert (tmp_path / "dagster.yaml").read_text() == mine
