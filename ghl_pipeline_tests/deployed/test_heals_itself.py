"""Left alone, it heals: the system as deployed, with faults, and no operator action (slow).

A real ``dagster-daemon`` and ``dagster-webserver`` on the repo's ``dagster.yaml`` (Postgres instance
storage), the GHL simulator on loopback with faults on, the embedded Postgres as the warehouse, and the
recovery intervals shortened through the environment variables the README documents. The tests run in
order on one deployment, each fault after the last, like a week in production compressed:

1. a fresh deployment fills its lookback by itself;
2. GHL down while a backfill runs: the failed partitions are retried once GHL is back;
3. the worker and the code server of a running run SIGKILLed: the run is marked failed, retried;
4. the warehouse's Postgres restarted mid-run: the run rides it out;
5. a revoked token: never retried blindly, named on the run and in the sensor's tick, others unharmed;
6. across all of it: no sensor or schedule tick in FAILURE, no duplicate ``ghl_id``.
"""

from __future__ import annotations

import contextlib
import json
import signal
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import psutil
import pytest
import sqlalchemy as sa

from ghl_pipeline.defs.partitions import partition_key
from ghl_pipeline.ghl.simulator import Faults, GHLSimulator, SimLocation
from ghl_pipeline.warehouse.projects import add_project
from ghl_pipeline.warehouse.schema import upgrade
from ghl_pipeline.windows import local_days_window
from ghl_pipeline_tests.deployment import DeployedSystem, deployed_system

pytestmark = pytest.mark.slow

NOW = datetime.now(UTC)
START = NOW.date() - timedelta(days=40)
LOOKBACK = 7

SMITH = SimLocation(
    location_id="smithLoc00000000001",
    token="pit-smith-5e1d-secret",
    name="Smith & Sons, LLC",
    timezone="America/New_York",
    calls_per_day=30,
    start_date=START,
    contacts=40,
)
KIRITIMATI = SimLocation(
    location_id="kiriLoc000000000002",
    token="pit-kiri-9a2c-secret",
    name='Line "Islands" [Pacific] | 24/7',
    timezone="Pacific/Kiritimati",  # UTC+14
    country="KI",
    calls_per_day=25,
    start_date=START,
    contacts=30,
)
BAKER = SimLocation(
    location_id="bakerLoc00000000003",
    token="pit-baker-71f0-secret",
    name="O'Brien... Baker Island",
    timezone="Etc/GMT+12",  # UTC−12
    calls_per_day=20,
    start_date=START,
    contacts=30,
)
REVOKED = SimLocation(
    location_id="revokedLoc000000004",
    token="pit-revoked-3b8e-secret",
    name="Revoked Roofing",
    timezone="America/Chicago",
    calls_per_day=20,
    start_date=START,
    contacts=30,
)
HEALTHY = (SMITH, KIRITIMATI, BAKER)
ALL = (*HEALTHY, REVOKED)

# Faults that stay on throughout: GHL's everyday weather (the client retries through it).
WEATHER = Faults(server_error_rate=0.03, rate_limit_burst_rate=0.02, rate_limit_burst_length=2)

# The README's knobs, shortened so the daemon's recovery shows within minutes.
RECOVERY_ENV = {
    "GHL_SENSOR_INTERVAL_SECONDS": "5",
    "GHL_RETRY_FIRST_DELAY_SECONDS": "5",
    "GHL_HEARTBEAT_SECONDS": "2",
    "GHL_STALE_RUN_SECONDS": "20",
    "GHL_GAP_LOOKBACK_DAYS": str(LOOKBACK),
    "GHL_GAP_RUNS_PER_TICK": "8",
    "GHL_PARTITIONS_START": START.isoformat(),
    "GHL_RECENT_SYNC_CRON": "*/2 * * * *",
}
CONVERGE_TIMEOUT = 240.0
# When the test killed the daemon's code server (epoch seconds), for the tick check of test 6.
KILLED: dict[str, float] = {}
# Dagster's daemon refreshes its workspace (and so replaces a dead code server) every 60 s.
UNREACHABLE_WINDOW = 60 + 30


