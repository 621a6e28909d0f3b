"""The `all_calls` asset: one partition per project per local calendar day."""

from collections import defaultdict
from datetime import date

import dagster as dg

from ghl_pipeline.defs.partitions import all_calls_partitions, split_partition_key
from ghl_pipeline.defs.resources import GHLResource, WarehouseResource
from ghl_pipeline.defs.syncing import (
    consecutive_ranges,
    partition_metadata,
    stored_in_window,
    stored_rows,
    sync_spans,
)
from ghl_pipeline.warehouse.projects import get_project


@dg.asset(
    name="all_calls",
    group_name="ghl",
    partitions_def=all_calls_partitions,
    # Backfills run one run per project per ≤31 days: one GHL export pass per run, and Dagster's
    # per-run overhead (a few seconds) stays small next to a month of calls.
    backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=31),
    # Every run of this asset (backfills, sensors, schedules) holds a slot of this pool. With
    # `concurrency.pools.granularity: run` the queued coordinator keeps such runs in the queue, no
    # process started, while the pool is full, so slots stay free for the dashboard's sync_ghl_calls
    # (an op job, no pool). Without a limit on the pool it changes nothing.
    pool="ghl_all_calls",
    kinds={"postgres"},
    check_specs=[
        dg.AssetCheckSpec(
            "reconciled_with_ghl",
            asset="all_calls",
            description="Rows stored plus rows rejected for the run's windows equal GHL's export total.",
        )
    ],
    description=(
        "The dashboard's call log: GHL call messages of one project (GHL location) for one calendar day "
        "in the project's time zone, upserted on ghl_id (newest version wins)."
    ),
)
def all_calls(
    context: dg.AssetExecutionContext, ghl: GHLResource, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    """Sync the partitions of this run from GHL into ``all_calls``."""
    days_by_project: dict[str, list[date]] = defaultdict(list)
    for key in context.partition_keys:
        day, project_name = split_partition_key(key)
        days_by_project[project_name].append(day)

    engine = warehouse.engine()
    per_partition: dict[str, dict[str, int]] = {}
    run_totals = {"fetched": 0, "new_records": 0, "updated_records": 0, "rejected_records": 0}
    requests = 0
    reconciliation: dict[str, dict[str, int]] = {}
    for project_name, days in days_by_project.items():
        project = get_project(engine, project_name)
        if project is None:
            raise dg.Failure(f"project {project_name!r} is not in the projects table")
        if not project.active:
            raise dg.Failure(f"project {project_name!r} is inactive; inactive projects are never synced")
        result = sync_spans(
            context.op_execution_context,
            engine=engine,
            ghl=ghl,
            project=project,
            spans=consecutive_ranges(days),
        )
        requests += result.requests
        if result.ghl_total is not None:
            reconciliation[project_name] = {
                "ghl_total": result.ghl_total,
                "stored": stored_in_window(engine, project_name, result.window_start, result.window_end),
                "rejected": result.totals.rejected,
            }
        rows = stored_rows(engine, project_name, days)
        for day in days:
            meta = partition_metadata(result.by_date[day], rows[day])
            per_partition[str(dg.MultiPartitionKey({"date": day.isoformat(), "project": project_name}))] = (
                meta
            )
        for name, value in result.totals.as_dict().items():
            if name in run_totals:
                run_totals[name] += value

    check = _reconciliation_result(reconciliation)
    if len(per_partition) == 1:
        (meta,) = per_partition.values()
        return dg.MaterializeResult(metadata={**meta, "ghl_requests": requests}, check_results=[check])

    # In a ranged run Dagster copies the result's metadata onto every partition, so the exact
    # per-partition counts go out as one observation per partition, and the materialization carries
    # run totals under names that say so.
    for key, meta in per_partition.items():
        context.log_event(dg.AssetObservation(asset_key=context.asset_key, partition=key, metadata=meta))
    return dg.MaterializeResult(
        metadata={
            "partitions_in_run": len(per_partition),
            **{f"run_{name}": value for name, value in run_totals.items()},
            "ghl_requests": requests,
        },
        check_results=[check],
    )


def _reconciliation_result(by_project: dict[str, dict[str, int]]) -> dg.AssetCheckResult:
    """Passed when, per project, stored + rejected rows of the synced window equal GHL's export total.

    A window's rows can only exceed GHL's total if GHL deleted calls after we stored them; fewer means a
    call was lost on the way. Either way the figures are in the metadata.
    """
    off = {
        name: figures
        for name, figures in by_project.items()
        if figures["stored"] + figures["rejected"] != figures["ghl_total"]
    }
    return dg.AssetCheckResult(
        check_name="reconciled_with_ghl",
        passed=not off,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"projects": by_project, "mismatched": sorted(off)},
    )
