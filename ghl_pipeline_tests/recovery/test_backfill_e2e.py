"""Two months of three projects through GHL's faults, a backfill killed midway, and the pipeline healing.

``ghl-pipeline backfill`` runs as a subprocess against the simulator served on loopback (5xx
answers, 429 bursts, one expired export cursor per location) and is SIGKILLed, workers and all,
after its first finished run. The sensors then find what is missing or failed, their runs execute,
the same backfill command resumes, and ``all_calls`` must equal the simulator's ground truth exactly.

Runs orphaned by the kill stay STARTED in Dagster's storage: nothing is left to finish them. In
production Dagster's run monitoring (the daemon) marks such runs failed; here the test does what
the monitor would, with ``instance.report_run_failed``, and the sensors take it from there.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import dagster as dg
import pytest
import sqlalchemy as sa

from ghl_pipeline.config import partitions_start
from ghl_pipeline.definitions import defs
from ghl_pipeline.defs import recovery
from ghl_pipeline.defs.recovery import failed_partitions_sensor, missing_days_sensor
from ghl_pipeline.defs.resources import GHLResource, WarehouseResource
from ghl_pipeline.ghl.simulator import Faults, GHLSimulator, SimLocation
from ghl_pipeline.warehouse.projects import add_project
from ghl_pipeline_tests.recovery.helpers import (
    StderrWatcher,
    cli,
    cli_env,
    dagster_home,
    start_cli,
    stored_id_counts,
    truth_ids,
)

TODAY = datetime.now(UTC).date()
# Two months, ending on a day already over in every zone below.
FIRST, LAST = TODAY - timedelta(days=61), TODAY - timedelta(days=2)
LOCATIONS = [
    SimLocation(
        location_id=f"e2eLoc{i:013d}",
        token=f"pit-e2e-{i}-4d2c-secret",
        name=name,
        timezone=tz,
        calls_per_day=per_day,
        contacts=80,
        users=3,
        start_date=FIRST - timedelta(days=10),
    )
    for i, (name, tz, per_day) in enumerate(
        [
            # Names Dagster reserves characters of (encoded in partition keys) and the zone furthest ahead.
            ("Smith & Sons, LLC", "America/Chicago", 8),
            ('Line "Islands" [Pacific] | 24/7', "Pacific/Kiritimati", 5),
            # 18 a day: a month is two export pages, so the expired cursor is met and survived.
            ("Initech HVAC", "America/Los_Angeles", 18),
        ]
    )
]
FAULTS = Faults(server_error_rate=0.1, rate_limit_burst_rate=0.02, cursor_expiry_once=True)


@pytest.fixture
def world(db_url, engine, empty_db_url, tmp_path, monkeypatch):
    """The simulator on loopback, the projects, a Postgres-backed Dagster home and this process in it."""
    # A 1-s burst window keeps the simulated 429 bursts' waits short (the client waits a window).
    sim = GHLSimulator(LOCATIONS, faults=FAULTS, seed=5, burst_max=100, burst_interval_s=1.0)
    for loc in LOCATIONS:
        add_project(
            engine, name=loc.name, location_id=loc.location_id, api_key=loc.token, timezone=loc.timezone
        )
    with sim.serve() as server:
        home = dagster_home(tmp_path / "dagster_home")
        env = cli_env(
            db_url=db_url,
            dagster_pg_url=empty_db_url,
            home=home,
            ghl_url=server.url,
            partitions_start=partitions_start(),
        )
        monkeypatch.setenv("DAGSTER_HOME", str(home))
        monkeypatch.setenv("DAGSTER_PG_URL", empty_db_url)
        monkeypatch.setenv("DATABASE_URL", db_url)
        yield sim, server, env


def _backfill(env, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        cli("backfill", "--from", FIRST.isoformat(), "--to", LAST.isoformat(), *extra),
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _execute(instance, requests, resources) -> list[bool]:
    job = defs.resolve_job_def("refresh_all_calls")
    return [
        job.execute_in_process(
            instance=instance, tags=r.tags, resources=resources, raise_on_error=False
        ).success
        for r in requests
    ]


@pytest.mark.slow
def test_killed_backfill_heals_to_the_exact_ground_truth(world, engine, db_url, monkeypatch):
    sim, server, env = world

    first = start_cli(
        env, "backfill", "--from", FIRST.isoformat(), "--to", LAST.isoformat(), "--workers", "2"
    )
    stderr = StderrWatcher(first)
    progress = stderr.wait_for("[1/", timeout=90)
    assert progress and "[1/6]" in progress, stderr.text()[-3000:]  # 3 projects × (31 + 29 days)
    # Kill once a later run is in progress and talking to GHL: midway through its sync.
    instance = dg.DagsterInstance.get()
    seen = len(sim.requests)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and first.poll() is None:
        if len(sim.requests) >= seen + 3 and instance.get_runs(
            filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])
        ):
            break
        time.sleep(0.02)
    os.killpg(first.pid, signal.SIGKILL)  # the backfill and its worker processes
    first.wait(timeout=10)
    assert first.returncode == -signal.SIGKILL, "the backfill ended before it could be killed"

    orphans = instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))
    assert orphans, "the kill left no run in progress"
    for run in orphans:  # what Dagster's run monitoring does for a run whose process died
        instance.report_run_failed(run)

    resources = {
        "ghl": GHLResource(base_url=server.url),  # the shared Postgres limiter, like every run
        "warehouse": WarehouseResource(database_url=db_url),
    }
    context = lambda: dg.build_sensor_context(  # noqa: E731
        instance=instance, resources={"warehouse": resources["warehouse"]}
    )
    sensor_now = datetime.now(UTC) + timedelta(minutes=2)  # past the first retry's 1-minute delay
    monkeypatch.setattr(recovery, "_now", lambda: sensor_now)
    yesterdays = {
        loc.name: sensor_now.astimezone(ZoneInfo(loc.timezone)).date() - timedelta(days=1)
        for loc in LOCATIONS
    }
    # The gap sensor looks back no further than the backfill's first day, so both cover one window.
    monkeypatch.setenv("GHL_GAP_LOOKBACK_DAYS", str(min((y - FIRST).days for y in yesterdays.values()) + 1))

    retries = failed_partitions_sensor(context()).run_requests or []
    # Only what the killed runs left unrecorded is retried (a run killed after its last write is not).
    assert {r.tags["ghl/trigger"] for r in retries} <= {"retry"}
    assert {r.tags["ghl/retry_of"] for r in retries} <= {o.run_id for o in orphans}
    assert all(_execute(instance, retries, resources))
    gaps = missing_days_sensor(context()).run_requests or []
    assert gaps, "the killed backfill left days nobody has synced"
    assert len(gaps) <= recovery.gap_runs_per_tick()
    assert all(_execute(instance, gaps, resources))

    resumed = _backfill(env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "0 failed" in resumed.stdout and "already materialized (skipped)" in resumed.stdout
    skipped = int(resumed.stdout.split(" failed, ")[1].split(" days")[0])
    assert skipped > 0

    # Healed: nothing missing or failed is left for the sensors.
    assert not missing_days_sensor(context()).run_requests
    assert not failed_partitions_sensor(context()).run_requests

    outcomes = {r.outcome for r in sim.requests}
    assert {"fault:5xx", "cursor_expired"} <= outcomes, outcomes  # the faults really were met
    for loc in LOCATIONS:
        stored = stored_id_counts(engine, loc.name)
        assert max(stored.values()) == 1, f"{loc.name}: duplicate rows"
        # The gap sensor may also have synced the project's days after LAST, up to its yesterday.
        last = max(LAST, yesterdays[loc.name])
        assert set(stored) == truth_ids(sim, loc, FIRST, last), loc.name


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--from", "2026-03-10", "--to", "2026-03-01"], "--to"),
        (["--from", "2026-03-01", "--to", "2026-03-02", "--project", "Nobody Inc"], "--project"),
        (["--from", "2020-01-01", "--to", "2020-01-05"], "--from"),
    ],
)
def test_backfill_refuses_bad_input_with_one_line_naming_the_option(world, engine, args, option):
    sim, _server, env = world
    done = subprocess.run(cli("backfill", *args), env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    reason = [line for line in done.stderr.splitlines() if line.startswith("ghl-pipeline backfill:")]
    assert len(reason) == 1 and reason[0] == done.stderr.strip().splitlines()[-1]
    assert reason[0].startswith(f"ghl-pipeline backfill: {option}"), reason
    assert "Traceback" not in done.stderr
    assert sim.requests == []
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM all_calls")).scalar_one() == 0
    assert dg.DagsterInstance.get().get_runs() == []