class Warehouse:
    """The warehouse's embedded Postgres, which the test can restart under the running system."""

    def __init__(self, pgdata) -> None:
        import pgserver

        self.server = pgserver.get_server(pgdata, cleanup_mode="stop")
        self.url = self.server.get_uri().replace("postgresql://", "postgresql+psycopg2://", 1)
        self.engine = sa.create_engine(self.url, poolclass=sa.NullPool)

    def restart(self) -> float:
        """``pg_ctl restart -m fast``: every connection drops; returns how long the server was away."""
        import pgserver

        started = time.monotonic()
        pgserver.pg_ctl(
            ["-w", "-m", "fast", "restart"], pgdata=self.server.pgdata, user=self.server.system_user
        )
        return time.monotonic() - started

    def stop(self) -> None:
        """Stop the server: pgserver's own cleanup loses track of it after a restart (a new postmaster)."""
        import pgserver

        self.engine.dispose()
        with contextlib.suppress(Exception):
            pgserver.pg_ctl(
                ["-w", "-m", "fast", "stop"], pgdata=self.server.pgdata, user=self.server.system_user
            )
        self.server.cleanup()

    def ids(self, project: str, first: date, last: date) -> set[str]:
        with self.engine.connect() as conn:
            return set(
                conn.execute(
                    sa.text(
                        "SELECT ghl_id FROM all_calls WHERE project_name = :p AND call_date BETWEEN :a AND :b"
                    ),
                    {"p": project, "a": first, "b": last},
                ).scalars()
            )


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Iterator[tuple[DeployedSystem, GHLSimulator, Warehouse]]:
    workdir = tmp_path_factory.mktemp("deployed")
    warehouse = Warehouse(workdir / "warehouse_pg")
    upgrade(sa.create_engine(warehouse.url, poolclass=sa.NullPool))
    for loc in ALL:
        # Baker's zone is left to GHL: the pipeline reads it from the location.
        zone = None if loc is BAKER else loc.timezone
        add_project(
            warehouse.engine, name=loc.name, location_id=loc.location_id, api_key=loc.token, timezone=zone
        )
    simulator = GHLSimulator(list(ALL), faults=WEATHER, seed=23)
    server = simulator.serve(host="127.0.0.1", port=0)
    env = {"DATABASE_URL": warehouse.url, "GHL_API_BASE_URL": server.url, **RECOVERY_ENV}
    try:
        with deployed_system(workdir, env=env) as system:
            yield system, simulator, warehouse
    finally:
        server.stop()
        warehouse.stop()


def local_today(loc: SimLocation) -> date:
    return datetime.now(UTC).astimezone(ZoneInfo(loc.timezone)).date()


def truth(simulator: GHLSimulator, loc: SimLocation, first: date, last: date) -> set[str]:
    start, end = local_days_window(first, last, loc.timezone)
    return {m["id"] for m in simulator.ground_truth(loc.location_id, start, end)}


def eventually(
    check: Callable[[], object], *, timeout: float, what: str, system: DeployedSystem, poll: float = 2.0
) -> object:
    """Poll ``check`` until it returns a truthy value; fail with the system's logs after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout:.0f} s\n{system.logs(40)}")
        time.sleep(poll)


def converged(simulator, warehouse, locs, days_back: tuple[int, int]) -> Callable[[], bool]:
    """All of ``locs`` hold exactly GHL's calls for local days today-``days_back[0]``..today-``days_back[1]``."""

    def check() -> bool:
        for loc in locs:
            today = local_today(loc)
            first, last = today - timedelta(days=days_back[0]), today - timedelta(days=days_back[1])
            if warehouse.ids(loc.name, first, last) != truth(simulator, loc, first, last):
                return False
        return True

    return check


def worker_of(system: DeployedSystem, run_id: str) -> int | None:
    """The pid of the process executing ``run_id`` (its heartbeat tag ``ghl/worker``), once it has begun."""
    tags = {t["key"]: t["value"] for t in system.run(run_id)["tags"]}
    worker = tags.get("ghl/worker")
    return int(worker.rsplit(":", 1)[1]) if worker else None


