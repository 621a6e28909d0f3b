"""Dagster-level fixtures: a simulator with two projects, their rows in ``projects``, a test instance."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import pytest
import sqlalchemy as sa

from ghl_pipeline.defs.partitions import PROJECTS_PARTITIONS_NAME
from ghl_pipeline.defs.resources import GHLResource, WarehouseResource
from ghl_pipeline.ghl.ratelimit import InMemoryRateLimiter
from ghl_pipeline.ghl.simulator import GHLSimulator, SimLocation
from ghl_pipeline.warehouse.projects import add_project

TODAY = datetime.now(UTC).date()
DATA_START = TODAY - timedelta(days=40)

ACME = SimLocation(
    location_id="acmeLoc000000000001",
    token="pit-acme-0c6f1e9b-secret",
    name="Acme Roofing",
    timezone="America/Chicago",
    country="US",
    calls_per_day=30,
    start_date=DATA_START,
    contacts=60,
)
GLOBEX = SimLocation(
    location_id="globexLoc0000000002",
    token="pit-globex-77ab3d21-secret",
    name="Globex Solar",
    timezone="Europe/London",
    country="GB",
    calls_per_day=20,
    start_date=DATA_START,
    contacts=50,
)
TOKENS = (ACME.token, GLOBEX.token)


@pytest.fixture
def simulator() -> GHLSimulator:
    """Two locations with deterministic calls from 40 days ago to today; no faults."""
    return GHLSimulator([ACME, GLOBEX], seed=7)


@pytest.fixture
def projects(engine: sa.Engine) -> list[str]:
    """Both simulator locations registered as active projects (Globex's zone left to GHL)."""
    add_project(
        engine, name=ACME.name, location_id=ACME.location_id, api_key=ACME.token, timezone=ACME.timezone
    )
    add_project(engine, name=GLOBEX.name, location_id=GLOBEX.location_id, api_key=GLOBEX.token, timezone=None)
    return [ACME.name, GLOBEX.name]


@pytest.fixture
def instance(projects: list[str]) -> Iterator[dg.DagsterInstance]:
    """A throwaway Dagster instance that knows both projects' partitions."""
    with dg.instance_for_test() as inst:
        inst.add_dynamic_partitions(PROJECTS_PARTITIONS_NAME, projects)
        yield inst


@pytest.fixture
def resources(simulator: GHLSimulator, db_url: str) -> dict:
    """The real resources, with GHL served in-process by the simulator."""
    ghl = GHLResource.with_transport(simulator.transport(), limiter=InMemoryRateLimiter())
    return {
        # Passed as the object itself: Dagster would rebuild a ConfigurableResource from its config
        # and lose the in-process transport, which is not config.
        "ghl": dg.ResourceDefinition.hardcoded_resource(ghl),
        "warehouse": WarehouseResource(database_url=db_url),
    }


def local_window(day: date, tz: str) -> tuple[datetime, datetime]:
    """UTC bounds of ``day`` in ``tz``."""
    from ghl_pipeline.windows import local_days_window

    return local_days_window(day, day, tz)


def stored_ids(engine: sa.Engine, project: str) -> set[str]:
    """ghl_ids of a project's rows in all_calls."""
    with engine.connect() as conn:
        return set(
            conn.execute(
                sa.text("SELECT ghl_id FROM all_calls WHERE project_name = :p"), {"p": project}
            ).scalars()
        )


def table_snapshot(engine: sa.Engine) -> tuple:
    """Everything a sync could write, for "nothing changed" assertions."""
    with engine.connect() as conn:
        return tuple(
            conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()
            for table in ("all_calls", "all_calls_rejects", "ghl_contacts")
        )
