"""Benchmark of ``ghl-pipeline backfill`` against GHL's burst limit (run by hand, not a test).

    .venv/bin/python benchmarks/bench_backfill.py [--days 30] [--projects 10] [--burst-max 5]
        [--burst-interval 4] [--calls-per-day 200] [--workers N]

Serves the GHL simulator on loopback with a scaled-down burst limit per location (GHL's is
100 / 10 s; here e.g. 5 / 4 s, so the limit, not this machine, binds) and runs the real backfill
command (Dagster runs in worker processes, the Postgres-shared limiter) over DAYS × PROJECTS.
Prints the wall time beside the bound the rate limit sets: the requests each location needed ÷
the allowed rate, locations in parallel (the slowest location). Then the same backfill unthrottled
(fresh databases, no burst limit) as a baseline of what the machine and Dagster cost on their own.

Uses an embedded Postgres (pgserver) in a temporary folder; nothing is written to the repo.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ghl_pipeline.ghl.simulator import GHLSimulator, SimLocation  # noqa: E402
from ghl_pipeline.warehouse.projects import add_project  # noqa: E402
from ghl_pipeline.warehouse.schema import upgrade  # noqa: E402


def _locations(n: int, calls_per_day: int, first: date) -> list[SimLocation]:
    zones = ["America/Chicago", "America/New_York", "America/Los_Angeles", "UTC", "America/Denver"]
    return [
        SimLocation(
            location_id=f"benchLoc{i:012d}",
            token=f"pit-bench-{i:02d}-secret",
            name=f"Bench Project {i:02d}",
            timezone=zones[i % len(zones)],
            calls_per_day=calls_per_day,
            contacts=max(150, calls_per_day * 10),
            users=6,
            start_date=first - timedelta(days=3),
        )
        for i in range(n)
    ]


def _database(admin_url: str, name: str) -> str:
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    admin.dispose()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def run_phase(
    label: str, *, admin_url: str, work: Path, args: argparse.Namespace, burst_max: int, interval: float
) -> dict:
    """One backfill over fresh databases against a fresh simulator; returns its figures."""
    today = date.today()
    last = today - timedelta(days=2)
    first = last - timedelta(days=args.days - 1)
    locations = _locations(args.projects, args.calls_per_day, first)
    sim = GHLSimulator(locations, seed=3, burst_max=burst_max, burst_interval_s=interval)
    db_url = _database(admin_url, f"bench_calls_{label}")
    dagster_url = _database(admin_url, f"bench_dagster_{label}")
    engine = sa.create_engine(db_url, poolclass=sa.NullPool)
    upgrade(engine)
    for loc in locations:
        add_project(
            engine, name=loc.name, location_id=loc.location_id, api_key=loc.token, timezone=loc.timezone
        )
    # Generate the simulator's data up front, so its one-off generation cost is not timed.
    for loc in locations:
        sim.ground_truth(loc.location_id, *_window(first, last))
    home = work / f"home_{label}"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    with sim.serve() as server:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GHL_", "DAGSTER_"))}
        env.update(
            DATABASE_URL=db_url,
            DAGSTER_HOME=str(home),
            DAGSTER_PG_URL=dagster_url,
            GHL_API_BASE_URL=server.url,
            GHL_PARTITIONS_START=(first - timedelta(days=10)).isoformat(),
        )
        argv = [sys.executable, "-m", "ghl_pipeline.cli", "backfill", "--from", first.isoformat()]
        argv += ["--to", last.isoformat(), "--workers", str(args.workers or args.projects)]
        started = time.monotonic()
        done = subprocess.run(argv, env=env, capture_output=True, text=True)
        wall = time.monotonic() - started
    if done.returncode != 0:
        sys.exit(f"{label} backfill failed:\n{done.stderr[-3000:]}")
    requests = sim.requests
    per_location = Counter(r.location_id for r in requests if r.status != 429)
    with engine.connect() as conn:
        calls = conn.execute(sa.text("SELECT count(*) FROM all_calls")).scalar_one()
    engine.dispose()
    rate = burst_max / interval
    return {
        "label": label,
        "wall": wall,
        "requests": len(requests),
        "too_many": sum(1 for r in requests if r.status == 429),
        "max_per_location": max(per_location.values()),
        "bound": max(per_location.values()) / rate,
        "calls": calls,
        "runs": done.stdout.strip().splitlines()[-1],
    }


def _window(first: date, last: date):
    from datetime import UTC, datetime, time

    return (
        datetime.combine(first - timedelta(days=1), time.min, tzinfo=UTC),
        datetime.combine(last + timedelta(days=2), time.min, tzinfo=UTC),
    )


def main(argv: list[str] | None = None) -> None:
    """Run the throttled backfill and the unthrottled baseline and print the figures."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--projects", type=int, default=10)
    parser.add_argument("--burst-max", type=int, default=5)
    parser.add_argument("--burst-interval", type=float, default=4.0)
    parser.add_argument("--calls-per-day", type=int, default=200)
    parser.add_argument("--workers", type=int, default=0, help="backfill workers (default: one per project)")
    args = parser.parse_args(argv)

    import pgserver

    with tempfile.TemporaryDirectory(prefix="bench_backfill_") as tmp:
        server = pgserver.get_server(Path(tmp) / "pg", cleanup_mode="delete")
        admin_url = server.get_uri().replace("postgresql://", "postgresql+psycopg2://", 1)
        try:
            throttled = run_phase(
                "throttled",
                admin_url=admin_url,
                work=Path(tmp),
                args=args,
                burst_max=args.burst_max,
                interval=args.burst_interval,
            )
            baseline = run_phase(
                "unthrottled", admin_url=admin_url, work=Path(tmp), args=args, burst_max=10**6, interval=1.0
            )
        finally:
            server.cleanup()

    print(
        f"backfill of {args.days} days x {args.projects} projects, {args.calls_per_day} calls/day/project, "
        f"burst limit {args.burst_max} requests / {args.burst_interval:g} s per location"
    )
    t = throttled
    print(
        f"  throttled:   wall {t['wall']:.1f} s; bound {t['bound']:.1f} s "
        f"({t['max_per_location']} requests at the busiest location / {args.burst_max / args.burst_interval:.2f} "
        f"per s, locations in parallel); ratio {t['wall'] / t['bound']:.2f}x"
    )
    print(
        f"               {t['requests']} requests, {t['too_many']} answered 429, {t['calls']} calls synced, "
        f"{t['requests'] / max(1, t['calls']):.4f} requests per call"
    )
    b = baseline
    print(
        f"  unthrottled: wall {b['wall']:.1f} s; {b['requests']} requests, {b['too_many']} answered 429, "
        f"{b['calls']} calls synced (what the machine and Dagster cost without a rate limit)"
    )
    print(f"  backfill said: {t['runs']}")


if __name__ == "__main__":
    main()
