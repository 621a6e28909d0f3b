"""Client-side rate limiting per GHL location.

GHL allows a burst of 100 requests per 10 s and 200,000 requests per day, per app *per location*
(README §9). Hitting the burst limit costs a 429 and a wait; exhausting the daily budget stops every
sync of that location until tomorrow. So the limiter stays under the burst limit on its own (a
sliding window with a small safety margin) and refuses before the daily budget is gone, keeping a
reserve for a human's interactive use.

The limiter is a seam: ``InMemoryRateLimiter`` serves one process; a Postgres-shared implementation
can follow the same ``RateLimiter`` protocol when several processes sync the same location.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Protocol

from ghl_pipeline.ghl.errors import GHLRateLimitBudgetError

log = logging.getLogger(__name__)

DEFAULT_BURST_MAX = 100
DEFAULT_BURST_INTERVAL_S = 10.0
# A Retry-After longer than this is not believed (a misconfigured proxy must not park a sync for hours).
MAX_RETRY_AFTER_S = 600.0


class RateLimiter(Protocol):
    """What the client needs from a limiter: permission before a request, the answer's headers after."""

    def acquire(self, location_id: str) -> None:
        """Block until one request for ``location_id`` may go; raise GHLRateLimitBudgetError near the daily limit."""
        ...

    def observe(self, location_id: str, *, status: int, headers: Mapping[str, str]) -> None:
        """Learn from a response: adopt ``X-RateLimit-*`` values, pause after a 429."""
        ...


def _header_int(headers: Mapping[str, str], name: str) -> int | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        number = int(str(value).strip())
    except ValueError:
        return None
    return number if number >= 0 else None


@dataclass(frozen=True, slots=True)
class RateLimitHeaders:
    """GHL's five ``X-RateLimit-*`` answers, as far as a response carried them (README §9)."""

    max_requests: int | None
    interval_ms: int | None
    remaining: int | None
    daily_remaining: int | None

    @classmethod
    def parse(cls, headers: Mapping[str, str]) -> RateLimitHeaders:
        """Read the headers; a missing or malformed value is ``None``."""
        return cls(
            max_requests=_header_int(headers, "X-RateLimit-Max"),
            interval_ms=_header_int(headers, "X-RateLimit-Interval-Milliseconds"),
            remaining=_header_int(headers, "X-RateLimit-Remaining"),
            daily_remaining=_header_int(headers, "X-RateLimit-Daily-Remaining"),
        )


def daily_budget_error(location_id: str, remaining: int, reserve: int) -> GHLRateLimitBudgetError:
    """The refusal raised before a location's daily GHL budget runs out."""
    return GHLRateLimitBudgetError(
        None,
        None,
        f"location {location_id} has {remaining} requests left of today's GHL budget; "
        f"refusing to spend the last {reserve} (kept in reserve)",
    )


@dataclass
class _LocationState:
    max_requests: int
    interval_s: float
    sent: deque[float] = field(default_factory=deque)
    paused_until: float = 0.0
    daily_remaining: int | None = None
    daily_seen_at: float = 0.0


class InMemoryRateLimiter:
    """Sliding-window limiter per location, with a daily-budget guard; thread-safe.

    ``safety_margin`` requests of every burst window are left unused (GHL's window and ours are not
    aligned, and another client may share the location). ``daily_reserve`` requests of the daily
    budget are never spent by the pipeline. ``clock``/``sleep`` are injectable so tests run instantly.
    """

    def __init__(
        self,
        *,
        max_requests: int = DEFAULT_BURST_MAX,
        interval_s: float = DEFAULT_BURST_INTERVAL_S,
        safety_margin: int = 5,
        daily_reserve: int = 1000,
        daily_stale_after_s: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if max_requests < 1 or interval_s <= 0:
            raise ValueError("max_requests must be >= 1 and interval_s > 0")
        self._default_max = max_requests
        self._default_interval = interval_s
        self._margin = max(0, safety_margin)
        self._reserve = max(0, daily_reserve)
        self._daily_stale_after = daily_stale_after_s
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._states: dict[str, _LocationState] = {}

    def _state(self, location_id: str) -> _LocationState:
        state = self._states.get(location_id)
        if state is None:
            state = _LocationState(self._default_max, self._default_interval)
            self._states[location_id] = state
        return state

    def _allowed(self, state: _LocationState) -> int:
        # Keep the margin, but never below one request per window (a tiny X-RateLimit-Max still works).
        return max(1, state.max_requests - min(self._margin, state.max_requests // 10))

    def acquire(self, location_id: str) -> None:
        """Block until one request for ``location_id`` may go; raise GHLRateLimitBudgetError near the daily limit."""
        while True:
            with self._lock:
                state = self._state(location_id)
                now = self._clock()
                self._check_daily(location_id, state, now)
                while state.sent and state.sent[0] <= now - state.interval_s:
                    state.sent.popleft()
                wait = state.paused_until - now
                if wait <= 0 and len(state.sent) >= self._allowed(state):
                    wait = state.sent[0] + state.interval_s - now
                if wait <= 0:
                    state.sent.append(now)
                    if state.daily_remaining is not None:
                        state.daily_remaining -= 1
                    return
            log.debug("rate limiter: location %s waits %.2fs", location_id, wait)
            self._sleep(wait)

    def _check_daily(self, location_id: str, state: _LocationState, now: float) -> None:
        if state.daily_remaining is None:
            return
        if now - state.daily_seen_at > self._daily_stale_after:
            # The daily budget resets; an old reading must not block forever. The next answer re-reads it.
            state.daily_remaining = None
            return
        if state.daily_remaining <= self._reserve:
            raise daily_budget_error(location_id, state.daily_remaining, self._reserve)

    def observe(self, location_id: str, *, status: int, headers: Mapping[str, str]) -> None:
        """Learn from a response: adopt ``X-RateLimit-*`` values, pause after a 429."""
        limits = RateLimitHeaders.parse(headers)
        max_requests, interval_ms = limits.max_requests, limits.interval_ms
        remaining, daily_remaining = limits.remaining, limits.daily_remaining
        with self._lock:
            state = self._state(location_id)
            now = self._clock()
            if max_requests:
                state.max_requests = max_requests
            if interval_ms:
                state.interval_s = interval_ms / 1000.0
            if daily_remaining is not None:
                state.daily_remaining = daily_remaining
                state.daily_seen_at = now
            if status == 429:
                state.paused_until = max(
                    state.paused_until, now + retry_after_seconds(headers, state.interval_s)
                )
            elif remaining is not None and remaining < min(self._margin, state.max_requests // 10):
                # Someone else is spending this location's window too: let it drain before going on.
                state.paused_until = max(state.paused_until, now + state.interval_s)


def retry_after_seconds(headers: Mapping[str, str], default_s: float) -> float:
    """Seconds to wait after a 429: a sane ``Retry-After`` (seconds or an HTTP date; GHL documents
    neither), else ``default_s`` (one burst window)."""
    value = headers.get("Retry-After")
    if value is None:
        return default_s
    text = str(value).strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            seconds = (parsedate_to_datetime(text) - datetime.now(UTC)).total_seconds()
        except (TypeError, ValueError, OverflowError):
            return default_s
    return seconds if math.isfinite(seconds) and 0 <= seconds <= MAX_RETRY_AFTER_S else default_s
