"""Materializing `all_calls` partitions against the simulator and a real Postgres."""

from datetime import timedelta

import dagster as dg
import sqlalchemy as sa

from ghl_pipeline.definitions import defs
from ghl_pipeline.defs.partitions import partition_key, split_partition_key
from ghl_pipeline_tests.defs.conftest import ACME, GLOBEX, TODAY, local_window, stored_ids

DAY = TODAY - timedelta(days=3)


def _materialize(instance, resources, **kwargs):
    job = defs.resolve_job_def("refresh_all_calls")
    return job.execute_in_process(instance=instance, resources=resources, raise_on_error=False, **kwargs)


def test_one_partition_lands_exactly_that_local_day(engine, simulator, instance, resources):
    result = _materialize(instance, resources, partition_key=str(partition_key(DAY, ACME.name)))
    assert result.success

    truth = {m["id"] for m in simulator.ground_truth(ACME.location_id, *local_window(DAY, ACME.timezone))}
    assert truth and stored_ids(engine, ACME.name) == truth
    assert stored_ids(engine, GLOBEX.name) == set()
    with engine.connect() as conn:
        dates = conn.execute(sa.text("SELECT DISTINCT call_date FROM all_calls")).scalars().all()
    assert dates == [DAY]

    (mat,) = result.asset_materializations_for_node("all_calls")
    meta = {k: v.value for k, v in mat.metadata.items()}
    assert meta["fetched"] == len(truth)
    assert meta["new_records"] == len(truth)
    assert meta["updated_records"] == 0 and meta["rejected_records"] == 0
    assert meta["dagster/row_count"] == len(truth)
    assert meta["ghl_requests"] >= 3  # location, users, the export page(s), contacts
    (check,) = result.get_asset_check_evaluations()
    assert check.passed, check.metadata


def test_rematerializing_adds_nothing(engine, instance, resources):
    key = str(partition_key(DAY, ACME.name))
    _materialize(instance, resources, partition_key=key)
    again = _materialize(instance, resources, partition_key=key)
    meta = {k: v.value for k, v in again.asset_materializations_for_node("all_calls")[0].metadata.items()}
    assert meta["new_records"] == 0 and meta["updated_records"] == 0
    assert meta["dagster/row_count"] == meta["fetched"]


def test_ranged_run_reports_each_partition_once(engine, simulator, instance, resources):
    first, last = DAY - timedelta(days=2), DAY
    result = _materialize(
        instance,
        resources,
        tags={
            "dagster/asset_partition_range_start": str(partition_key(first, GLOBEX.name)),
            "dagster/asset_partition_range_end": str(partition_key(last, GLOBEX.name)),
        },
    )
    assert result.success
    start, _ = local_window(first, GLOBEX.timezone)
    _, end = local_window(last, GLOBEX.timezone)
    truth = {m["id"] for m in simulator.ground_truth(GLOBEX.location_id, start, end)}
    assert stored_ids(engine, GLOBEX.name) == truth

    # One materialization per partition, each with its own counts (not a run total copied onto each).
    mats = result.asset_materializations_for_node("all_calls")
    per_partition = {m.partition: m.metadata["new_records"].value for m in mats}
    assert len(mats) == len(per_partition) == 3
    assert sum(per_partition.values()) == len(truth)
    for mat in mats:
        day, _ = split_partition_key(mat.partition)
        assert mat.metadata["dagster/row_count"].value == len(
            {m["id"] for m in simulator.ground_truth(GLOBEX.location_id, *local_window(day, GLOBEX.timezone))}
        )

    status = instance.get_status_by_partition(
        dg.AssetKey("all_calls"), list(per_partition), defs.resolve_assets_def("all_calls").partitions_def
    )
    assert set(status.values()) == {dg.AssetPartitionStatus.MATERIALIZED}


def test_inactive_project_is_never_synced(engine, simulator, instance, resources):
    from ghl_pipeline.warehouse.projects import set_project_active

    set_project_active(engine, ACME.name, False)
    result = _materialize(instance, resources, partition_key=str(partition_key(DAY, ACME.name)))
    assert not result.success
    assert "inactive" in str(
        result.get_step_failure_events()[0].step_failure_data.user_failure_data.description
    )
    assert simulator.requests == []


