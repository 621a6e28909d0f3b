"""One GHL rate budget per location, shared through Postgres by every process that syncs it.

A backfill, the 15-minute schedule, a sensor's retry and a dashboard click can all hit the same GHL
location at once, from different run processes. GHL's limits (100 requests / 10 s burst, 200,000 a
day) are per location, so the budget must be too: each request is logged in ``ghl_request_log``
under a per-location advisory lock, and a request goes only while the window holds room. Time is the
database's clock (``clock_timestamp()``), the one clock every process shares.

This follows the client's ``RateLimiter`` protocol, so the client does not know which one it has.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from datetime import timedelta

import sqlalchemy as sa

from ghl_pipeline.ghl.ratelimit import (
    DEFAULT_BURST_INTERVAL_S,
    DEFAULT_BURST_MAX,
    RateLimitHeaders,
    daily_budget_error,
    retry_after_seconds,
)

log = logging.getLogger(__name__)

DDL = [
    """
    CREATE TABLE IF NOT EXISTS ghl_rate_limit (
        location_id      text PRIMARY KEY,
        max_requests     integer NOT NULL,
        interval_ms      integer NOT NULL,
        daily_remaining  integer,
        daily_seen_at    timestamptz,
        paused_until     timestamptz
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS ghl_request_log (
        location_id  text NOT NULL,
        sent_at      timestamptz NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS ghl_request_log_location_sent ON ghl_request_log (location_id, sent_at)",
]

_LOCK = sa.text("SELECT pg_advisory_xact_lock(hashtextextended(:loc, 7317))")
_ENSURE = sa.text(
    "INSERT INTO ghl_rate_limit (location_id, max_requests, interval_ms) VALUES (:loc, :max, :ms)"
    " ON CONFLICT (location_id) DO NOTHING"
)
# A request costs three statements under the lock (every one a round trip, every request of every
# project pays them): the lock, the state with its window (requests logged in the last interval x
# ``hold``, see the class docstring), and the log entry with the daily spend.
_STATE = sa.text(
    "SELECT clock_timestamp() AS now, r.max_requests, r.interval_ms, r.daily_remaining, r.daily_seen_at,"
    " r.paused_until, w.sent, w.oldest"
    " FROM ghl_rate_limit r CROSS JOIN LATERAL ("
    "   SELECT count(*) AS sent, min(sent_at) AS oldest FROM ghl_request_log"
    "   WHERE location_id = r.location_id"
    "   AND sent_at > clock_timestamp() - make_interval(secs => r.interval_ms / 1000.0 * :hold)"
    " ) w WHERE r.location_id = :loc"
)
_LOG_AND_SPEND = sa.text(
    "WITH logged AS (INSERT INTO ghl_request_log (location_id, sent_at) VALUES (:loc, clock_timestamp()))"
    " UPDATE ghl_rate_limit SET daily_remaining = daily_remaining - 1"
    " WHERE location_id = :loc AND daily_remaining IS NOT NULL"
)
_PRUNE = sa.text("DELETE FROM ghl_request_log WHERE sent_at < clock_timestamp() - interval '1 hour'")


class PostgresRateLimiter:
    """Sliding-window limiter per location whose window lives in Postgres, shared by all processes.

    ``safety_margin`` requests of every window stay unused; ``daily_reserve`` requests of the daily
    budget are never spent by the pipeline. A request is logged when it is allowed, but GHL counts it
    when it arrives, a little later and not equally later for every request (process scheduling,
    network); so each logged request holds its place in the window for ``skew_allowance`` (a share of
    the interval) longer than GHL's interval, or a slow request followed by fast ones earns a 429.
    """

    def __init__(
        self,
        engine: sa.Engine,
        *,
        max_requests: int = DEFAULT_BURST_MAX,
        interval_s: float = DEFAULT_BURST_INTERVAL_S,
        safety_margin: int = 5,
        daily_reserve: int = 1000,
        daily_stale_after: timedelta = timedelta(hours=1),
        skew_allowance: float = 0.1,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._engine = engine
        self._default_max = max_requests
        self._default_interval_ms = int(interval_s * 1000)
        self._margin = max(0, safety_margin)
        self._reserve = max(0, daily_reserve)
        self._daily_stale_after = daily_stale_after
        self._skew = max(0.0, skew_allowance)
        self._sleep = sleep
        self._ensured: set[str] = set()
        self._acquired = 0
        self._lock = threading.Lock()

    def _allowed(self, max_requests: int) -> int:
        return max(1, max_requests - min(self._margin, max_requests // 10))

    def acquire(self, location_id: str) -> None:
        """Block until one request for ``location_id`` may go; raise before the daily budget runs out."""
        while True:
            with self._engine.begin() as conn:
                conn.execute(_LOCK, {"loc": location_id})
                if location_id not in self._ensured:
                    conn.execute(
                        _ENSURE,
                        {"loc": location_id, "max": self._default_max, "ms": self._default_interval_ms},
                    )
                state = conn.execute(_STATE, {"loc": location_id, "hold": 1.0 + self._skew}).one()
                self._check_daily(location_id, state)
                interval = state.interval_ms / 1000.0
                hold = interval * (1.0 + self._skew)  # see the class docstring
                wait = (state.paused_until - state.now).total_seconds() if state.paused_until else 0.0
                if wait <= 0 and state.sent >= self._allowed(state.max_requests):
                    wait = (state.oldest - state.now).total_seconds() + hold
                if wait <= 0:
                    conn.execute(_LOG_AND_SPEND, {"loc": location_id})
                    self._after_acquire(conn, location_id)
                    return
            log.debug("rate limiter: location %s waits %.2fs", location_id, wait)
            self._sleep(min(max(wait, 0.005), interval))

    def _after_acquire(self, conn: sa.Connection, location_id: str) -> None:
        with self._lock:
            self._ensured.add(location_id)
            self._acquired += 1
            prune = self._acquired % 1000 == 0
        if prune:
            conn.execute(_PRUNE)

    def _check_daily(self, location_id: str, state) -> None:
        if state.daily_remaining is None or state.daily_seen_at is None:
            return
        if state.now - state.daily_seen_at > self._daily_stale_after:
            return  # the daily budget has reset since; the next answer tells the truth again
        if state.daily_remaining <= self._reserve:
            raise daily_budget_error(location_id, state.daily_remaining, self._reserve)

    def observe(self, location_id: str, *, status: int, headers: Mapping[str, str]) -> None:
        """Adopt GHL's ``X-RateLimit-*`` figures for everyone; after a 429, pause the location for all."""
        limits = RateLimitHeaders.parse(headers)
        max_requests, interval_ms = limits.max_requests, limits.interval_ms
        remaining, daily_remaining = limits.remaining, limits.daily_remaining
        pause_s = None
        current_interval = (interval_ms or self._default_interval_ms) / 1000.0
        if status == 429:
            pause_s = retry_after_seconds(headers, current_interval)
        elif remaining is not None and max_requests and remaining < min(self._margin, max_requests // 10):
            pause_s = current_interval  # someone else is spending this window too
        if not (max_requests or interval_ms or daily_remaining is not None or pause_s):
            return
        with self._engine.begin() as conn:
            conn.execute(
                sa.text(
                    "UPDATE ghl_rate_limit SET"
                    " max_requests = coalesce(:max, max_requests),"
                    " interval_ms = coalesce(:ms, interval_ms),"
                    " daily_remaining = coalesce(:daily, daily_remaining),"
                    " daily_seen_at = CASE WHEN :daily IS NULL THEN daily_seen_at ELSE clock_timestamp() END,"
                    " paused_until = CASE WHEN :pause IS NULL THEN paused_until"
                    "   ELSE greatest(coalesce(paused_until, clock_timestamp()),"
                    "                 clock_timestamp() + make_interval(secs => :pause)) END"
                    " WHERE location_id = :loc"
                ),
                {
                    "loc": location_id,
                    "max": max_requests or None,
                    "ms": interval_ms or None,
                    "daily": daily_remaining,
                    "pause": pause_s,
                },
            )
