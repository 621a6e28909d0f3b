"""Every project, every zone, each tenant on its own: awkward names, UTC−12..+14, one failing project."""

import json
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from ghl_pipeline.definitions import defs
from ghl_pipeline.defs.partitions import (
    PROJECTS_PARTITIONS_NAME,
    date_partitions,
    partition_key,
    project_key,
    project_name_of,
)
from ghl_pipeline.defs.resources import GHLResource, WarehouseResource
from ghl_pipeline.ghl.ratelimit import InMemoryRateLimiter
from ghl_pipeline.ghl.simulator import GHLSimulator, SimLocation
from ghl_pipeline.warehouse.projects import add_project
from ghl_pipeline_tests.defs.conftest import local_window, stored_ids

TODAY_UTC = datetime.now(UTC).date()
START = TODAY_UTC - timedelta(days=10)

SMITH = SimLocation(
    location_id="smithLoc00000000001",
    token="pit-smith-5e1d-secret",
    name="Smith & Sons, LLC",
    timezone="America/New_York",
    calls_per_day=25,
    start_date=START,
    contacts=40,
)
KIRITIMATI = SimLocation(
    location_id="kiriLoc000000000002",
    token="pit-kiri-9a2c-secret",
    name='Line "Islands" [Pacific] | 24/7',
    timezone="Pacific/Kiritimati",  # UTC+14
    country="KI",
    calls_per_day=20,
    start_date=START,
    contacts=30,
)
BAKER = SimLocation(
    location_id="bakerLoc00000000003",
    token="pit-baker-71f0-secret",
    name="O'Brien... Baker Island",
    timezone="Etc/GMT+12",  # UTC−12
    calls_per_day=15,
    start_date=START,
    contacts=30,
)
LOCATIONS = (SMITH, KIRITIMATI, BAKER)


@pytest.mark.parametrize(
    "name",
    [
        "Smith & Sons, LLC",
        "a|b",
        "x...y",
        "100%",
        "[q]",
        " lead ",
        "tab\there",
        'O\'Brien "Q"',
        "....",
        "é,ü",
    ],
)
def test_every_project_name_is_a_reversible_partition_key(name):
    key = project_key(name)
    assert project_name_of(key) == name
    for reserved in ("|", ",", "[", "]", "..."):
        assert reserved not in key
    # Dagster accepts it as a multi-partition key and gives the name back.
    parsed = partition_key(date(2026, 1, 1), name)
    assert parsed.keys_by_dimension["project"] == key


def test_the_newest_date_partition_is_every_zones_today_at_every_hour():
    day = date(2026, 12, 1)
    for hour in range(24):
        now = datetime(day.year, day.month, day.day, hour, 30, tzinfo=UTC)
        keys = date_partitions.get_partition_keys(current_time=now)
        for offset in range(-12, 15):
            zone = ZoneInfo(f"Etc/GMT{-offset:+d}" if offset else "UTC")
            assert now.astimezone(zone).date().isoformat() in keys, (hour, offset)
        # ...and no day that has begun nowhere yet.
        assert keys[-1] == now.astimezone(ZoneInfo("Etc/GMT-14")).date().isoformat()


@pytest.fixture
def tenants(engine, db_url):
    """Three awkwardly named projects in UTC−5, UTC+14 and UTC−12, on an in-process simulator."""
    simulator = GHLSimulator(list(LOCATIONS), seed=11)
    for loc in LOCATIONS:
        add_project(
            engine, name=loc.name, location_id=loc.location_id, api_key=loc.token, timezone=loc.timezone
        )
    ghl = GHLResource.with_transport(simulator.transport(), limiter=InMemoryRateLimiter())
    resources = {
        "ghl": dg.ResourceDefinition.hardcoded_resource(ghl),
        "warehouse": WarehouseResource(database_url=db_url),
    }
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(
            PROJECTS_PARTITIONS_NAME, [project_key(loc.name) for loc in LOCATIONS]
        )
        yield simulator, instance, resources


