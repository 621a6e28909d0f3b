"""The code location loads, and exposes what the contract names."""

import dagster as dg

from ghl_pipeline.definitions import defs


def test_definitions_load_with_contract_names():
    repo = defs.get_repository_def()
    assert {"sync_ghl_calls", "refresh_all_calls"} <= set(repo.job_names)
    assert repo.get_job("sync_ghl_calls").graph.node_names() == ["sync_calls"]
    asset = defs.resolve_assets_def("all_calls")
    partitions = asset.partitions_def
    assert isinstance(partitions, dg.MultiPartitionsDefinition)
    assert [d.name for d in partitions.partitions_defs] == ["date", "project"]
    assert partitions.get_partitions_def_for_dimension("project").name == "projects"
    assert asset.backfill_policy == dg.BackfillPolicy.multi_run(max_partitions_per_run=31)
    sensor_names = {s.name for s in repo.sensor_defs}
    assert {"projects_sensor", "failed_partitions_sensor", "missing_days_sensor"} <= sensor_names
    assert "recent_calls_schedule" in {s.name for s in repo.schedule_defs}


def test_resources_hold_no_secret():
    # The resources' configured values are what the UI and GraphQL show: no token, no DB password.
    for resource in defs.resources.values():
        for value in resource.model_dump().values():
            assert value is None or not str(value).startswith(("pit-", "postgres"))
