"""A backfill and a dashboard sync hit the same GHL location at once: one shared budget, no 429, right table.

The simulator is served on loopback with a burst limit of 10 requests per 2 s (GHL's real one is
100 / 10 s) so that the limit binds within seconds. ``ghl-pipeline backfill`` (two worker processes,
two runs of the same location) and ``ghl-pipeline sync`` (the dashboard's job) run as separate
processes, so the only thing they share is the rate budget in Postgres. Neither is told the limit:
they start from GHL's documented 100 / 10 s and must adopt the announced 10 / 2 s from the
``X-RateLimit-*`` headers of their first answers.
"""

from __future__ import annotations

import time
from datetime import date, timedelta

import pytest
import sqlalchemy as sa

from ghl_pipeline.config import partitions_start
from ghl_pipeline.ghl.simulator import GHLSimulator, SimLocation
from ghl_pipeline.warehouse.projects import add_project
from ghl_pipeline_tests.recovery.helpers import StderrWatcher, cli_env, start_cli, stored_id_counts, truth_ids

TODAY = date.today()
FIRST, LAST = TODAY - timedelta(days=61), TODAY - timedelta(days=2)  # two backfill runs (31 + 29 days)
SYNC_FIRST = LAST - timedelta(days=40)  # the dashboard's range overlaps both backfill runs
BURST_MAX, BURST_INTERVAL_S = 10, 2.0

BUSY = SimLocation(
    location_id="busyLoc000000000001",
    token="pit-busy-9f3c2a71-secret",
    name="Busy Dental",
    timezone="America/New_York",
    country="US",
    # ~4,500 calls a month: 10 export pages per run, plus a few contact-search pages.
    calls_per_day=150,
    contacts=1200,
    start_date=FIRST - timedelta(days=5),
)


@pytest.mark.slow
def test_backfill_and_dashboard_sync_share_one_budget(db_url, engine, empty_db_url, tmp_path):
    sim = GHLSimulator([BUSY], seed=11, burst_max=BURST_MAX, burst_interval_s=BURST_INTERVAL_S)
    add_project(
        engine, name=BUSY.name, location_id=BUSY.location_id, api_key=BUSY.token, timezone=BUSY.timezone
    )
    with sim.serve() as server:
        env = cli_env(
            db_url=db_url,
            dagster_pg_url=empty_db_url,
            home=tmp_path / "dagster_home",
            ghl_url=server.url,
            partitions_start=partitions_start(),
        )
        backfill = start_cli(env, "backfill", "--from", FIRST.isoformat(), "--to", LAST.isoformat())
        backfill_err = StderrWatcher(backfill)
        # The dashboard's sync starts once the backfill's workers are talking to GHL (it needs a few
        # seconds to start itself, and the backfill's runs, held to the burst limit, take longer).
        deadline = time.monotonic() + 60
        while not sim.requests and backfill.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sim.requests, backfill_err.text()[-2000:]
        sync = start_cli(
            env, "sync", "--from", SYNC_FIRST.isoformat(), "--to", LAST.isoformat(), "--project", BUSY.name
        )
        sync_out, sync_err = sync.communicate(timeout=80)
        backfill_out = backfill.stdout.read()
        backfill.wait(timeout=80)
    assert sync.returncode == 0, sync_err[-2000:]
    assert backfill.returncode == 0, backfill_err.text()[-2000:]
    assert "2 runs succeeded, 0 failed" in backfill_out, backfill_out + backfill_err.text()[-3000:]

    requests = sim.requests
    assert not [r for r in requests if r.status == 429], "the simulator answered 429"
    assert all(r.status == 200 for r in requests), sorted({(r.path, r.status) for r in requests})

    # The three clients really were at it together: the sync's export ran while a backfill run's did.
    sync_start = truth_window_start_param(SYNC_FIRST)
    exports = [r for r in requests if r.path.endswith("/export")]
    sync_times = [r.at for r in exports if r.query.get("startDate", "").startswith(sync_start)]
    other_times = [r.at for r in exports if not r.query.get("startDate", "").startswith(sync_start)]
    assert sync_times and other_times
    assert min(sync_times) < max(other_times) and min(other_times) < max(sync_times), "did not overlap"
    # ...and the limit bound: the shared log filled 2-s windows up to the limit less its margin, never
    # more. (The simulator counts arrivals exactly and refused nothing, asserted above.)
    with engine.connect() as conn:
        logged = [
            t.timestamp() for t in conn.execute(sa.text("SELECT sent_at FROM ghl_request_log")).scalars()
        ]
    assert len(logged) == len(requests)
    assert BURST_MAX - 3 <= _busiest(logged, BURST_INTERVAL_S) <= BURST_MAX - 1

    stored = stored_id_counts(engine, BUSY.name)
    assert max(stored.values()) == 1
    assert set(stored) == truth_ids(sim, BUSY, FIRST, LAST)


def _busiest(stamps: list[float], interval_s: float) -> int:
    """The most requests any window of ``interval_s`` seconds held."""
    stamps = sorted(stamps)
    return max(sum(1 for t in stamps[: i + 1] if t > end - interval_s) for i, end in enumerate(stamps))


def truth_window_start_param(day: date) -> str:
    """The export's ``startDate`` prefix of ``day``'s local midnight, as the client sends it (UTC ISO)."""
    from ghl_pipeline.windows import local_days_window

    start, _ = local_days_window(day, day, BUSY.timezone)
    return start.strftime("%Y-%m-%dT%H:%M")
