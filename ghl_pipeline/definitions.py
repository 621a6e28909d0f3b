"""The code location ``ghl_pipeline``: assets, checks, jobs, sensors, schedules and resources, assembled."""

from __future__ import annotations

import dagster as dg

from ghl_pipeline.defs.assets import all_calls
from ghl_pipeline.defs.checks import check_freshness, every_active_project_fresh, freshness_schedule
from ghl_pipeline.defs.jobs import health_check, refresh_all_calls, sync_ghl_calls
from ghl_pipeline.defs.recovery import (
    dead_runs_sensor,
    failed_partitions_sensor,
    missing_days_sensor,
    projects_sensor,
    recent_calls_schedule,
)
from ghl_pipeline.defs.resources import GHLResource, WarehouseResource

defs = dg.Definitions(
    assets=[all_calls],
    asset_checks=[every_active_project_fresh],
    jobs=[sync_ghl_calls, refresh_all_calls, check_freshness, health_check],
    sensors=[projects_sensor, failed_partitions_sensor, missing_days_sensor, dead_runs_sensor],
    schedules=[recent_calls_schedule, freshness_schedule],
    resources={"ghl": GHLResource(), "warehouse": WarehouseResource()},
    # In-process: the dashboard waits on these runs, and a subprocess per step costs seconds.
    executor=dg.in_process_executor,
)
