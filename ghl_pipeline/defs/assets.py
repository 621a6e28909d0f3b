"""The `all_calls` asset: one partition per project per local calendar day.

A run may cover many projects (a backfill rectangle, the recent-calls schedule's one run per tick).
Each project succeeds or fails on its own: the asset logs a materialization for every partition that
landed, with that partition's own counts, so Dagster marks exactly those MATERIALIZED; when any project
failed the run fails at the end, naming each, and only the failed projects' partitions are FAILED.
Partitions whose day has not begun in the project's zone are skipped (left missing), never synced.
"""

import contextlib
import os
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import sqlalchemy as sa

from ghl_pipeline.config import background_nice
from ghl_pipeline.defs.liveness import heartbeat
from ghl_pipeline.defs.partitions import all_calls_partitions, partition_key, split_partition_key
from ghl_pipeline.defs.resources import GHLResource, WarehouseResource
from ghl_pipeline.defs.syncing import (
    ProjectWork,
    RunOutcome,
    consecutive_ranges,
    partition_metadata,
    stored_in_window,
    stored_rows,
    summary_tags,
    sync_projects,
)
from ghl_pipeline.sync import ProjectFailure, SyncResult
from ghl_pipeline.warehouse.projects import Project, list_projects
from ghl_pipeline.warehouse.sync_state import known_timezones
from ghl_pipeline.windows import zone_info

# A run tagged with this syncs, per project, only its last N local days within the run's partitions:
# the recent-calls schedule covers every project in one run although their "today"s differ.
TAG_RECENT_DAYS = "ghl/recent_days"


def _now() -> datetime:
    """The asset's clock (a seam for tests)."""
    return datetime.now(UTC)


_reniced = False


def _yield_cpu_to_the_dashboard() -> None:
    """Lower this run worker's CPU priority once (``GHL_BACKGROUND_NICE``): `all_calls` is background work.

    Only in a process of its own (a Dagster run worker, a backfill worker), never in a main process
    that executes jobs in-process (tests, `ghl-pipeline sync`).
    """
    global _reniced
    if _reniced:
        return
    _reniced = True
    niceness = background_nice()
    if niceness and _is_run_worker():
        with contextlib.suppress(OSError):
            os.nice(niceness)


def _is_run_worker() -> bool:
    import multiprocessing

    return multiprocessing.current_process().name != "MainProcess"


@dataclass
class PartitionPlan:
    """Which of a run's partitions are synced, and which are skipped and why."""

    work: list[ProjectWork] = field(default_factory=list)
    days: dict[str, list[date]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # project -> why it was not synced
    refused: dict[str, str] = field(default_factory=dict)  # project -> why it cannot be (fails the run)


def local_today(project: Project, resolved: dict[str, str], now: datetime) -> date:
    """The project's today: in its configured zone, else the zone GHL last gave, else UTC."""
    return now.astimezone(zone_info(project.timezone or resolved.get(project.name) or "UTC")).date()


def plan_partitions(
    engine: sa.Engine, keys: Iterable[str], *, now: datetime, recent_days: int | None = None
) -> PartitionPlan:
    """Group a run's partition keys by project and drop what must not be synced."""
    days_by_project: dict[str, list[date]] = defaultdict(list)
    for key in keys:
        day, name = split_partition_key(key)
        days_by_project[name].append(day)
    resolved = known_timezones(engine)
    # One query for every project of the run (a run may cover hundreds), not one per project.
    known = {p.name: p for p in list_projects(engine, active_only=False)} if days_by_project else {}
    plan = PartitionPlan()
    several = len(days_by_project) > 1
    for name, days in days_by_project.items():
        project = known.get(name)
        why = (
            "it is not in the projects table (or lacks a location id or token)"
            if project is None
            else ("it is inactive; inactive projects are never synced" if not project.active else None)
        )
        if why:
            # In a run over many projects (a backfill, the schedule) one such project is skipped and
            # named; a run for that project alone fails, because what was asked cannot be done.
            (plan.skipped if several else plan.refused)[name] = why
            continue
        today = local_today(project, resolved, now)
        first = today - timedelta(days=recent_days - 1) if recent_days else date.min
        wanted = sorted(d for d in set(days) if first <= d <= today)
        if not wanted:
            plan.skipped[name] = "none of its days in this run has begun in its time zone"
            continue
        plan.days[name] = wanted
        plan.work.append(
            ProjectWork(
                project,
                consecutive_ranges(wanted),
                count_days=lambda _, wanted=wanted: wanted,
                reconcile=True,
            )
        )
    return plan


@dg.asset(
    name="all_calls",
    group_name="ghl",
    partitions_def=all_calls_partitions,
    # Backfills run one run per project per ≤31 days: one GHL export pass per run, and Dagster's
    # per-run overhead (a few seconds) stays small next to a month of calls.
    backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=31),
    # Materializations are logged per partition (exact counts each); none is implied by a return.
    output_required=False,
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
) -> Iterator[dg.AssetCheckResult]:
    """Sync the partitions of this run from GHL into ``all_calls``, each project on its own."""
    recent = context.run.tags.get(TAG_RECENT_DAYS)
    _yield_cpu_to_the_dashboard()
    with heartbeat(context):
        engine = warehouse.engine()
        plan = plan_partitions(
            engine, context.partition_keys, now=_now(), recent_days=int(recent) if recent else None
        )
        for name, why in sorted(plan.skipped.items()):
            context.log.warning(f"skipping {name!r}: {why}")
        single = len(context.partition_keys) == 1

        def report(result: SyncResult) -> None:
            name = result.project_name
            if result.enrichment_missing:
                # Calls landed; these columns are null on new rows. Say so where the run is read.
                context.log.warning(
                    f"{name}: synced without "
                    + "; ".join(f"{what} ({why})" for what, why in sorted(result.enrichment_missing.items()))
                )
            if result.totals.unrecognised:
                context.log.warning(
                    f"{name}: {result.totals.unrecognised} message(s) of the call export are not a call "
                    "type all_calls keeps; kept in all_calls_rejects (rule unrecognised_call_type)"
                )
            degraded = (
                {"enrichment_missing": dg.MetadataValue.json({name: dict(result.enrichment_missing)})}
                if result.enrichment_missing
                else {}
            )
            days = plan.days[name]
            rows = result.stored_by_date
            if rows is None:
                rows = stored_rows(engine, name, days)
            for day in days:
                meta = {**partition_metadata(result.by_date[day], rows[day]), **degraded}
                if single:
                    meta["ghl_requests"] = result.requests
                context.log_event(
                    dg.AssetMaterialization(
                        asset_key=context.asset_key, partition=str(partition_key(day, name)), metadata=meta
                    )
                )

        outcome = sync_projects(
            context.op_execution_context, engine=engine, ghl=ghl, work=plan.work, on_result=report
        )
        for name, why in plan.refused.items():
            outcome.failures[name] = ProjectFailure("refused", why)
        context.instance.add_run_tags(context.run_id, summary_tags(outcome.results, outcome.failures))
        yield _reconciliation_result(engine, outcome)
    if outcome.failures:
        raise dg.Failure(
            description=outcome.failure_description(),
            metadata={"failed_projects": {n: f.as_dict() for n, f in outcome.failures.items()}},
            allow_retries=False,
        )