def launch_span(system: DeployedSystem, loc: SimLocation, first: date, last: date) -> str:
    return system.launch_run(
        "refresh_all_calls",
        tags={
            "dagster/asset_partition_range_start": str(partition_key(first, loc.name)),
            "dagster/asset_partition_range_end": str(partition_key(last, loc.name)),
            "ghl/test": "deployed",
        },
    )


# --------------------------------------------------------------------------------------------------


def test_1_a_fresh_deployment_fills_its_lookback_by_itself(world):
    system, simulator, warehouse = world
    # Nothing but the daemon acts: the projects sensor registers every project (awkward names too),
    # the missing-days sensor requests the lookback, the runs sync it through GHL's faults.
    eventually(
        converged(simulator, warehouse, ALL, (LOOKBACK, 1)),
        timeout=CONVERGE_TIMEOUT,
        what="the 7-day lookback of every project",
        system=system,
    )


def test_2_ghl_down_during_a_backfill_then_back_the_failed_partitions_are_retried(world):
    system, simulator, warehouse = world
    simulator.faults = Faults(server_error_rate=1.0)  # GHL answers 5xx to everything
    first = min(local_today(loc) for loc in HEALTHY) - timedelta(days=14)
    last = first + timedelta(days=4)
    # As an engineer selects them in the UI: these days × the three projects (an asset backfill; the
    # asset's policy groups them into one run per project).
    backfill = system.launch_backfill(
        partition_names=[
            str(partition_key(first + timedelta(days=i), loc.name)) for i in range(5) for loc in HEALTHY
        ],
        title="older days while GHL is down",
    )
    done = system.wait_backfill(backfill, timeout=300)
    assert done["runs"] and {r["status"] for r in done["runs"]} == {"FAILURE"}, done

    simulator.faults = WEATHER  # GHL is back
    days_back = tuple((local_today(HEALTHY[0]) - d).days for d in (first, last))
    eventually(
        lambda: all(
            warehouse.ids(loc.name, first, last) == truth(simulator, loc, first, last) for loc in HEALTHY
        ),
        timeout=CONVERGE_TIMEOUT,
        what=f"the backfill's days ({days_back}) after GHL came back",
        system=system,
    )
    retries = [r for r in system.runs() if any(t["key"] == "ghl/retry_of" for t in r["tags"])]
    assert retries, "the failed-partitions sensor retried them"


def test_3_a_run_whose_worker_and_code_server_are_killed_is_failed_and_retried(world):
    system, simulator, warehouse = world
    # Every GHL answer takes 1 s: the run's first requests (location, users) outlast the kill below,
    # which lands as soon as the run's heartbeat names its worker, before anything is materialized.
    simulator.faults = Faults(slow_rate=1.0, slow_seconds=1.0)
    today = local_today(SMITH)
    first, last = today - timedelta(days=30), today - timedelta(days=24)
    run_id = launch_span(system, SMITH, first, last)
    pid = eventually(
        lambda: worker_of(system, run_id), timeout=120, what="the run's worker", system=system, poll=0.2
    )
    worker = psutil.Process(pid)
    code_server = worker.parent()
    worker.send_signal(signal.SIGKILL)
    if code_server is not None:
        code_server.send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    KILLED["code_server"] = time.time()
    simulator.faults = WEATHER

    assert system.run_status(run_id) == "STARTED"  # Dagster itself does not notice
    eventually(
        lambda: system.run_status(run_id) == "FAILURE",
        timeout=180,
        what="the killed run marked failed",
        system=system,
    )
    noticed = time.monotonic() - killed_at
    assert noticed < 120, f"noticed after {noticed:.0f} s"
    eventually(
        lambda: warehouse.ids(SMITH.name, first, last) == truth(simulator, SMITH, first, last),
        timeout=CONVERGE_TIMEOUT,
        what="the killed run's days",
        system=system,
    )
    retried = [r for r in system.runs() if {"key": "ghl/retry_of", "value": run_id} in r["tags"]]
    assert retried and retried[-1]["status"] == "SUCCESS"


