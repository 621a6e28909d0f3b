"""PostgresRateLimiter on the real Postgres: one GHL budget per location, shared by threads and processes."""

from __future__ import annotations

import multiprocessing
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from ghl_pipeline.ghl.client import GHLClient
from ghl_pipeline.ghl.errors import GHLRateLimitBudgetError
from ghl_pipeline.ghl.simulator import GHLSimulator, SimLocation
from ghl_pipeline.warehouse.ratelimit import PostgresRateLimiter

LOCATION = "sharedLoc0000000001"
LIMIT, INTERVAL_S = 10, 1.0


@pytest.fixture
def limiter_engine(engine: sa.Engine) -> sa.Engine:
    """The test database; ``upgrade`` created the limiter's tables with the rest of the schema."""
    return engine


def _sent_at(engine: sa.Engine, location_id: str = LOCATION) -> list[datetime]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                sa.text("SELECT sent_at FROM ghl_request_log WHERE location_id = :loc ORDER BY sent_at"),
                {"loc": location_id},
            ).scalars()
        )


def _busiest_window(stamps: list[datetime], interval_s: float) -> int:
    """The most requests any window of ``interval_s`` (open at its start, as GHL counts) ever held."""
    busiest = 0
    for i, end in enumerate(stamps):
        start = end - timedelta(seconds=interval_s)
        busiest = max(busiest, sum(1 for t in stamps[: i + 1] if t > start))
    return busiest