def _reconciliation_result(engine: sa.Engine, outcome: RunOutcome) -> dg.AssetCheckResult:
    """Passed when, per project, stored + rejected rows of the synced window equal GHL's export total.

    Fewer means calls were lost on the way: failed at ERROR. More can only mean GHL deleted calls after
    we stored them: failed at WARN. Enrichment GHL refused (agent names, contacts) does not fail the
    check, but it is named in the metadata and the description, with the reason.
    """
    by_project = {
        name: {
            "ghl_total": r.ghl_total,
            # Per window synced (a run may sync separate spans of one project), counted in its thread.
            "stored": (
                r.stored_in_window
                if r.stored_in_window is not None
                else sum(stored_in_window(engine, name, start, end) for start, end, _ in r.windows)
            ),
            "rejected": r.totals.rejected,
        }
        for name, r in sorted(outcome.results.items())
        if r.ghl_total is not None
    }
    enrichment_missing = {
        name: dict(r.enrichment_missing)
        for name, r in sorted(outcome.results.items())
        if r.enrichment_missing
    }
    short = sorted(name for name, f in by_project.items() if f["stored"] + f["rejected"] < f["ghl_total"])
    over = sorted(name for name, f in by_project.items() if f["stored"] + f["rejected"] > f["ghl_total"])
    notes = []
    if short:
        notes.append(
            "fewer rows than GHL counts (calls lost on the way): "
            + ", ".join(
                f"{name} {by_project[name]['stored']}+{by_project[name]['rejected']} of "
                f"{by_project[name]['ghl_total']}"
                for name in short
            )
        )
    if over:
        notes.append("more rows than GHL counts (deleted in GHL?): " + ", ".join(over))
    for name, missing in sorted((enrichment_missing or {}).items()):
        notes.append(
            f"{name} synced without " + "; ".join(f"{what} ({why})" for what, why in sorted(missing.items()))
        )
    return dg.AssetCheckResult(
        check_name="reconciled_with_ghl",
        passed=not short and not over,
        severity=dg.AssetCheckSeverity.ERROR if short else dg.AssetCheckSeverity.WARN,
        description="; ".join(notes) or "stored + rejected = GHL's total for every project",
        metadata={
            "projects": by_project,
            "mismatched": sorted(short + over),
            "short": short,
            "enrichment_missing": dg.MetadataValue.json(enrichment_missing or {}),
        },
    )
