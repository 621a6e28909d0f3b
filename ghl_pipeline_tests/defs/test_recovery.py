"""Sensors and the schedule, evaluated on a real instance with real runs behind them."""

from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest

from ghl_pipeline.definitions import defs
from ghl_pipeline.defs import recovery
from ghl_pipeline.defs.partitions import PROJECTS_PARTITIONS_NAME, partition_key
from ghl_pipeline.defs.recovery import (
    failed_partitions_sensor,
    missing_days_sensor,
    projects_sensor,
    recent_calls_schedule,
)
from ghl_pipeline.defs.resources import GHLResource
from ghl_pipeline.ghl.ratelimit import InMemoryRateLimiter
from ghl_pipeline.ghl.simulator import Faults
from ghl_pipeline.warehouse.projects import add_project, set_project_active
from ghl_pipeline_tests.defs.conftest import ACME, GLOBEX, TODAY


def _ctx(instance, resources):
    return dg.build_sensor_context(instance=instance, resources={"warehouse": resources["warehouse"]})


def _materialize(instance, resources, key: str):
    job = defs.resolve_job_def("refresh_all_calls")
    return job.execute_in_process(
        instance=instance, resources=resources, partition_key=key, raise_on_error=False
    )


def _requested(result) -> list[tuple[str, dict]]:
    return [(r.run_key, r.tags) for r in result.run_requests or []]


# ------------------------------------------------------------------------------ projects_sensor


def test_projects_sensor_adds_new_active_projects_and_never_deletes(engine, projects, resources):
    with dg.instance_for_test() as instance:
        first = projects_sensor(_ctx(instance, resources))
        (request,) = first.dynamic_partitions_requests
        assert sorted(request.partition_keys) == sorted([ACME.name, GLOBEX.name])
        instance.add_dynamic_partitions(PROJECTS_PARTITIONS_NAME, list(request.partition_keys))

        nothing = projects_sensor(_ctx(instance, resources))
        assert not nothing.dynamic_partitions_requests and nothing.skip_reason

        add_project(engine, name="Initech HVAC", location_id="initech01", api_key="pit-x-secret")
        set_project_active(engine, GLOBEX.name, False)
        add_project(engine, name="Smith & Sons, LLC", location_id="smith01", api_key="pit-y-secret")
        after = projects_sensor(_ctx(instance, resources))
        # Every name gets a partition: the comma Dagster reserves is encoded, reversibly.
        assert [list(r.partition_keys) for r in after.dynamic_partitions_requests] == [
            ["Initech HVAC", "Smith & Sons%2C LLC"]
        ]
        assert all(isinstance(r, dg.AddDynamicPartitionsRequest) for r in after.dynamic_partitions_requests)


# ------------------------------------------------------------------------------ failed_partitions_sensor


@pytest.fixture
def failing_resources(simulator, resources):
    """GHL answering 500 to everything; one attempt per request so the run fails fast."""
    failing = type(simulator)(simulator.locations, faults=Faults(server_error_rate=1.0), seed=1)
    ghl = GHLResource.with_transport(failing.transport(), limiter=InMemoryRateLimiter(), max_attempts=1)
    return {**resources, "ghl": dg.ResourceDefinition.hardcoded_resource(ghl)}


