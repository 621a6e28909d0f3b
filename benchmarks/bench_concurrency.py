"""The dashboard's sync while a backfill of every demo project runs, on a real webserver + daemon.

    .venv/bin/python benchmarks/bench_concurrency.py [--config pool] [--compare default,queued,pool]
        [--rounds 5] [--days 90] [--busy-calls-per-day 3000] [--max-runs 3] [--lane 2] [--dequeue 1]

For each instance configuration it starts the system as deployed (``ghl_pipeline_tests.deployment``:
Postgres instance storage, ``dagster-webserver`` and ``dagster-daemon`` on the repo's workspace.yaml,
sensors and schedules stopped before the daemon starts so that only this benchmark launches runs),
the GHL simulator's demo projects on loopback (GHL's burst limit, 100 requests / 10 s per location) and
an embedded warehouse Postgres (a fresh database per configuration). Then:

1. idle: ``--rounds`` launches of ``sync_ghl_calls`` for today of Acme Roofing over GraphQL, each
   timed from launch to SUCCESS (tagged ``dagster/priority`` in the queued configurations), before
   the backfill and ``--rounds`` more after it (the idle baseline brackets the backfill);
2. an asset backfill of ``all_calls`` over ``--days`` days × every demo project (one range, as the UI
   launches it; the asset's policy makes one run per project per ≤31 days), and while it runs the same
   timed launches, sampling every 0.5 s the live run-worker processes and their total RSS;
3. it waits for the backfill to finish and prints, per configuration, the medians (idle, during,
   ratio; the target is ≤ 1.5x), the dashboard runs' median queue wait, the peak run processes and
   RSS, the most runs STARTED at once (from the run records), and the backfill's wall time.

Configurations (``--max-runs`` M, ``--lane`` L, ``--dequeue`` D seconds):

- ``recommended`` (the default): the repo's ``dagster.yaml`` as it is (the ``pool1`` configuration:
  M=3, L=1, D=1; the dashboard's job carries ``dagster/priority: 10``);
- ``default``: Dagster's ``DefaultRunCoordinator`` (every run launches at once; the repo's choice
  before issue #10);
- ``queued``: QueuedRunCoordinator, ``dequeue_interval_seconds: D``, ``max_concurrent_runs: M``,
  dashboard runs tagged ``dagster/priority: 10``;
- ``queued5``: ``queued`` with Dagster's default dequeue interval (5 s);
- ``tag``: ``queued`` + ``tag_concurrency_limits: [{key: dagster/backfill, limit: L}]`` (asset
  backfill runs carry that tag): L lanes for backfills, the rest for everything else;
- ``pool``: ``queued`` + ``pools: {granularity: run, default_limit: L}``: every run of the
  ``all_calls`` asset (``@asset(pool="ghl_all_calls")``) holds a pool slot, so at most L of them run
  and M - L slots stay free for the dashboard's ``sync_ghl_calls`` (which uses no pool);
- ``pool5``: ``pool`` with the 5 s default dequeue interval;
- ``pool1``: ``pool`` with a backfill lane of 1.

``--busy-calls-per-day`` scales the busy demo project (Globex Solar; the simulator's default is
3000) to keep the wall time down; what was used is printed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import make_url

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ghl_pipeline.ghl.simulator import GHLSimulator  # noqa: E402
from ghl_pipeline.warehouse.projects import add_project  # noqa: E402
from ghl_pipeline.warehouse.schema import upgrade  # noqa: E402
from ghl_pipeline_tests.deployment import deployed_system, embedded_postgres  # noqa: E402

STORAGE = """\
storage:
  postgres:
    postgres_url:
      env: DAGSTER_PG_URL
telemetry:
  enabled: false
"""
QUEUED = """\
run_coordinator:
  module: dagster._core.run_coordinator
  class: QueuedRunCoordinator
  config:
    dequeue_interval_seconds: {dequeue}
concurrency:
  runs:
    max_concurrent_runs: {max_runs}
"""
TAG_LANE = """\
    tag_concurrency_limits:
      - key: dagster/backfill
        limit: {lane}
"""
POOL_LANE = """\
  pools:
    granularity: run
    default_limit: {lane}
"""
CONFIG_NAMES = ("recommended", "default", "queued", "queued5", "tag", "pool", "pool5", "pool1")
RECOMMENDED = REPO / "dagster.yaml"
DEFAULT_COORDINATOR = """\
run_coordinator:
  module: dagster._core.run_coordinator.default_run_coordinator
  class: DefaultRunCoordinator
