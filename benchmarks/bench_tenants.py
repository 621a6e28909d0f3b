"""Many tenants at once (issue #12): the all-projects sync, one recent-calls tick, the sensors' ticks.

    .venv/bin/python benchmarks/bench_tenants.py [--projects 200] [--calls-per-day 20]
        [--busy-calls-per-day 2000] [--latency 0.2] [--handful 5] [--lookback-days 120]

Builds PROJECTS simulated GHL locations with modest volume (CALLS-PER-DAY ± 50 %) plus one busy
location (the slowest), in zones from UTC−12 to UTC+14 and with awkward names (commas, ampersands,
quotes, brackets, dots, pipes). The simulator runs in a process of its own on loopback (so its CPU
and memory are not the pipeline's) and delays every answer by LATENCY seconds: real GHL answers in
a few hundred ms, so a tenant's sync is bound by round trips, not by this machine's CPU. The
warehouse and Dagster's storage are databases of one embedded Postgres; the GHL client is the real
``GHLResource`` with the Postgres-shared rate limiter. Every run executes in a child process of its
own (``execute_in_process``), which reports the run's wall time and its peak RSS.

Figures, each beside its bound measured in the same invocation:

1. ``sync_ghl_calls`` of one day for every project vs the same job for the slowest location alone
   (a fresh warehouse each, so neither finds the other's contacts cached). Target ≤ 1.5x.
2. One tick of ``recent_calls_schedule`` on an instance with every project registered: the runs it
   requests (target 1, whatever the count), then that run executed: wall time and peak RSS (target
   < 2 GiB), beside the same for a handful of projects (the busy one among them).
3. The tick time of ``missing_days_sensor``, ``failed_partitions_sensor`` and ``projects_sensor``
   with PROJECTS x LOOKBACK-DAYS partitions (most of them materialized, some gaps, a failed run),
   beside the same for the handful.

Nothing is written to the repo: everything lives in a temporary folder, deleted at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# UTC−12 .. UTC+14, half and three-quarter hours included.
ZONES = [
    "Etc/GMT+12",
    "Pacific/Pago_Pago",
    "Pacific/Honolulu",
    "Pacific/Marquesas",
    "America/Anchorage",
    "America/Los_Angeles",
    "America/Denver",
    "America/Chicago",
    "America/New_York",
    "America/Halifax",
    "America/St_Johns",
    "America/Sao_Paulo",
    "Atlantic/South_Georgia",
    "Atlantic/Azores",
    "UTC",
    "Europe/London",
    "Europe/Berlin",
    "Europe/Athens",
    "Europe/Moscow",
    "Asia/Tehran",
    "Asia/Dubai",
    "Asia/Karachi",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Asia/Dhaka",
    "Asia/Bangkok",
    "Asia/Shanghai",
    "Australia/Eucla",
    "Asia/Tokyo",
    "Australia/Adelaide",
    "Australia/Sydney",
    "Pacific/Noumea",
    "Pacific/Auckland",
    "Pacific/Chatham",
    "Pacific/Tongatapu",
    "Pacific/Kiritimati",
]
NAME_SHAPES = [
    "Tenant {i:03d}",
    "Smith & Sons, LLC #{i}",
    'O\'Brien "Roofing" {i}',
    "[Solar] Co {i}",
    "Wait... What {i}",
    "100% Plumbing {i}",
    "A|B Electric {i}",
    "Müller, Söhne & Töchter {i}",
]
BUSY_NAME = 'Busy & "Slow", Inc.'
DATA_DAYS = 130  # the simulator has calls from this many days ago (the sensors' lookback fits)


# ----------------------------------------------------------------------------------------- tenants


def tenants(args: argparse.Namespace) -> list[dict]:
    """The simulated locations as plain dicts (the simulator process builds the same ones)."""
    rng = random.Random(12)
    start = (datetime.now(UTC) - timedelta(days=DATA_DAYS)).date().isoformat()
    out = [
        {
            "location_id": "busyBenchLoc00000000",
            "token": "pit-bench-busy-secret",
            "name": BUSY_NAME,
            "timezone": "America/Chicago",
            "calls_per_day": args.busy_calls_per_day,
            "contacts": max(300, args.busy_calls_per_day),
            "users": 12,
            "start_date": start,
        }
    ]
    for i in range(args.projects):
        out.append(
            {
                "location_id": f"benchLoc{i:012d}",
                "token": f"pit-bench-{i:04d}-secret",
                "name": NAME_SHAPES[i % len(NAME_SHAPES)].format(i=i),
                "timezone": ZONES[i % len(ZONES)],
                "calls_per_day": max(1, round(args.calls_per_day * rng.uniform(0.5, 1.5))),
                "contacts": 60,
                "users": 4,
                "start_date": start,
            }
        )
    return out


def serve_simulator(spec: dict) -> None:
    """Child process: serve the simulator for ``spec`` on loopback until stdin closes."""
    from ghl_pipeline.ghl.simulator import Faults, GHLSimulator, SimLocation

    locations = [
        SimLocation(**{**t, "start_date": date.fromisoformat(t["start_date"])}) for t in spec["tenants"]
    ]
    faults = Faults(slow_rate=1.0, slow_seconds=spec["latency"]) if spec["latency"] > 0 else None
    sim = GHLSimulator(locations, faults=faults, seed=12)
    # Generate the days the figures sync up front (as bench_backfill does): the simulator makes a
    # location's day on its first request, under its one lock, which real GHL would not charge.
    now = datetime.now(UTC)
    for location in locations:
        sim.ground_truth(location.location_id, now - timedelta(days=6), now + timedelta(days=1))
        sim._contacts_of(location)
        sim._users_of(location)
    server = sim.serve()
    print(server.url, flush=True)
    sys.stdin.read()  # the parent closes our stdin to stop us
    server.stop()


# ------------------------------------------------------------------------------------- child runs


def _instance(dagster_url: str):
    import dagster as dg

    return dg.instance_for_test(
        overrides={"storage": {"postgres": {"postgres_url": dagster_url}}, "telemetry": {"enabled": False}}
    )


def child_run(spec: dict) -> None:
    """Child process: execute one run in-process, print its wall time, peak RSS and summary as JSON."""
    os.environ.update(spec.get("env", {}))
    from ghl_pipeline.definitions import defs
    from ghl_pipeline.defs.resources import GHLResource, WarehouseResource

    ghl = GHLResource(base_url=spec["ghl_url"], max_attempts=spec.get("max_attempts", 6))
    resources = {"ghl": ghl, "warehouse": WarehouseResource(database_url=spec["db_url"])}
    with _instance(spec["dagster_url"]) as instance:
        job = (
            events_floor_job(spec["partitions"])
            if spec["job"] == "events_floor"
            else defs.resolve_job_def(spec["job"])
        )
        started = time.perf_counter()
        result = job.execute_in_process(
            instance=instance,
            resources=resources,
            run_config=spec.get("run_config") or {},
            tags=spec.get("tags") or {},
            raise_on_error=False,
        )
        wall = time.perf_counter() - started
        run = instance.get_run_by_id(result.run_id)
        summary = json.loads(run.tags.get("ghl/summary") or "{}")
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(
        json.dumps(
            {
                "success": result.success,
                "wall": wall,
                "peak_rss_mib": peak_kib / 1024,
                "new": summary.get("new_records"),
                "projects": len(summary.get("projects", {})),
                "failed": summary.get("failed_projects", {}),
                "requests": {n: p["ghl_requests"] for n, p in summary.get("projects", {}).items()},
            }
        )
    )


def events_floor_job(partitions: list[str]):
    """What Dagster alone costs a run that covers these partitions: one materialization each, no GHL.

    The pipeline's runs log one materialization per partition from the op's thread (CONTRACT §4), and
    dagster-postgres writes each event through new connections: a serial floor no parallelism lifts.
    """
    import dagster as dg

    from ghl_pipeline.defs.syncing import ALL_CALLS_KEY

    @dg.op(name="log_materializations")
    def log_materializations(context) -> None:  # noqa: ANN001 - a local annotation Dagster cannot resolve
        for key in partitions:
            metadata = {"fetched": 1, "new_records": 1, "updated_records": 0, "rejected_records": 0}
            context.log_event(
                dg.AssetMaterialization(asset_key=ALL_CALLS_KEY, partition=key, metadata=metadata)
            )
        context.log.info(f"{len(partitions)} partitions")

    @dg.job(name="events_floor", executor_def=dg.in_process_executor)
    def events_floor() -> None:
        log_materializations()

    return events_floor


SIM_PID: int | None = None  # the simulator's process, whose CPU time each run reports


def _sim_cpu() -> float:
    import psutil

    times = psutil.Process(SIM_PID).cpu_times()
    return times.user + times.system


def run_child(spec: dict, env: dict) -> dict:
    argv = [sys.executable, __file__, "--child-run", json.dumps(spec)]
    profile = spec.get("profile")
    if profile:  # py-spy's collapsed stacks: of the threads holding the GIL, or ("--idle") of all
        spy = str(Path(sys.executable).with_name("py-spy"))
        argv = [
            spy,
            "record",
            *os.environ.get("BENCH_PYSPY_MODE", "--gil").split(),
            "--threads",
            "--format",
            "raw",
            "-r",
            "50",
            "-o",
            profile,
            "--",
            *argv,
        ]
    sim_cpu = _sim_cpu()
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    sim_cpu = _sim_cpu() - sim_cpu
    if done.returncode != 0:
        sys.exit(f"child run failed:\n{done.stderr[-4000:]}")
    figures = json.loads([line for line in done.stdout.splitlines() if line.startswith("{")][-1])
    figures["sim_cpu"] = sim_cpu
    if figures["success"] == bool(spec.get("expect_failure")):
        sys.exit(f"run {spec['job']} failed: {figures['failed']}\n{done.stderr[-3000:]}")
    return figures


# ------------------------------------------------------------------------------------------ worlds


def _database(admin_url: str, name: str) -> str:
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    admin.dispose()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def warehouse(admin_url: str, name: str, projects: list[dict]) -> str:
    """A fresh warehouse database holding ``projects``."""
    import sqlalchemy as sa

    from ghl_pipeline.warehouse.projects import add_project
    from ghl_pipeline.warehouse.schema import upgrade

    url = _database(admin_url, name)
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    upgrade(engine)
    for t in projects:
        add_project(
            engine, name=t["name"], location_id=t["location_id"], api_key=t["token"], timezone=t["timezone"]
        )
    engine.dispose()
    return url


def dagster_db(admin_url: str, name: str, projects: list[dict]) -> str:
    """A fresh Dagster storage database with every project registered (as the projects sensor would)."""
    from ghl_pipeline.defs.partitions import PROJECTS_PARTITIONS_NAME, project_key

    url = _database(admin_url, name)
    with _instance(url) as instance:
        instance.add_dynamic_partitions(PROJECTS_PARTITIONS_NAME, [project_key(t["name"]) for t in projects])
    return url


def local_today(tz: str) -> date:
    return datetime.now(UTC).astimezone(ZoneInfo(tz)).date()


# --------------------------------------------------------------------------------------- figure 1


def figure_sync(
    admin_url: str, env: dict, ghl_url: str, all_tenants: list[dict], day: date, profile: str | None = None
) -> dict:
    config = {"date_from": day.isoformat(), "date_to": day.isoformat()}
    base = {"ghl_url": ghl_url, "job": "sync_ghl_calls"}
    solo = run_child(
        {
            **base,
            "db_url": warehouse(admin_url, "bt_wh_solo", all_tenants),
            "dagster_url": _database(admin_url, "bt_dg_solo"),
            "run_config": {"ops": {"sync_calls": {"config": {**config, "project_name": BUSY_NAME}}}},
        },
        env,
    )
    everyone = run_child(
        {
            **base,
            "db_url": warehouse(admin_url, "bt_wh_all", all_tenants),
            "dagster_url": _database(admin_url, "bt_dg_all"),
            "run_config": {"ops": {"sync_calls": {"config": config}}},
            "profile": profile and profile + ".sync.txt",
        },
        env,
    )
    from ghl_pipeline.defs.partitions import partition_key

    floor = run_child(
        {
            "job": "events_floor",
            "ghl_url": ghl_url,
            "db_url": "",
            "dagster_url": _database(admin_url, "bt_dg_floor"),
            "partitions": [str(partition_key(day, t["name"])) for t in all_tenants],
        },
        env,
    )
    return {"solo": solo, "all": everyone, "floor": floor}


# --------------------------------------------------------------------------------------- figure 2


def figure_tick(admin_url: str, env: dict, ghl_url: str, world: dict, profile: str | None = None) -> dict:
    import dagster as dg

    from ghl_pipeline.defs.recovery import recent_calls_schedule
    from ghl_pipeline.defs.resources import WarehouseResource

    with _instance(world["dagster_url"]) as instance:
        context = dg.build_schedule_context(
            instance=instance,
            resources={"warehouse": WarehouseResource(database_url=world["db_url"])},
            scheduled_execution_time=datetime.now(UTC),
        )
        started = time.perf_counter()
        data = recent_calls_schedule.evaluate_tick(context)
        tick = time.perf_counter() - started
    requests = list(data.run_requests or [])
    runs = [
        run_child(
            {
                "ghl_url": ghl_url,
                "job": "refresh_all_calls",
                "db_url": world["db_url"],
                "dagster_url": world["dagster_url"],
                "tags": dict(r.tags),
                "profile": profile and profile + ".tick.txt",
            },
            env,
        )
        for r in requests
    ]
    return {"requests": len(requests), "tick": tick, "runs": runs}


# --------------------------------------------------------------------------------------- figure 3


def seed_partitions(world: dict, projects: list[dict], lookback: int) -> int:
    """Materialize most of the lookback window of every project (gaps every 10th day); one failed run."""
    import dagster as dg
    from dagster._core.events import DagsterEvent, DagsterEventType, StepMaterializationData
    from dagster._core.events.log import EventLogEntry
    from dagster._core.instance.utils import RUNLESS_JOB_NAME, RUNLESS_RUN_ID

    from ghl_pipeline.defs.partitions import partition_key
    from ghl_pipeline.defs.syncing import ALL_CALLS_KEY

    entries = []
    for t in projects:
        yesterday = local_today(t["timezone"]) - timedelta(days=1)
        for back in range(lookback):
            if back % 10 == 3:
                continue  # a gap for the missing-days sensor
            day = yesterday - timedelta(days=back)
            materialization = dg.AssetMaterialization(
                asset_key=ALL_CALLS_KEY, partition=str(partition_key(day, t["name"]))
            )
            event = DagsterEvent(
                event_type_value=DagsterEventType.ASSET_MATERIALIZATION.value,
                event_specific_data=StepMaterializationData(materialization),
                job_name=RUNLESS_JOB_NAME,
            )
            entries.append(
                EventLogEntry(
                    user_message="",
                    level=20,
                    job_name=RUNLESS_JOB_NAME,
                    run_id=RUNLESS_RUN_ID,
                    error_info=None,
                    timestamp=time.time(),
                    dagster_event=event,
                )
            )
    with _instance(world["dagster_url"]) as instance:
        # Written in batches (what a run's materializations amount to), not one runless event each.
        for i in range(0, len(entries), 1000):
            instance.event_log_storage.store_event_batch(entries[i : i + 1000])
    return len(entries)


def failed_run(env: dict, world: dict, projects: list[dict]) -> dict:
    """A refresh run over three recent days of every project while GHL is unreachable: all of it FAILED."""
    from ghl_pipeline.defs.partitions import partition_key

    first = min(local_today(t["timezone"]) for t in projects) - timedelta(days=4)
    last = first + timedelta(days=2)
    names = [t["name"] for t in projects]
    tags = {
        "dagster/asset_partition_range_start": str(partition_key(first, names[0])),
        "dagster/asset_partition_range_end": str(partition_key(last, names[-1])),
    }
    spec = {
        "ghl_url": "http://127.0.0.1:9",  # nothing listens on the discard port: connection refused
        "max_attempts": 1,
        "job": "refresh_all_calls",
        "db_url": world["db_url"],
        "dagster_url": world["dagster_url"],
        "tags": tags,
        "expect_failure": True,
    }
    return run_child(spec, env)


def figure_sensors(world: dict, rounds: int) -> dict:
    import dagster as dg

    from ghl_pipeline.defs.recovery import failed_partitions_sensor, missing_days_sensor, projects_sensor
    from ghl_pipeline.defs.resources import WarehouseResource

    out = {}
    with _instance(world["dagster_url"]) as instance:
        for sensor in (missing_days_sensor, failed_partitions_sensor, projects_sensor):
            times, requested = [], 0
            for _ in range(rounds):
                context = dg.build_sensor_context(
                    instance=instance,
                    resources={"warehouse": WarehouseResource(database_url=world["db_url"])},
                )
                started = time.perf_counter()
                data = sensor.evaluate_tick(context)
                times.append(time.perf_counter() - started)
                requested = len(data.run_requests or [])
            out[sensor.name] = {"first": times[0], "median": statistics.median(times), "requests": requested}
    return out


# ------------------------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--projects", type=int, default=200, help="modest projects (the busy one comes on top)"
    )
    parser.add_argument("--calls-per-day", type=int, default=20)
    parser.add_argument("--busy-calls-per-day", type=int, default=2000)
    parser.add_argument("--latency", type=float, default=0.2, help="seconds the simulator delays each answer")
    parser.add_argument(
        "--handful", type=int, default=5, help="projects of the small baseline (busy one included)"
    )
    parser.add_argument("--lookback-days", type=int, default=120)
    parser.add_argument("--sensor-rounds", type=int, default=3)
    parser.add_argument("--skip", default="", help="comma-separated figures to skip: sync,tick,sensors")
    parser.add_argument(
        "--profile", help="py-spy the all-projects sync and the big tick's run into PROFILE.{sync,tick}.txt"
    )
    parser.add_argument("--child-run", help=argparse.SUPPRESS)
    parser.add_argument("--serve-simulator", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_run:
        return child_run(json.loads(args.child_run))
    if args.serve_simulator:
        return serve_simulator(json.loads(args.serve_simulator))
    skip = set(filter(None, args.skip.split(",")))

    import pgserver

    from ghl_pipeline.warehouse.db import normalise_url

    all_tenants = tenants(args)
    handful = all_tenants[: args.handful]  # the busy one and a few modest ones
    os.environ["GHL_GAP_LOOKBACK_DAYS"] = str(args.lookback_days)
    os.environ["GHL_PARTITIONS_START"] = (date.today() - timedelta(days=DATA_DAYS + 5)).isoformat()
    wall_started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench_tenants_") as tmp:
        server = pgserver.get_server(Path(tmp) / "pg", cleanup_mode="delete")
        admin_url = normalise_url(server.get_uri())
        sim = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--serve-simulator",
                json.dumps({"tenants": all_tenants, "latency": args.latency}),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        global SIM_PID
        SIM_PID = sim.pid
        try:
            ghl_url = sim.stdout.readline().strip()
            if not ghl_url.startswith("http"):
                sys.exit("the simulator did not start")
            env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "DATABASE_URL"))}
            env["DAGSTER_HOME"] = tmp
            results: dict = {}
            day = date.today() - timedelta(days=3)
            if "sync" not in skip:
                results["sync"] = figure_sync(admin_url, env, ghl_url, all_tenants, day, args.profile)
            big = {
                "db_url": warehouse(admin_url, "bt_wh_big", all_tenants),
                "dagster_url": dagster_db(admin_url, "bt_dg_big", all_tenants),
            }
            small = {
                "db_url": warehouse(admin_url, "bt_wh_small", handful),
                "dagster_url": dagster_db(admin_url, "bt_dg_small", handful),
            }
            if "tick" not in skip:
                results["tick_small"] = figure_tick(admin_url, env, ghl_url, small)
                results["tick_big"] = figure_tick(admin_url, env, ghl_url, big, args.profile)
            if "sensors" not in skip:
                started = time.perf_counter()
                seeded = seed_partitions(big, all_tenants, args.lookback_days)
                seed_partitions(small, handful, args.lookback_days)
                results["seed"] = {"materialized": seeded, "seconds": time.perf_counter() - started}
                # A run that failed for every project (GHL unreachable), old enough to be retried now.
                os.environ["GHL_RETRY_FIRST_DELAY_SECONDS"] = "1"
                env["GHL_RETRY_FIRST_DELAY_SECONDS"] = "1"
                failed_run(env, big, all_tenants)
                failed_run(env, small, handful)
                time.sleep(1.5)
                results["sensors_small"] = figure_sensors(small, args.sensor_rounds)
                results["sensors_big"] = figure_sensors(big, args.sensor_rounds)
        finally:
            sim.stdin.close()
            sim.wait(timeout=30)
            server.cleanup()
    report(args, results, len(all_tenants), day, time.perf_counter() - wall_started)


def report(args: argparse.Namespace, r: dict, n: int, day: date, total: float) -> None:
    gib = 1024
    print(
        f"bench_tenants: {n} projects ({args.projects} with ~{args.calls_per_day} calls/day ±50 %, one busy with "
        f"{args.busy_calls_per_day}), zones UTC−12..UTC+14, simulator latency {args.latency:g} s per request, "
        f"GHL_PROJECT_WORKERS={os.environ.get('GHL_PROJECT_WORKERS', 'default')}, {os.cpu_count()} CPUs"
    )
    rows: list[tuple[str, str, str, str]] = []
    if "sync" in r:
        solo, everyone = r["sync"]["solo"], r["sync"]["all"]
        ratio = everyone["wall"] / solo["wall"]
        busy_req = solo["requests"].get(BUSY_NAME)
        print(
            f"\n1. sync_ghl_calls of {day} (one local day each)\n"
            f"   slowest location alone: {solo['wall']:.2f} s, {solo['new']} new calls, {busy_req} GHL requests\n"
            f"   all {everyone['projects']} projects:       {everyone['wall']:.2f} s, {everyone['new']} new calls, "
            f"{sum(everyone['requests'].values())} GHL requests, peak RSS {everyone['peak_rss_mib']:.0f} MiB\n"
            f"   simulator CPU during each: {solo['sim_cpu']:.1f} s | {everyone['sim_cpu']:.1f} s "
            "(it answers every location under one lock; real GHL does not)"
        )
        floor = r["sync"]["floor"]
        print(
            f"   Dagster alone logging {everyone['projects']} materializations in one run (no GHL, no warehouse): "
            f"{floor['wall']:.2f} s"
        )
        rows.append(("all-projects sync / slowest alone", f"{ratio:.2f}x", "<= 1.5x", _ok(ratio <= 1.5)))
        rows.append(
            (
                "all-projects sync / Dagster's event floor",
                f"{everyone['wall'] / floor['wall']:.2f}x",
                "(no target)",
                "",
            )
        )
    if "tick_big" in r:
        print("\n2. one tick of recent_calls_schedule (today + yesterday of every project), its run executed")
        for label, key in ((f"{args.handful} projects", "tick_small"), (f"{n} projects", "tick_big")):
            t = r[key]
            run = t["runs"][0] if t["runs"] else {}
            print(
                f"   {label:>13}: {t['requests']} run request(s), tick {t['tick'] * 1000:.0f} ms; run wall "
                f"{run.get('wall', 0):.2f} s, peak RSS {run.get('peak_rss_mib', 0):.0f} MiB, "
                f"{run.get('projects', 0)} projects synced, {run.get('new', 0)} new calls"
            )
        big, small = r["tick_big"], r["tick_small"]
        rows.append(
            (
                "runs launched per tick",
                str(big["requests"]),
                f"1 (as for {args.handful})",
                _ok(big["requests"] == 1),
            )
        )
        peak = max((run["peak_rss_mib"] for run in big["runs"]), default=0)
        rows.append(
            ("peak RSS of the tick's run", f"{peak:.0f} MiB", f"< {2 * gib} MiB", _ok(peak < 2 * gib))
        )
        if big["runs"] and small["runs"]:
            ratio = big["runs"][0]["wall"] / small["runs"][0]["wall"]
            rows.append((f"tick run wall / {args.handful} projects'", f"{ratio:.2f}x", "(no target)", ""))
    if "sensors_big" in r:
        s = r["seed"]
        print(
            f"\n3. sensor ticks with {n} x {args.lookback_days} days of partitions ({s['materialized']} materialized, "
            f"seeded in {s['seconds']:.0f} s; a failed run over 3 days of every project), first tick and "
            f"median of {args.sensor_rounds}"
        )
        for name in r["sensors_big"]:
            b, sm = r["sensors_big"][name], r["sensors_small"][name]
            print(
                f"   {name:<25} {n} projects: first {b['first']:.2f} s, median {b['median']:.2f} s "
                f"({b['requests']} requests) | {args.handful} projects: first {sm['first']:.2f} s, "
                f"median {sm['median']:.2f} s"
            )
            rows.append(
                (f"{name} tick", f"{b['median']:.2f} s", f"(vs {sm['median']:.2f} s for {args.handful})", "")
            )
    print("\n   figure                                  measured     target / bound")
    for what, value, target, verdict in rows:
        print(f"   {what:<39} {value:>10}   {target} {verdict}")
    print(f"\n   benchmark wall time {total:.0f} s")


def _ok(met: bool) -> str:
    return "met" if met else "MISSED"


if __name__ == "__main__":
    main()
