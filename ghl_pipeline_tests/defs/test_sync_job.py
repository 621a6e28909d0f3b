"""The dashboard's job, ``sync_ghl_calls``: config rules, summary, materializations, failures."""

import json
from datetime import timedelta

import dagster as dg
import pytest

from ghl_pipeline.definitions import defs
from ghl_pipeline.defs.partitions import partition_key
from ghl_pipeline_tests.defs.conftest import (
    ACME,
    GLOBEX,
    TODAY,
    TOKENS,
    local_window,
    stored_ids,
    table_snapshot,
)


def _sync(instance, resources, **config):
    job = defs.resolve_job_def("sync_ghl_calls")
    return job.execute_in_process(
        run_config={"ops": {"sync_calls": {"config": config}}},
        instance=instance,
        resources=resources,
        raise_on_error=False,
    )


def _failure(result) -> str:
    (event,) = result.get_step_failure_events()
    return event.step_failure_data.user_failure_data.description


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (
            {"date_from": "2025-12-40", "date_to": "2025-12-01"},
            "date_from: '2025-12-40' is not a real calendar date",
        ),
        ({"date_from": "2025-12-02", "date_to": "2025-12-01"}, "date_to: must not be before date_from"),
        ({"date_from": "2025-12-01", "date_to": "2025-12-02T00:00:00Z"}, "not a mix"),
        ({"date_from": "2025-08-01", "date_to": "2025-12-01"}, "longer than 93 days"),
        (
            {"date_from": "2025-12-01", "date_to": "2025-12-01", "project_name": "Nobody Inc"},
            "project_name: 'Nobody Inc' is not an active project",
        ),
    ],
)
def test_bad_config_fails_before_any_request_or_write(
    engine, simulator, instance, resources, config, expected
):
    before = table_snapshot(engine)
    result = _sync(instance, resources, **config)
    assert not result.success
    assert expected in _failure(result)
    assert simulator.requests == []
    assert table_snapshot(engine) == before


def test_inactive_project_is_refused(engine, simulator, instance, resources):
    from ghl_pipeline.warehouse.projects import set_project_active

    set_project_active(engine, GLOBEX.name, False)
    day = TODAY.isoformat()
    result = _sync(instance, resources, date_from=day, date_to=day, project_name=GLOBEX.name)
    assert "is not an active project" in _failure(result)
    assert simulator.requests == []


def test_sync_all_projects_reports_summary_and_materializes_partitions(
    engine, simulator, instance, resources
):
    first, last = TODAY - timedelta(days=2), TODAY - timedelta(days=1)
    result = _sync(instance, resources, date_from=first.isoformat(), date_to=last.isoformat())
    assert result.success

    expected = {}
    for loc in (ACME, GLOBEX):
        start, _ = local_window(first, loc.timezone)
        _, end = local_window(last, loc.timezone)
        truth = {m["id"] for m in simulator.ground_truth(loc.location_id, start, end)}
        assert stored_ids(engine, loc.name) == truth
        expected[loc.name] = len(truth)

    tags = instance.get_run_by_id(result.run_id).tags
    summary = json.loads(tags["ghl/summary"])
    assert int(tags["ghl/new_records"]) == summary["new_records"] == sum(expected.values())
    assert {n: p["new_records"] for n, p in summary["projects"].items()} == expected
    assert tags["ghl/updated_records"] == "0" and tags["ghl/rejected_records"] == "0"

    keys = [str(partition_key(d, loc.name)) for d in (first, last) for loc in (ACME, GLOBEX)]
    status = instance.get_status_by_partition(
        dg.AssetKey("all_calls"), keys, defs.resolve_assets_def("all_calls").partitions_def
    )
    assert set(status.values()) == {dg.AssetPartitionStatus.MATERIALIZED}

    # A second click syncs the same calls: nothing new, nothing lost.
    again = _sync(instance, resources, date_from=first.isoformat(), date_to=last.isoformat())
    assert instance.get_run_by_id(again.run_id).tags["ghl/new_records"] == "0"


def test_late_changes_update_rows(engine, simulator, instance, resources):
    day = (TODAY - timedelta(days=1)).isoformat()
    _sync(instance, resources, date_from=day, date_to=day, project_name=ACME.name)
    call = simulator.ground_truth(ACME.location_id, *local_window(TODAY - timedelta(days=1), ACME.timezone))[
        0
    ]
    simulator.update_call(call["id"], status="completed", duration=321)
    result = _sync(instance, resources, date_from=day, date_to=day, project_name=ACME.name)
    tags = instance.get_run_by_id(result.run_id).tags
    assert (tags["ghl/new_records"], tags["ghl/updated_records"]) == ("0", "1")