"""


def instance_yaml(name: str, *, max_runs: int, lane: int, dequeue: int) -> str:
    """The dagster.yaml of configuration ``name``."""
    if name == "default":
        return STORAGE + DEFAULT_COORDINATOR
    if name == "recommended":
        return RECOMMENDED.read_text()
    interval = 5 if name.endswith("5") else dequeue
    text = STORAGE + QUEUED.format(dequeue=interval, max_runs=max_runs)
    if name == "tag":
        text += TAG_LANE.format(lane=lane)
    if name.startswith("pool"):
        text += POOL_LANE.format(lane=1 if name == "pool1" else lane)
    return text


@dataclass
class Sampler:
    """Samples the live run workers every ``interval`` seconds in a thread."""

    system: object
    interval: float = 0.5
    peak_count: int = 0
    peak_rss: int = 0
    samples: int = 0
    counts: list[int] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> Sampler:
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                workers = self.system.run_processes()
            except Exception:  # a process vanished mid-scan; take the next sample
                workers = None
            if workers is not None:
                self.samples += 1
                self.counts.append(len(workers))
                self.peak_count = max(self.peak_count, len(workers))
                self.peak_rss = max(self.peak_rss, sum(w.rss for w in workers))
            self._stop.wait(self.interval)


def _database(admin_url: str, name: str) -> str:
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    admin.dispose()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def _max_started_at_once(runs: list[dict]) -> int:
    """The most runs between startTime and endTime at one moment (from the run records)."""
    edges = []
    for run in runs:
        if run.get("startTime"):
            edges.append((run["startTime"], 1))
            edges.append((run.get("endTime") or float("inf"), -1))
    best = now = 0
    for _, delta in sorted(edges, key=lambda e: (e[0], e[1])):
        now += delta
        best = max(best, now)
    return best


def timed_sync(system, config: dict, tags: dict[str, str]) -> tuple[float, dict[str, float]]:
    """One dashboard sync: launch→SUCCESS seconds, and its phases (queue, start-up, work) in seconds."""
    started = time.perf_counter()
    run_id = system.launch_run("sync_ghl_calls", config, tags)
    status = system.wait_run(run_id, timeout=900, poll=0.05)
    elapsed = time.perf_counter() - started
    if status != "SUCCESS":
        raise SystemExit(f"sync_ghl_calls {run_id} ended {status}\n{system.logs()}")
    ev = system.run_lifecycle(run_id)
    created = system.run(run_id)["creationTime"]
    launched = ev.get("RunStartingEvent", created)
    begun = ev.get("RunStartEvent", launched)
    phases = {
        "queue": launched - created,  # QUEUED until the coordinator launched it
        "startup": begun - launched,  # STARTING: the run worker's process spawns and loads the code
        "work": ev.get("RunSuccessEvent", begun) - begun,
    }
    return elapsed, phases


def measure(name: str, args, *, simulator, server_url: str, admin_url: str, work: Path) -> dict:
    """Idle and during-backfill dashboard latency and the backfill's footprint under one configuration."""
    yaml_text = instance_yaml(name, max_runs=args.max_runs, lane=args.lane, dequeue=args.dequeue)
    db_url = _database(admin_url, f"bench_conc_{name}")
    engine = sa.create_engine(db_url, poolclass=sa.NullPool)
    upgrade(engine)
    locations = simulator.locations
    for loc in locations:
        add_project(
            engine, name=loc.name, location_id=loc.location_id, api_key=loc.token, timezone=loc.timezone
        )
    engine.dispose()
    acme = locations[0]
    today = datetime.now(UTC).astimezone(ZoneInfo(acme.timezone)).date().isoformat()
    sync_config = {
        "ops": {"sync_calls": {"config": {"date_from": today, "date_to": today, "project_name": acme.name}}}
    }
    tags = {} if name == "default" else {"dagster/priority": str(args.priority)}
    last = date.today() - timedelta(days=1)
    first = last - timedelta(days=args.days - 1)
    env = {
        "DATABASE_URL": db_url,
        "GHL_API_BASE_URL": server_url,
        "GHL_PARTITIONS_START": (first - timedelta(days=5)).isoformat(),
    }
    out: dict = {"name": name, "yaml": yaml_text}
    with deployed_system(work / name, env=env, dagster_yaml=yaml_text, stop_instigators=True) as system:
        system.add_dynamic_partitions([loc.name for loc in locations])
        if args.pool_limit is not None:  # at runtime, over the yaml's pools.default_limit
            system.set_pool_limit("ghl_all_calls", args.pool_limit)
        system.launch_run("health_check")  # warm-up (first run loads the code)
        timed_sync(system, sync_config, tags)
        idle = [timed_sync(system, sync_config, tags) for _ in range(args.rounds)]

        t0 = time.monotonic()
        backfill_id = system.launch_backfill(
            [(f"{first.isoformat()}|{locations[0].name}", f"{last.isoformat()}|{locations[-1].name}")],
            title=f"bench {args.days} days x {len(locations)} projects",
        )
        during: list[tuple[float, float]] = []
        with Sampler(system) as sampler:
            while not system.backfill(backfill_id)["runs"]:  # the backfill daemon picks it up
                if time.monotonic() - t0 > 300:
                    raise SystemExit(f"backfill launched no run in 300 s\n{system.logs()}")
                time.sleep(0.5)
            first_run_after = time.monotonic() - t0
            time.sleep(args.settle)  # let the backfill's runs start (or queue) first
            for _ in range(args.rounds):
                sample = timed_sync(system, sync_config, tags)
                data = system.backfill(backfill_id)
                busy = any(r["status"] not in ("SUCCESS", "FAILURE", "CANCELED") for r in data["runs"])
                if not busy and data["status"] != "REQUESTED":
                    break  # the backfill ended during this round: it does not count
                during.append(sample)
            done = system.wait_backfill(backfill_id, timeout=args.backfill_timeout)
            wall = time.monotonic() - t0
        # idle again after the backfill: the baseline is taken on both sides, so drift in the
        # machine's other load hits idle and during alike
        idle += [timed_sync(system, sync_config, tags) for _ in range(args.rounds)]
        runs = done["runs"]
        epoch = time.time() - (time.monotonic() - t0)  # wall-clock time of the backfill's launch
        timeline = sorted(
            (r["creationTime"] - epoch, (r["startTime"] or 0) - epoch, (r["endTime"] or 0) - epoch)
            for r in runs
        )
        statuses = sorted({r["status"] for r in runs})
        all_runs = system.runs()
        out.update(
            idle=[s for s, _ in idle],
            idle_phases=[q for _, q in idle],
            during=[s for s, _ in during],
            during_phases=[q for _, q in during],
            peak_processes=sampler.peak_count,
            peak_rss=sampler.peak_rss,
            samples=sampler.samples,
            max_started=_max_started_at_once(all_runs),
            max_started_backfill=_max_started_at_once(runs),
            backfill_runs=len(runs),
            backfill_status=done["status"],
            run_statuses=statuses,
            backfill_wall=wall,
            first_run_after=first_run_after,
            partitions=done["numPartitions"],
            timeline=timeline,
        )
    return out


