"""The in-memory limiter: under the burst limit, adopts GHL's headers, refuses before the daily budget ends."""

from __future__ import annotations

import pytest

from ghl_pipeline.ghl.errors import GHLRateLimitBudgetError
from ghl_pipeline.ghl.ratelimit import InMemoryRateLimiter
from ghl_pipeline.ghl.simulator import ManualClock


def _max_in_any_window(times: list[float], interval: float) -> int:
    return max(sum(1 for other in times if start <= other < start + interval) for start in times)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1_000.0)


def _limiter(clock: ManualClock, **kwargs) -> InMemoryRateLimiter:
    return InMemoryRateLimiter(clock=clock.time, sleep=clock.sleep, **kwargs)


def test_stays_under_the_burst_limit_with_a_margin(clock):
    limiter = _limiter(clock)
    sent = []
    for _ in range(300):
        limiter.acquire("loc")
        sent.append(clock.time())
    assert _max_in_any_window(sent, 10.0) == 95  # 100 per 10 s, 5 kept back
    assert 30.0 <= clock.time() - 1_000.0 <= 31.0  # and no slower than that


def test_adopts_the_limit_ghl_announces(clock):
    limiter = _limiter(clock)
    limiter.observe(
        "loc", status=200, headers={"X-RateLimit-Max": "20", "X-RateLimit-Interval-Milliseconds": "2000"}
    )
    sent = []
    for _ in range(60):
        limiter.acquire("loc")
        sent.append(clock.time())
    assert _max_in_any_window(sent, 2.0) == 18
    assert _max_in_any_window(sent, 2.0) <= 20


def test_locations_have_separate_windows(clock):
    limiter = _limiter(clock)
    for _ in range(95):
        limiter.acquire("a")
    limiter.acquire("b")
    assert clock.slept == 0.0
    limiter.acquire("a")
    assert clock.slept == pytest.approx(10.0)


def test_pauses_after_a_429_for_retry_after(clock):
    limiter = _limiter(clock)
    limiter.observe("loc", status=429, headers={"Retry-After": "3"})
    limiter.acquire("loc")
    assert clock.slept == pytest.approx(3.0)


def test_pauses_a_whole_window_after_a_429_without_retry_after(clock):
    limiter = _limiter(clock)
    limiter.observe(
        "loc", status=429, headers={"X-RateLimit-Interval-Milliseconds": "10000", "Retry-After": "junk"}
    )
    limiter.acquire("loc")
    assert clock.slept == pytest.approx(10.0)


def test_refuses_before_the_daily_budget_runs_out(clock):
    limiter = _limiter(clock, daily_reserve=100)
    limiter.observe("loc", status=200, headers={"X-RateLimit-Daily-Remaining": "105"})
    for _ in range(5):
        limiter.acquire("loc")
    with pytest.raises(GHLRateLimitBudgetError, match="reserve") as caught:
        limiter.acquire("loc")
    assert "loc" in str(caught.value)
    limiter.acquire("other")  # another location's budget is its own


def test_an_old_daily_reading_does_not_block_forever(clock):
    limiter = _limiter(clock, daily_reserve=100)
    limiter.observe("loc", status=200, headers={"X-RateLimit-Daily-Remaining": "50"})
    with pytest.raises(GHLRateLimitBudgetError):
        limiter.acquire("loc")
    clock.advance(3601)
    limiter.acquire("loc")


def test_someone_else_spending_the_window_makes_it_wait(clock):
    limiter = _limiter(clock)
    limiter.observe("loc", status=200, headers={"X-RateLimit-Remaining": "2", "X-RateLimit-Max": "100"})
    limiter.acquire("loc")
    assert clock.slept == pytest.approx(10.0)