def test_4_the_warehouse_restarted_mid_run_the_run_rides_it_out(world):
    system, simulator, warehouse = world
    simulator.faults = Faults(slow_rate=1.0, slow_seconds=0.3)
    today = local_today(KIRITIMATI)
    first, last = today - timedelta(days=30), today - timedelta(days=24)
    run_id = launch_span(system, KIRITIMATI, first, last)
    eventually(lambda: worker_of(system, run_id), timeout=120, what="the run's worker", system=system)
    time.sleep(2)  # mid-sync: contacts, rate-limit slots and upserts all go through the warehouse
    away = warehouse.restart()
    simulator.faults = WEATHER
    assert system.wait_run(run_id, timeout=240) == "SUCCESS", f"restart took {away:.1f} s\n{system.logs(40)}"
    assert warehouse.ids(KIRITIMATI.name, first, last) == truth(simulator, KIRITIMATI, first, last)


def test_5_a_revoked_token_is_never_retried_blindly_and_is_named(world):
    system, simulator, warehouse = world
    simulator.revoke_token(REVOKED.location_id)
    today = local_today(REVOKED)
    first, last = today - timedelta(days=20), today - timedelta(days=18)
    run_id = launch_span(system, REVOKED, first, last)
    assert system.wait_run(run_id, timeout=120) == "FAILURE"
    tags = {t["key"]: t["value"] for t in system.run(run_id)["tags"]}
    assert json.loads(tags["ghl/failed_projects"]) == {REVOKED.name: "auth"}
    assert (
        json.loads(tags["ghl/summary"])["failed_projects"][REVOKED.name]["reason"]
        == "GHL token revoked or invalid"
    )

    # The failed-partitions sensor names it in its tick and launches nothing for it.
    eventually(
        lambda: any(
            t.name == "failed_partitions_sensor" and t.skip_reason and REVOKED.name in t.skip_reason
            for t in system.sensor_and_schedule_ticks()
        ),
        timeout=60,
        what="the sensor naming the revoked project",
        system=system,
    )
    time.sleep(15)  # a few more ticks: still nothing for it
    retries = [r for r in system.runs() if {"key": "ghl/retry_of", "value": run_id} in r["tags"]]
    assert retries == []
    # The others are unharmed: their lookback is still exactly GHL's.
    assert converged(simulator, warehouse, HEALTHY, (LOOKBACK, 1))()


def test_6_no_tick_failed_and_no_call_is_stored_twice(world):
    system, _, warehouse = world
    ticks = system.sensor_and_schedule_ticks()
    assert {t.name for t in ticks} >= {"projects_sensor", "missing_days_sensor", "failed_partitions_sensor"}
    # The FAILURE ticks Dagster itself records: the daemon replaces a dead code server when it next
    # refreshes its workspace (every 60 s, dagster/_daemon/controller.py RELOAD_WORKSPACE_INTERVAL);
    # until then every tick reads "Unable to reach the user code server" (failure count not
    # incremented). Those, in that window after test 3's kill, are the only FAILURE ticks allowed.
    killed = KILLED.get("code_server", float("inf"))
    unreachable = [
        t
        for t in ticks
        if t.status == "FAILURE"
        and "Unable to reach the user code server" in (t.error or "")
        # (a tick's timestamp is its start: one begun just before the kill fails during it)
        and killed - 5 <= t.timestamp <= killed + UNREACHABLE_WINDOW
    ]
    failed = [(t.name, t.timestamp, t.error) for t in ticks if t.status == "FAILURE" and t not in unreachable]
    assert failed == []
    for name in {t.name for t in unreachable}:  # and each ran fine again after the restart
        assert any(
            t.name == name and t.timestamp > killed and t.status != "FAILURE" and t not in unreachable
            for t in ticks
        ), name
    with warehouse.engine.connect() as conn:
        total, distinct = conn.execute(
            sa.text("SELECT count(*), count(DISTINCT ghl_id) FROM all_calls")
        ).one()
    assert total == distinct > 0
