"""The code location ``ghl_pipeline``: assets, jobs, sensors and resources, assembled."""

from __future__ import annotations

import dagster as dg

from ghl_pipeline.defs.assets import all_calls
from ghl_pipeline.defs.jobs import refresh_all_calls, sync_ghl_calls
from ghl_pipeline.defs.resources import GHLResource, WarehouseResource

defs = dg.Definitions(
    assets=[all_calls],
    jobs=[sync_ghl_calls, refresh_all_calls],
    resources={"ghl": GHLResource(), "warehouse": WarehouseResource()},
    # In-process: the dashboard waits on these runs, and a subprocess per step costs seconds.
    executor=dg.in_process_executor,
)