def test_failed_partition_is_retried_after_a_growing_delay(
    instance, failing_resources, resources, monkeypatch
):
    key = str(partition_key(TODAY - timedelta(days=2), ACME.name))
    failed = _materialize(instance, failing_resources, key)
    assert not failed.success
    ended = datetime.now(UTC)

    monkeypatch.setattr(recovery, "_now", lambda: ended + timedelta(seconds=10))
    assert _requested(failed_partitions_sensor(_ctx(instance, resources))) == []  # 1 minute not yet up

    monkeypatch.setattr(recovery, "_now", lambda: ended + timedelta(minutes=2))
    ((run_key, tags),) = _requested(failed_partitions_sensor(_ctx(instance, resources)))
    assert tags["dagster/partition"] == key
    assert tags["ghl/attempt"] == "2" and "attempt2" in run_key
    assert tags["ghl/retry_of"] == failed.run_id

    # The retry fails too: the next one waits 2 minutes, not 1.
    retry = defs.resolve_job_def("refresh_all_calls").execute_in_process(
        instance=instance, resources=failing_resources, tags=tags, raise_on_error=False
    )
    assert not retry.success
    ended = datetime.now(UTC)
    monkeypatch.setattr(recovery, "_now", lambda: ended + timedelta(seconds=90))
    assert [
        t["ghl/attempt"] for _, t in _requested(failed_partitions_sensor(_ctx(instance, resources)))
    ] == []
    monkeypatch.setattr(recovery, "_now", lambda: ended + timedelta(minutes=3))
    attempts = [t["ghl/attempt"] for _, t in _requested(failed_partitions_sensor(_ctx(instance, resources)))]
    assert "3" in attempts

    # Once it succeeds, nothing is retried any more.
    assert _materialize(instance, resources, key).success
    monkeypatch.setattr(recovery, "_now", lambda: ended + timedelta(hours=2))
    assert _requested(failed_partitions_sensor(_ctx(instance, resources))) == []


def test_auth_failure_is_surfaced_not_retried(instance, simulator, resources, monkeypatch):
    simulator.revoke_token(ACME.location_id)
    failed = _materialize(instance, resources, str(partition_key(TODAY - timedelta(days=1), ACME.name)))
    assert not failed.success
    assert instance.get_run_by_id(failed.run_id).tags["ghl/failure_kind"] == "auth"
    monkeypatch.setattr(recovery, "_now", lambda: datetime.now(UTC) + timedelta(hours=1))
    result = failed_partitions_sensor(_ctx(instance, resources))
    assert _requested(result) == []
    assert "Acme Roofing" in result.skip_reason.skip_message

    # The gap sensor leaves that project alone too, while still filling the other one's gaps.
    gaps = _requested(missing_days_sensor(_ctx(instance, resources)))
    assert gaps and all(t["ghl/project"] == GLOBEX.name for _, t in gaps)


# ------------------------------------------------------------------------------ missing_days_sensor


def test_missing_days_requested_newest_first_in_bounded_ranges(instance, resources, monkeypatch):
    monkeypatch.setenv("GHL_GAP_LOOKBACK_DAYS", "40")
    monkeypatch.setenv("GHL_GAP_RUNS_PER_TICK", "3")
    yesterday_acme = datetime.now(
        ACME.timezone and __import__("zoneinfo").ZoneInfo(ACME.timezone)
    ).date() - timedelta(days=1)
    # Materialize one day in the middle of Acme's window: it splits Acme's gap in two.
    hole = yesterday_acme - timedelta(days=5)
    assert _materialize(instance, resources, str(partition_key(hole, ACME.name))).success

    requests = _requested(missing_days_sensor(_ctx(instance, resources)))
    assert len(requests) == 3
    acme = [t for _, t in requests if t["ghl/project"] == ACME.name]
    ends = [t.get("dagster/asset_partition_range_end", t.get("dagster/partition")) for t in acme]
    assert str(partition_key(yesterday_acme, ACME.name)) in ends  # the newest gap first
    for _, tags in requests:
        if "dagster/asset_partition_range_start" in tags:
            start = datetime.fromisoformat(tags["dagster/asset_partition_range_start"].split("|")[0])
            end = datetime.fromisoformat(tags["dagster/asset_partition_range_end"].split("|")[0])
            assert (end - start).days < 31
            assert not (start.date() <= hole <= end.date()) or tags["ghl/project"] != ACME.name

    # Run keys hold the day: the same gap is asked for at most once a day.
    assert all(key.startswith("gap:") and TODAY.isoformat() in key for key, _ in requests)


def test_nothing_missing_means_no_runs(instance, resources, monkeypatch):
    monkeypatch.setenv("GHL_GAP_LOOKBACK_DAYS", "1")
    for loc in (ACME, GLOBEX):
        from zoneinfo import ZoneInfo

        yesterday = datetime.now(ZoneInfo(loc.timezone)).date() - timedelta(days=1)
        assert _materialize(instance, resources, str(partition_key(yesterday, loc.name))).success
    result = missing_days_sensor(_ctx(instance, resources))
    assert _requested(result) == [] and result.skip_reason