def _hammer(db_url: str, n_threads: int, per_thread: int) -> None:
    """One "process": its own limiter and engine, ``n_threads`` threads acquiring for the same location."""
    from ghl_pipeline.warehouse.db import get_engine

    limiter = PostgresRateLimiter(get_engine(db_url), max_requests=LIMIT, interval_s=INTERVAL_S)
    threads = [
        threading.Thread(target=lambda: [limiter.acquire(LOCATION) for _ in range(per_thread)])
        for _ in range(n_threads)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


@pytest.mark.slow
def test_two_processes_with_two_threads_each_stay_under_the_shared_window(db_url, limiter_engine):
    per_thread = 6
    ctx = multiprocessing.get_context("spawn")
    started = time.monotonic()
    procs = [ctx.Process(target=_hammer, args=(db_url, 2, per_thread)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    elapsed = time.monotonic() - started

    stamps = _sent_at(limiter_engine)
    assert len(stamps) == 2 * 2 * per_thread
    # The limiter keeps a margin: 10 per second allowed means 9 used.
    assert _busiest_window(stamps, INTERVAL_S) <= LIMIT - 1
    # ...and it does not dawdle either: 24 requests at 9 per second need at least two full windows.
    span = (stamps[-1] - stamps[0]).total_seconds()
    assert 2.0 <= span < 6.0, (span, elapsed)


def test_threads_of_one_process_share_the_window(limiter_engine):
    limiter = PostgresRateLimiter(limiter_engine, max_requests=LIMIT, interval_s=INTERVAL_S)
    threads = [
        threading.Thread(target=lambda: [limiter.acquire(LOCATION) for _ in range(7)]) for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stamps = _sent_at(limiter_engine)
    assert len(stamps) == 14
    assert _busiest_window(stamps, INTERVAL_S) <= LIMIT - 1


def test_other_locations_are_not_slowed(limiter_engine):
    limiter = PostgresRateLimiter(limiter_engine, max_requests=LIMIT, interval_s=INTERVAL_S)
    for _ in range(LIMIT - 1):
        limiter.acquire(LOCATION)
    started = time.monotonic()
    for _ in range(LIMIT - 1):
        limiter.acquire("otherLoc00000000002")
    assert time.monotonic() - started < 0.9


def test_announced_limits_are_adopted_by_every_process(limiter_engine):
    # Two limiters on separate engines stand for two processes; both start from GHL's documented 100/10 s.
    first = PostgresRateLimiter(limiter_engine)
    second = PostgresRateLimiter(sa.create_engine(limiter_engine.url, poolclass=sa.NullPool))
    first.acquire(LOCATION)
    first.observe(
        LOCATION,
        status=200,
        headers={
            "X-RateLimit-Max": "5",
            "X-RateLimit-Interval-Milliseconds": "1000",
            "X-RateLimit-Remaining": "4",
        },
    )
    with limiter_engine.connect() as conn:
        row = conn.execute(
            sa.text("SELECT max_requests, interval_ms FROM ghl_rate_limit WHERE location_id = :loc"),
            {"loc": LOCATION},
        ).one()
    assert tuple(row) == (5, 1000)

    for _ in range(9):
        second.acquire(LOCATION)
    stamps = _sent_at(limiter_engine)
    # 5 per second (no margin left at so small a limit, but never more than announced): 10 requests
    # need the window to roll over at least once.
    assert _busiest_window(stamps, 1.0) <= 5
    assert (stamps[-1] - stamps[0]).total_seconds() >= 1.0


def test_a_429_pauses_the_location_for_every_process(limiter_engine):
    first = PostgresRateLimiter(limiter_engine, max_requests=LIMIT, interval_s=INTERVAL_S)
    second = PostgresRateLimiter(
        sa.create_engine(limiter_engine.url, poolclass=sa.NullPool), max_requests=LIMIT, interval_s=INTERVAL_S
    )
    first.acquire(LOCATION)
    second.acquire(LOCATION)
    first.observe(LOCATION, status=429, headers={"Retry-After": "1.5", "X-RateLimit-Remaining": "0"})
    started = time.monotonic()
    second.acquire(LOCATION)
    assert time.monotonic() - started >= 1.3
    # Without Retry-After (GHL does not document one) the pause is one burst window.
    first.observe(LOCATION, status=429, headers={})
    started = time.monotonic()
    first.acquire(LOCATION)
    assert time.monotonic() - started >= INTERVAL_S * 0.9


def test_daily_budget_refuses_before_running_out(limiter_engine):
    limiter = PostgresRateLimiter(limiter_engine, max_requests=1000, interval_s=1.0, daily_reserve=1000)
    limiter.acquire(LOCATION)
    limiter.observe(LOCATION, status=200, headers={"X-RateLimit-Daily-Remaining": "1004"})
    for _ in range(4):
        limiter.acquire(LOCATION)
    with pytest.raises(GHLRateLimitBudgetError) as refused:
        limiter.acquire(LOCATION)
    message = str(refused.value)
    assert LOCATION in message and "1000" in message
    # Another process refuses too: the reading lives in Postgres.
    other = PostgresRateLimiter(
        sa.create_engine(limiter_engine.url, poolclass=sa.NullPool), daily_reserve=1000
    )
    with pytest.raises(GHLRateLimitBudgetError):
        other.acquire(LOCATION)
    assert len(_sent_at(limiter_engine)) == 5


def test_daily_budget_error_through_the_client_names_the_project_not_the_token(limiter_engine):
    token = "pit-budget-5b1e-secret"
    location = SimLocation(
        location_id=LOCATION,
        token=token,
        name="Budget Co",
        calls_per_day=5,
        start_date=datetime.now(UTC).date(),
    )
    sim = GHLSimulator([location], daily_limit=1003)
    limiter = PostgresRateLimiter(limiter_engine, daily_reserve=1000)
    with GHLClient(
        token=token,
        location_id=LOCATION,
        project_name="Budget Co",
        transport=sim.transport(),
        limiter=limiter,
    ) as client:
        # Three answers say 1002, 1001, then 1000 left: the reserve.
        client.get_location()
        client.list_users()
        now = datetime.now(UTC)
        list(client.iter_call_pages(start=now - timedelta(hours=1), end=now))
        with pytest.raises(GHLRateLimitBudgetError) as refused:
            client.fetch_contacts(["contact0000000000001"])
    text = f"{refused.value} {refused.value!r}"
    assert "Budget Co" in text and LOCATION in text
    assert token not in text
    assert len(sim.requests) == 3