def test_malformed_records_are_kept_as_rejects_and_counted(engine, db_url, instance):
    from ghl_pipeline.defs.resources import GHLResource, WarehouseResource
    from ghl_pipeline.ghl.ratelimit import InMemoryRateLimiter
    from ghl_pipeline.ghl.simulator import Faults, GHLSimulator

    faulty = GHLSimulator([ACME, GLOBEX], faults=Faults(malformed_rate=0.3), seed=7)
    resources = {
        "ghl": dg.ResourceDefinition.hardcoded_resource(
            GHLResource.with_transport(faulty.transport(), limiter=InMemoryRateLimiter())
        ),
        "warehouse": WarehouseResource(database_url=db_url),
    }
    result = _materialize(instance, resources, partition_key=str(partition_key(DAY, ACME.name)))
    assert result.success
    meta = {k: v.value for k, v in result.asset_materializations_for_node("all_calls")[0].metadata.items()}
    with engine.connect() as conn:
        rejects = conn.execute(sa.text("SELECT count(*) FROM all_calls_rejects")).scalar_one()
    truth = faulty.ground_truth(ACME.location_id, *local_window(DAY, ACME.timezone))
    assert rejects > 0
    assert meta["new_records"] + meta["rejected_records"] == meta["fetched"] == len(truth)
    assert meta["rejected_records"] == rejects
    (check,) = result.get_asset_check_evaluations()
    assert check.passed, check.metadata  # stored + rejected = GHL's own count: nothing vanished


def _resources_for(transport, db_url):
    from ghl_pipeline.defs.resources import GHLResource, WarehouseResource
    from ghl_pipeline.ghl.ratelimit import InMemoryRateLimiter

    return {
        "ghl": dg.ResourceDefinition.hardcoded_resource(
            GHLResource.with_transport(transport, limiter=InMemoryRateLimiter())
        ),
        "warehouse": WarehouseResource(database_url=db_url),
    }


def test_users_refused_calls_land_and_the_run_and_the_check_say_why(engine, db_url, instance):
    from dataclasses import replace

    from ghl_pipeline.ghl.simulator import ALL_SCOPES, GHLSimulator, Shapes

    acme = replace(ACME, scopes=ALL_SCOPES - {"users.readonly"})
    sim = GHLSimulator([acme, GLOBEX], shapes=Shapes(users_list_removed=True, campaign_call_rate=0.2), seed=7)
    result = _materialize(
        instance, _resources_for(sim.transport(), db_url), partition_key=str(partition_key(DAY, ACME.name))
    )
    assert result.success
    truth = {m["id"] for m in sim.ground_truth(ACME.location_id, *local_window(DAY, ACME.timezone))}
    assert stored_ids(engine, ACME.name) == truth
    with engine.connect() as conn:
        names = conn.execute(sa.text("SELECT DISTINCT agent_name FROM all_calls")).scalars().all()
    assert names == [None]

    (mat,) = result.asset_materializations_for_node("all_calls")
    exported = sim.channel_truth(ACME.location_id, *local_window(DAY, ACME.timezone))
    campaign = [m for m in exported if m["type"] in (8, 10, 13)]
    assert campaign and mat.metadata["unrecognised_records"].value == len(campaign)
    assert mat.metadata["rejected_records"].value == len(campaign)
    missing = mat.metadata["enrichment_missing"].value
    assert set(missing) == {ACME.name} and set(missing[ACME.name]) == {"users"}
    assert "GET /users/search refused" in missing[ACME.name]["users"]
    (check,) = result.get_asset_check_evaluations()
    assert check.passed  # every call is there, campaign calls aside: the counts reconcile
    assert "Acme Roofing synced without users (HTTP 401: GET /users/ refused" in check.description
    assert check.metadata["enrichment_missing"].value == missing


def test_rows_short_of_ghl_total_fail_the_check_at_error(engine, db_url, instance):
    """GHL announces more calls than it serves, whatever the client does: the check says so, loudly."""
    import httpx

    from ghl_pipeline.ghl.simulator import GHLSimulator

    sim = GHLSimulator([ACME, GLOBEX], seed=7)

    def handler(request: httpx.Request) -> httpx.Response:
        answer = sim.handle(
            request.method, request.url.path, query=dict(request.url.params), headers=request.headers
        )
        body = answer.body
        if request.url.path.endswith("/export") and answer.status == 200:
            body = {**body, "total": body["total"] + 2}
        return httpx.Response(answer.status, json=body, headers=answer.headers)

    resources = _resources_for(httpx.MockTransport(handler), db_url)
    result = _materialize(instance, resources, partition_key=str(partition_key(DAY, ACME.name)))
    assert result.success  # the calls GHL did serve landed
    (check,) = result.get_asset_check_evaluations()
    assert not check.passed
    assert check.severity == dg.AssetCheckSeverity.ERROR
    assert check.metadata["short"].value == [ACME.name]
    assert "fewer rows than GHL counts" in check.description