# ------------------------------------------------------------------------------ recent_calls_schedule


def test_schedule_resyncs_every_project_in_one_run(engine, instance, resources):
    set_project_active(engine, GLOBEX.name, False)
    context = dg.build_schedule_context(
        instance=instance,
        resources={"warehouse": resources["warehouse"]},
        scheduled_execution_time=datetime(2026, 12, 1, 3, 15, tzinfo=UTC),
    )
    request = recent_calls_schedule(context)
    # One run whatever the project count: the rectangle of every registered project over the days in
    # play (03:15 UTC is still 2026-11-30 in Chicago); the asset keeps each project to its own two days.
    assert request.tags["dagster/asset_partition_range_start"] == "2026-11-29|Acme Roofing"
    assert request.tags["dagster/asset_partition_range_end"] == "2026-11-30|Globex Solar"
    assert request.tags["ghl/recent_days"] == "2"


# ------------------------------------------------------------------------------ what the daemon checks


def test_every_sensor_passes_the_daemons_target_check_with_work_to_do(
    engine, instance, failing_resources, resources, monkeypatch
):
    """``evaluate_tick`` is what the daemon calls: a RunRequest from a sensor without a target fails there."""
    from ghl_pipeline.defs.recovery import dead_runs_sensor

    failed = _materialize(
        instance, failing_resources, str(partition_key(TODAY - timedelta(days=2), ACME.name))
    )
    assert not failed.success
    monkeypatch.setattr(recovery, "_now", lambda: datetime.now(UTC) + timedelta(hours=2))
    add_project(engine, name="Smith & Sons, LLC", location_id="smith01", api_key="pit-y-secret")
    for sensor in (projects_sensor, failed_partitions_sensor, missing_days_sensor, dead_runs_sensor):
        data = sensor.evaluate_tick(_ctx(instance, resources))
        assert data.run_requests or data.skip_message or data.dynamic_partitions_requests, sensor.name
        if sensor in (failed_partitions_sensor, missing_days_sensor):
            assert data.run_requests, sensor.name  # there was work, and the daemon would accept it
            assert {r.job_name for r in data.run_requests} <= {None, "refresh_all_calls"}


# ------------------------------------------------------------------------------ dead_runs_sensor


def test_a_started_run_that_stopped_beating_is_marked_failed_and_then_retried(
    instance, resources, monkeypatch
):
    import time

    from ghl_pipeline.defs.liveness import TAG_HEARTBEAT
    from ghl_pipeline.defs.recovery import dead_runs_sensor

    key = str(partition_key(TODAY - timedelta(days=2), ACME.name))
    job = defs.resolve_job_def("refresh_all_calls")
    # A run whose worker was killed mid-sync: STARTED, its partition IN_PROGRESS, its heartbeat old.
    dead = instance.create_run_for_job(
        job, tags={"dagster/partition": key, TAG_HEARTBEAT: f"{time.time() - 600:.0f}"}
    )
    alive = instance.create_run_for_job(
        job,
        tags={
            "dagster/partition": str(partition_key(TODAY - timedelta(days=3), ACME.name)),
            TAG_HEARTBEAT: f"{time.time():.0f}",
        },
    )
    for run in (dead, alive):
        instance.handle_run_event(
            run.run_id,
            dg.DagsterEvent(event_type_value="PIPELINE_START", job_name=run.job_name, message="started"),
        )
    assert instance.get_run_by_id(dead.run_id).status == dg.DagsterRunStatus.STARTED

    result = dead_runs_sensor.evaluate_tick(_ctx(instance, resources))
    assert dead.run_id[:8] in result.skip_message
    assert instance.get_run_by_id(dead.run_id).status == dg.DagsterRunStatus.FAILURE
    assert instance.get_run_by_id(alive.run_id).status == dg.DagsterRunStatus.STARTED

    # The retry sensor then sees the dead run's partition and asks for it again.
    monkeypatch.setattr(recovery, "_now", lambda: datetime.now(UTC) + timedelta(minutes=5))
    retry = failed_partitions_sensor.evaluate_tick(_ctx(instance, resources))
    assert [r.tags.get("dagster/partition") for r in retry.run_requests] == [key]
