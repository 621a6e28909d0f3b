"""Shared fixtures: a simulator and clients on one manual clock, so backoff and rate windows cost no time."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from ghl_pipeline.ghl.client import GHLClient
from ghl_pipeline.ghl.ratelimit import InMemoryRateLimiter
from ghl_pipeline.ghl.simulator import Faults, GHLSimulator, ManualClock, SimLocation

NOW = datetime(2025, 3, 20, 12, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


@pytest.fixture
def make_sim(clock: ManualClock) -> Callable[..., GHLSimulator]:
    def make(
        locations: list[SimLocation] | None = None, *, faults: Faults | None = None, **kwargs
    ) -> GHLSimulator:
        if locations is None:
            return GHLSimulator.demo(faults=faults, clock=clock.time, sleep=clock.sleep, **kwargs)
        return GHLSimulator(locations, faults=faults, clock=clock.time, sleep=clock.sleep, **kwargs)

    return make


@pytest.fixture
def make_client(clock: ManualClock) -> Callable[..., GHLClient]:
    limiter = InMemoryRateLimiter(clock=clock.time, sleep=clock.sleep)

    def make(sim: GHLSimulator, location: SimLocation, **kwargs) -> GHLClient:
        options = {
            "token": location.token,
            "location_id": location.location_id,
            "project_name": location.name,
            "base_url": "https://services.leadconnectorhq.com",
            "transport": sim.transport(),
            "limiter": limiter,
            "sleep": clock.sleep,
        }
        options.update(kwargs)
        return GHLClient(**options)

    return make