def _run(instance, resources, first: date, last: date, *, tags=None):
    job = defs.resolve_job_def("refresh_all_calls")
    return job.execute_in_process(
        instance=instance,
        resources=resources,
        raise_on_error=False,
        tags={
            "dagster/asset_partition_range_start": str(partition_key(first, LOCATIONS[0].name)),
            "dagster/asset_partition_range_end": str(partition_key(last, LOCATIONS[-1].name)),
            **(tags or {}),
        },
    )


def _truth(simulator, loc, first: date, last: date) -> set[str]:
    start, _ = local_window(first, loc.timezone)
    _, end = local_window(last, loc.timezone)
    return {m["id"] for m in simulator.ground_truth(loc.location_id, start, end)}


def _status(instance, keys):
    return instance.get_status_by_partition(
        dg.AssetKey("all_calls"), keys, defs.resolve_assets_def("all_calls").partitions_def
    )


def test_one_revoked_token_leaves_the_other_projects_exactly_right(engine, tenants):
    simulator, instance, resources = tenants
    simulator.revoke_token(KIRITIMATI.location_id)
    first, last = TODAY_UTC - timedelta(days=5), TODAY_UTC - timedelta(days=3)

    result = _run(instance, resources, first, last)

    assert not result.success  # a project failed: the run says so
    for loc in (SMITH, BAKER):
        assert stored_ids(engine, loc.name) == _truth(simulator, loc, first, last)
    assert stored_ids(engine, KIRITIMATI.name) == set()

    run = instance.get_run_by_id(result.run_id)
    summary = json.loads(run.tags["ghl/summary"])
    assert summary["failed_projects"] == {
        KIRITIMATI.name: {"kind": "auth", "reason": "GHL token revoked or invalid"}
    }
    assert summary["new_records"] == sum(len(_truth(simulator, loc, first, last)) for loc in (SMITH, BAKER))
    assert json.loads(run.tags["ghl/failed_projects"]) == {KIRITIMATI.name: "auth"}
    (failure,) = result.get_step_failure_events()
    assert KIRITIMATI.name in failure.step_failure_data.user_failure_data.description

    days = [first + timedelta(days=i) for i in range(3)]
    status = _status(instance, [str(partition_key(d, loc.name)) for d in days for loc in LOCATIONS])
    for key, value in status.items():
        expected = dg.AssetPartitionStatus.FAILED if project_key(KIRITIMATI.name) in key else None
        assert value == (expected or dg.AssetPartitionStatus.MATERIALIZED), key
    for loc in LOCATIONS:
        assert loc.token not in json.dumps(dict(run.tags))


def test_recent_run_syncs_each_projects_own_today_and_never_a_day_not_begun(engine, tenants):
    simulator, instance, resources = tenants
    now = datetime.now(UTC)
    todays = {loc.name: now.astimezone(ZoneInfo(loc.timezone)).date() for loc in LOCATIONS}
    first, last = min(todays.values()) - timedelta(days=1), max(todays.values())

    result = _run(instance, resources, first, last, tags={"ghl/recent_days": "2"})
    assert result.success

    materialized = {m.partition for m in result.asset_materializations_for_node("all_calls")}
    expected = {
        str(partition_key(todays[loc.name] - timedelta(days=back), loc.name))
        for loc in LOCATIONS
        for back in (0, 1)
    }
    assert materialized == expected  # each project: its local yesterday and today, nothing else
    # Kiritimati's today is a partition whatever the UTC hour, and its calls so far are stored.
    kiri_today = todays[KIRITIMATI.name]
    assert kiri_today.isoformat() in date_partitions.get_partition_keys()
    assert stored_ids(engine, KIRITIMATI.name) == _truth(
        simulator, KIRITIMATI, kiri_today - timedelta(days=1), kiri_today
    )