def test_revoked_token_fails_naming_project_and_never_leaks_it(engine, simulator, instance, resources):
    simulator.revoke_token(ACME.location_id)
    day = TODAY.isoformat()
    result = _sync(instance, resources, date_from=day, date_to=day, project_name=ACME.name)
    assert not result.success
    message = _failure(result)
    assert "Acme Roofing" in message
    run = instance.get_run_by_id(result.run_id)
    assert run.tags["ghl/failure_kind"] == "auth"
    assert json.loads(run.tags["ghl/failed_projects"]) == {ACME.name: "auth"}
    assert len(simulator.requests) == 1  # no retries of a 401
    logs = "\n".join(str(e) for e in instance.all_logs(result.run_id))
    for token in TOKENS:
        assert token not in logs and token not in str(run.tags) and token not in str(run.run_config)


def test_a_role_without_grants_is_told_so_not_that_the_project_is_unknown(
    engine, db_url, simulator, instance
):
    """A database permission error names itself; it is never mistaken for "not an active project"."""
    from sqlalchemy.engine import make_url

    from ghl_pipeline.defs.resources import GHLResource, WarehouseResource
    from ghl_pipeline.ghl.ratelimit import InMemoryRateLimiter

    role = f"no_grants_{abs(hash(db_url)) % 10**8}"
    with engine.begin() as conn:
        conn.exec_driver_sql(f"DROP ROLE IF EXISTS {role}")
        conn.exec_driver_sql(f"CREATE ROLE {role} LOGIN PASSWORD 'pw'")
    try:
        url = make_url(db_url).set(username=role, password="pw").render_as_string(hide_password=False)
        resources = {
            "ghl": dg.ResourceDefinition.hardcoded_resource(
                GHLResource.with_transport(simulator.transport(), limiter=InMemoryRateLimiter())
            ),
            "warehouse": WarehouseResource(database_url=url),
        }
        day = TODAY.isoformat()
        result = _sync(instance, resources, date_from=day, date_to=day, project_name=ACME.name)
        assert not result.success
        reason = _failure(result)
        assert "project_name: cannot read the projects table: permission denied for table projects" in reason
        assert simulator.requests == []
    finally:
        from ghl_pipeline.warehouse.db import dispose_engines

        dispose_engines()
        with engine.begin() as conn:
            conn.exec_driver_sql(f"DROP OWNED BY {role}")
            conn.exec_driver_sql(f"DROP ROLE {role}")


def test_the_summary_names_projects_that_synced_degraded(engine, db_url, instance):
    from dataclasses import replace

    from ghl_pipeline.defs.resources import GHLResource, WarehouseResource
    from ghl_pipeline.ghl.ratelimit import InMemoryRateLimiter
    from ghl_pipeline.ghl.simulator import ALL_SCOPES, GHLSimulator, Shapes

    acme = replace(ACME, scopes=ALL_SCOPES - {"users.readonly"})
    sim = GHLSimulator([acme, GLOBEX], shapes=Shapes(campaign_call_rate=0.2), seed=7)
    resources = {
        "ghl": dg.ResourceDefinition.hardcoded_resource(
            GHLResource.with_transport(sim.transport(), limiter=InMemoryRateLimiter())
        ),
        "warehouse": WarehouseResource(database_url=db_url),
    }
    day = (TODAY - timedelta(days=1)).isoformat()
    result = _sync(instance, resources, date_from=day, date_to=day)
    assert result.success
    summary = json.loads(instance.get_run_by_id(result.run_id).tags["ghl/summary"])
    degraded = summary["degraded"]
    assert set(degraded) == {ACME.name, GLOBEX.name}  # both have campaign calls; only Acme lacks users
    assert set(degraded[ACME.name]["enrichment_missing"]) == {"users"}
    assert degraded[GLOBEX.name]["enrichment_missing"] == {}
    for loc in (ACME, GLOBEX):
        window = local_window(TODAY - timedelta(days=1), loc.timezone)
        campaign = [m for m in sim.channel_truth(loc.location_id, *window) if m["type"] in (8, 10, 13)]
        assert degraded[loc.name]["unrecognised_records"] == len(campaign) > 0
        assert summary["projects"][loc.name]["rejected_records"] == len(campaign)
    assert not any(token in json.dumps(summary) for token in TOKENS)