def _med(xs: list[float]) -> str:
    return f"{statistics.median(xs):.2f}" if xs else "n/a"


def _limits(yaml_text: str) -> str:
    """The limits a dagster.yaml sets, for the printout."""
    import yaml

    cfg = yaml.safe_load(yaml_text)
    runs = cfg.get("concurrency", {}).get("runs", {})
    pools = cfg.get("concurrency", {}).get("pools", {})
    dequeue = cfg.get("run_coordinator", {}).get("config", {}).get("dequeue_interval_seconds", 5)
    return (
        f"max_concurrent_runs {runs.get('max_concurrent_runs')}, pool default_limit "
        f"{pools.get('default_limit')} (granularity {pools.get('granularity')}), dequeue every {dequeue} s"
    )


def report(result: dict, args) -> None:
    name = result["name"]
    idle, during = result["idle"], result["during"]
    ratio = statistics.median(during) / statistics.median(idle) if idle and during else float("nan")
    if name == "recommended":
        print(f"[recommended] {RECOMMENDED.relative_to(REPO)}: {_limits(result['yaml'])}")
    else:
        limit = "unbounded" if name == "default" else f"max_concurrent_runs {args.max_runs}"
        if name in ("tag", "pool", "pool5", "pool1"):
            limit += f", backfill lane {1 if name == 'pool1' else args.lane}"
        print(
            f"[{name}] {limit}"
            + ("" if name == "default" else f", dequeue every {5 if name.endswith('5') else args.dequeue} s")
        )
    print(
        f"  dashboard sync launch→SUCCESS: idle median {_med(idle)} s "
        f"(min {min(idle):.2f}, max {max(idle):.2f}, n={len(idle)}); "
        f"during backfill median {_med(during)} s"
        + (f" (min {min(during):.2f}, max {max(during):.2f}, n={len(during)})" if during else " (n=0)")
        + f"; ratio {ratio:.2f}x (target ≤ 1.5x)"
    )
    for label, key in (("idle", "idle_phases"), ("during", "during_phases")):
        phases = result[key]
        print(
            f"  dashboard phases {label:6s} (medians): queued {_med([p['queue'] for p in phases])} s, "
            f"worker start-up {_med([p['startup'] for p in phases])} s, work {_med([p['work'] for p in phases])} s"
        )
    print(
        f"  run processes during the backfill: peak {result['peak_processes']} live "
        f"(peak total RSS {result['peak_rss'] / 2**20:.0f} MiB; {result['samples']} samples every 0.5 s); "
        f"most runs STARTED at once {result['max_started']} (backfill's own {result['max_started_backfill']})"
    )
    print(
        f"  backfill: {result['partitions']} partitions in {result['backfill_runs']} runs, "
        f"{result['backfill_status']} {result['run_statuses']}, wall {result['backfill_wall']:.0f} s "
        f"(first run after {result['first_run_after']:.0f} s)"
    )
    if args.timeline:
        print(
            "  backfill runs (s after launch: created / started / ended): "
            + "; ".join(f"{c:.0f}/{s:.0f}/{e:.0f}" for c, s, e in result["timeline"])
        )
    if args.pool_limit is not None:
        print(f"  (pool ghl_all_calls limit set to {args.pool_limit} at runtime over GraphQL)")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--config", default="recommended", choices=CONFIG_NAMES, help="the configuration to measure"
    )
    parser.add_argument("--compare", default="", help="comma-separated configurations to measure instead")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--busy-calls-per-day", type=int, default=3000, help="Globex Solar's calls a day")
    parser.add_argument("--max-runs", type=int, default=3)
    parser.add_argument("--lane", type=int, default=2, help="runs a backfill may hold (tag/pool configs)")
    parser.add_argument("--dequeue", type=int, default=1, help="dequeue_interval_seconds (queued configs)")
    parser.add_argument("--priority", type=int, default=10, help="dagster/priority of the dashboard's runs")
    parser.add_argument(
        "--settle",
        type=float,
        default=3.0,
        help="seconds between the first backfill run and the first timed sync",
    )
    parser.add_argument("--backfill-timeout", type=float, default=1200.0)
    parser.add_argument(
        "--pool-limit",
        type=int,
        default=None,
        help="set pool ghl_all_calls's limit at runtime (GraphQL setConcurrencyLimit) before the backfill",
    )
    parser.add_argument("--show-yaml", action="store_true")
    parser.add_argument(
        "--timeline", action="store_true", help="print when each backfill run was created, started, ended"
    )
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.compare.split(",") if n.strip()] or [args.config]
    for n in names:
        if n not in CONFIG_NAMES:
            parser.error(f"unknown configuration {n!r}; one of {', '.join(CONFIG_NAMES)}")

    simulator = GHLSimulator.demo(busy_calls_per_day=args.busy_calls_per_day)
    last = date.today() - timedelta(days=1)
    first = last - timedelta(days=args.days - 1)
    started = time.monotonic()
    for loc in simulator.locations:  # generate the data up front: its one-off cost is not timed
        simulator.ground_truth(
            loc.location_id,
            datetime.combine(first - timedelta(days=2), datetime.min.time(), tzinfo=UTC),
            datetime.combine(last + timedelta(days=3), datetime.min.time(), tzinfo=UTC),
        )
    print(
        f"{args.days} days x {len(simulator.locations)} demo projects "
        f"({', '.join(f'{loc.name} {loc.calls_per_day}/day' for loc in simulator.locations)}; "
        f"busy project scaled to {args.busy_calls_per_day}/day, simulator default 3000); "
        f"{args.rounds} dashboard syncs idle and during; simulator data generated in {time.monotonic() - started:.0f} s",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="bench_conc_") as tmp:
        work = Path(tmp)
        with embedded_postgres(work / "warehouse_pg") as admin_url, simulator.serve() as server:
            for name in names:
                result = measure(
                    name, args, simulator=simulator, server_url=server.url, admin_url=admin_url, work=work
                )
                report(result, args)
                if args.show_yaml:
                    print("  dagster.yaml:\n    " + result["yaml"].replace("\n", "\n    "))
    print(f"total wall {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
