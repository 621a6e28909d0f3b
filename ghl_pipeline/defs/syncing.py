"""What the asset and the dashboard's job share: run a sync per project and report it to Dagster."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta

import dagster as dg
import sqlalchemy as sa

from ghl_pipeline.defs.partitions import date_partitions, partition_key, partition_key_problem
from ghl_pipeline.defs.resources import GHLResource
from ghl_pipeline.ghl.errors import GHLAccessError, GHLError
from ghl_pipeline.sync import Counts, SyncResult, sync_project
from ghl_pipeline.warehouse.projects import Project
from ghl_pipeline.windows import DayRange, ExactWindow

ALL_CALLS_KEY = dg.AssetKey("all_calls")

# Run tags (read by the sensors, the gateway and the dashboard's GraphQL query).
TAG_NEW = "ghl/new_records"
TAG_UPDATED = "ghl/updated_records"
TAG_REJECTED = "ghl/rejected_records"
TAG_SUMMARY = "ghl/summary"
TAG_FAILURE_KIND = "ghl/failure_kind"  # "auth" for a revoked token or a missing scope: never retried blindly
TAG_FAILED_PROJECT = "ghl/failed_project"


def consecutive_ranges(days: Iterable[date]) -> list[DayRange]:
    """Runs of consecutive days as ``DayRange``s (one GHL export pass each)."""
    ranges: list[DayRange] = []
    for day in sorted(set(days)):
        if ranges and ranges[-1].last + timedelta(days=1) == day:
            ranges[-1] = DayRange(ranges[-1].first, day)
        else:
            ranges.append(DayRange(day, day))
    return ranges


def sync_spans(
    context: dg.OpExecutionContext,
    *,
    engine: sa.Engine,
    ghl: GHLResource,
    project: Project,
    spans: Iterable[DayRange | ExactWindow],
) -> SyncResult:
    """Sync ``project`` over ``spans`` and merge the results; on a GHL error, tag the run and fail."""
    merged: SyncResult | None = None
    with ghl.client_for(project, engine=engine) as client:
        try:
            for span in spans:
                result = sync_project(engine=engine, client=client, project=project, span=span)
                merged = result if merged is None else _merge(merged, result)
        except GHLAccessError as exc:
            # A revoked token or a missing scope will fail the same way on every retry: say so on
            # the run, where the UI and the failure sensor see it, instead of retrying blindly.
            context.instance.add_run_tags(
                context.run_id, {TAG_FAILURE_KIND: "auth", TAG_FAILED_PROJECT: project.name}
            )
            raise dg.Failure(
                description=f"GHL refused access for project {project.name!r}: {exc}",
                metadata={"project": project.name, "failure_kind": "auth"},
                allow_retries=False,
            ) from None
        except GHLError as exc:
            context.instance.add_run_tags(
                context.run_id, {TAG_FAILURE_KIND: "ghl", TAG_FAILED_PROJECT: project.name}
            )
            raise dg.Failure(
                description=f"GHL sync failed for project {project.name!r}: {exc}",
                metadata={"project": project.name, "failure_kind": "ghl"},
            ) from None
        if merged is not None:
            merged.requests = client.request_count
    assert merged is not None, "sync_spans needs at least one span"
    return merged


def _merge(a: SyncResult, b: SyncResult) -> SyncResult:
    a.totals.add(b.totals)
    for day, counts in b.by_date.items():
        a.by_date[day].add(counts)
    a.window_start = min(a.window_start, b.window_start)
    a.window_end = max(a.window_end, b.window_end)
    for name, reason in b.enrichment_missing.items():
        a.enrichment_missing.setdefault(name, reason)
    return a


def stored_rows(engine: sa.Engine, project_name: str, days: Iterable[date]) -> dict[date, int]:
    """Rows ``all_calls`` holds per local call date for one project (``dagster/row_count``)."""
    days = sorted(set(days))
    if not days:
        return {}
    query = sa.text(
        "SELECT call_date, count(*) FROM all_calls"
        " WHERE project_name = :project AND call_date BETWEEN :first AND :last GROUP BY call_date"
    )
    with engine.connect() as conn:
        found = dict(conn.execute(query, {"project": project_name, "first": days[0], "last": days[-1]}).all())
    return {day: int(found.get(day, 0)) for day in days}


def stored_in_window(engine: sa.Engine, project_name: str, start: datetime, end: datetime) -> int:
    """Rows ``all_calls`` holds for one project with a start time in ``[start, end)``."""
    query = sa.text(
        "SELECT count(*) FROM all_calls WHERE project_name = :project"
        " AND call_started_at >= :start AND call_started_at < :end"
    )
    with engine.connect() as conn:
        return int(conn.execute(query, {"project": project_name, "start": start, "end": end}).scalar_one())


def partition_metadata(counts: Counts, row_count: int) -> dict[str, int]:
    """Metadata of one partition's materialization."""
    return {
        "fetched": counts.fetched,
        "new_records": counts.new,
        "updated_records": counts.updated,
        "rejected_records": counts.rejected,
        # Of rejected_records: messages of the call export that are not a call type all_calls keeps.
        "unrecognised_records": counts.unrecognised,
        "dagster/row_count": row_count,
    }


def log_partition_materializations(
    context: dg.OpExecutionContext,
    *,
    engine: sa.Engine,
    result: SyncResult,
    days: Iterable[date],
) -> int:
    """Log a materialization of each `all_calls` partition this sync fully covered; returns how many.

    Days outside the ``date`` partitions (before their start) are synced but have no partition to show.
    """
    if partition_key_problem(result.project_name) is not None:
        return 0
    existing = set(date_partitions.get_partition_keys())
    days = [d for d in days if d.isoformat() in existing]
    rows = stored_rows(engine, result.project_name, days)
    for day in days:
        context.log_event(
            dg.AssetMaterialization(
                asset_key=ALL_CALLS_KEY,
                partition=partition_key(day, result.project_name),
                metadata=partition_metadata(result.by_date.get(day, Counts()), rows[day]),
            )
        )
    return len(days)


def summary_tags(results: Mapping[str, SyncResult]) -> dict[str, str]:
    """The run summary as tags: counted once per run from the sync results, never from metadata copies."""
    totals = Counts()
    projects = {}
    for name, result in results.items():
        totals.add(result.totals)
        projects[name] = {
            "new_records": result.totals.new,
            "updated_records": result.totals.updated,
            "rejected_records": result.totals.rejected,
            "fetched": result.totals.fetched,
            "ghl_requests": result.requests,
        }
    summary = {
        "new_records": totals.new,
        "updated_records": totals.updated,
        "rejected_records": totals.rejected,
        "projects": projects,
        # Projects that synced in a degraded way: enrichment GHL refused, non-call messages rejected.
        "degraded": {
            name: {"enrichment_missing": r.enrichment_missing, "unrecognised_records": r.totals.unrecognised}
            for name, r in results.items()
            if r.enrichment_missing or r.totals.unrecognised
        },
    }
    return {
        TAG_NEW: str(totals.new),
        TAG_UPDATED: str(totals.updated),
        TAG_REJECTED: str(totals.rejected),
        TAG_SUMMARY: json.dumps(summary, separators=(",", ":"), sort_keys=True),
    }
