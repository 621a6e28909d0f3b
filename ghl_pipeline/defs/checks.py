"""Asset checks on `all_calls`: is every active project fresh?

(Reconciliation against GHL's own count runs inline with each materialization; see ``assets.py``.)
"""

import os
from datetime import UTC, datetime, timedelta

import dagster as dg

from ghl_pipeline.defs.resources import WarehouseResource
from ghl_pipeline.defs.syncing import ALL_CALLS_KEY
from ghl_pipeline.warehouse.projects import list_projects
from ghl_pipeline.warehouse.sync_state import last_synced


def freshness_hours() -> float:
    """How stale a project may get before the check fails (``GHL_FRESHNESS_HOURS``, default 2)."""
    raw = os.environ.get("GHL_FRESHNESS_HOURS") or "2"
    try:
        hours = float(raw)
    except ValueError as exc:
        raise ValueError(f"GHL_FRESHNESS_HOURS must be a number, got {raw!r}") from exc
    if not hours > 0:
        raise ValueError(f"GHL_FRESHNESS_HOURS must be positive, got {raw!r}")
    return hours


@dg.asset_check(
    asset=ALL_CALLS_KEY,
    name="every_active_project_fresh",
    description="Fails when an active project has not been synced within GHL_FRESHNESS_HOURS (default 2).",
)
def every_active_project_fresh(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    """Every active project synced within the freshness limit."""
    engine = warehouse.read_engine()  # a check never changes the schema
    limit = timedelta(hours=freshness_hours())
    now = datetime.now(UTC)
    synced = last_synced(engine)
    stale = {}
    for project in list_projects(engine, active_only=True):
        at = synced.get(project.name)
        if at is None or now - at > limit:
            stale[project.name] = at.isoformat() if at else "never"
    return dg.AssetCheckResult(
        passed=not stale,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"stale_projects": stale, "limit_hours": limit.total_seconds() / 3600},
        description=("stale: " + ", ".join(sorted(stale))) if stale else "every active project is fresh",
    )


check_freshness = dg.define_asset_job(
    name="check_all_calls_freshness",
    selection=dg.AssetSelection.checks(every_active_project_fresh),
    executor_def=dg.in_process_executor,
)

freshness_schedule = dg.ScheduleDefinition(
    name="freshness_schedule",
    job=check_freshness,
    cron_schedule="7 * * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Runs the freshness check hourly.",
)
