"""What the asset and the dashboard's job share: run a sync per project and report it to Dagster."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import dagster as dg
import sqlalchemy as sa

from ghl_pipeline.config import env_int
from ghl_pipeline.defs.partitions import date_partitions, partition_key
from ghl_pipeline.defs.resources import GHLResource
from ghl_pipeline.sync import Counts, ProjectFailure, SyncResult, classify_failure, retrying_db, sync_project
from ghl_pipeline.warehouse.projects import Project
from ghl_pipeline.windows import DayRange, ExactWindow

ALL_CALLS_KEY = dg.AssetKey("all_calls")

# Run tags (read by the sensors, the gateway and the dashboard's GraphQL query).
TAG_NEW = "ghl/new_records"
TAG_UPDATED = "ghl/updated_records"
TAG_REJECTED = "ghl/rejected_records"
TAG_SUMMARY = "ghl/summary"
# "auth" when a project of the run failed on its token (revoked, missing scope): never retried blindly.
TAG_FAILURE_KIND = "ghl/failure_kind"
TAG_FAILED_PROJECTS = "ghl/failed_projects"  # JSON {project name: failure kind}


def consecutive_ranges(days: Iterable[date]) -> list[DayRange]:
    """Runs of consecutive days as ``DayRange``s (one GHL export pass each)."""
    ranges: list[DayRange] = []
    for day in sorted(set(days)):
        if ranges and ranges[-1].last + timedelta(days=1) == day:
            ranges[-1] = DayRange(ranges[-1].first, day)
        else:
            ranges.append(DayRange(day, day))
    return ranges


@dataclass
class ProjectWork:
    """One project's share of a run: the spans to sync."""

    project: Project
    spans: list[DayRange | ExactWindow]


@dataclass
class RunOutcome:
    """What a run did per project: results of those that synced, failures of those that did not."""

    results: dict[str, SyncResult] = field(default_factory=dict)
    failures: dict[str, ProjectFailure] = field(default_factory=dict)

    def failure_description(self) -> str:
        """One line naming every failed project and its reason (the run's failure message)."""
        n = len(self.failures)
        named = "; ".join(f"{name} — {f.reason}" for name, f in sorted(self.failures.items()))
        return f"{n} project{'s' if n != 1 else ''} failed: {named}"


def project_workers() -> int:
    """Projects synced at once inside one run (``GHL_PROJECT_WORKERS``, default 4)."""
    return env_int("GHL_PROJECT_WORKERS", 4)


def _sync_one(engine: sa.Engine, ghl: GHLResource, work: ProjectWork) -> SyncResult:
    merged: SyncResult | None = None
    with ghl.client_for(work.project, engine=engine) as client:
        for span in work.spans:
            result = retrying_db(
                lambda span=span: sync_project(engine=engine, client=client, project=work.project, span=span),
                label=work.project.name,
            )
            merged = result if merged is None else _merge(merged, result)
        assert merged is not None, "a project's work needs at least one span"
        merged.requests = client.request_count
    return merged


def sync_projects(
    context: dg.OpExecutionContext,
    *,
    engine: sa.Engine,
    ghl: GHLResource,
    work: Sequence[ProjectWork],
    on_result: Callable[[SyncResult], None] = lambda result: None,
) -> RunOutcome:
    """Sync each project's spans, several projects at once; each succeeds or fails on its own.

    Every location has its own GHL budget, so projects run in parallel (bounded by
    ``GHL_PROJECT_WORKERS``). A project's failure is classified and recorded, never raised: the
    other projects go on. ``on_result`` runs in this (the op's) thread for each project that synced,
    as soon as it has, so what landed is reported even when a later project fails.
    """
    outcome = RunOutcome()
    workers = max(1, min(project_workers(), len(work)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ghl-project") as pool:
        futures = {pool.submit(_sync_one, engine, ghl, item): item.project for item in work}
        for future in as_completed(futures):
            project = futures[future]
            try:
                result = future.result()
            except Exception as exc:
                failure = classify_failure(exc)
                outcome.failures[project.name] = failure
                context.log.error(f"{project.name}: {failure.reason}")
                continue
            outcome.results[project.name] = result
            context.log.info(f"{project.name}: {result.totals.as_dict()} in {result.requests} GHL requests")
            on_result(result)
    if outcome.failures:
        context.instance.add_run_tags(context.run_id, failure_tags(outcome.failures))
    return outcome


def failure_tags(failures: Mapping[str, ProjectFailure]) -> dict[str, str]:
    """Tags naming a run's failed projects and their kinds (read by the failed-partitions sensor)."""
    tags = {TAG_FAILED_PROJECTS: json.dumps({n: f.kind for n, f in sorted(failures.items())})}
    if any(f.kind == "auth" for f in failures.values()):
        tags[TAG_FAILURE_KIND] = "auth"  # an instance-side filter for the sensors: never retried blindly
    return tags


def _merge(a: SyncResult, b: SyncResult) -> SyncResult:
    a.totals.add(b.totals)
    for day, counts in b.by_date.items():
        a.by_date[day].add(counts)
    a.window_start = min(a.window_start, b.window_start)
    a.window_end = max(a.window_end, b.window_end)
    for name, reason in b.enrichment_missing.items():
        a.enrichment_missing.setdefault(name, reason)
    a.windows.extend(b.windows)
    a.ghl_total = None if None in (a.ghl_total, b.ghl_total) else a.ghl_total + b.ghl_total
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


def summary_tags(
    results: Mapping[str, SyncResult], failures: Mapping[str, ProjectFailure] | None = None
) -> dict[str, str]:
    """The run summary as tags: counted once per run from the sync results, never from metadata copies.

    ``failed_projects`` names each project that failed with its kind and reason (CONTRACT §4).
    """
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
        "failed_projects": {name: f.as_dict() for name, f in sorted((failures or {}).items())},
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
