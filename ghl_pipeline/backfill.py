"""``ghl-pipeline backfill``: refill missing days through Dagster, batched, resumable, with progress.

Each run covers one project and up to 31 consecutive days (the asset's backfill policy), so one GHL
export pass serves a month and Dagster's per-run overhead stays small. Runs of different projects go
in parallel worker processes: GHL's budget is per location, so projects do not slow each other, and
runs of the same location share its budget through Postgres. Days already materialized are skipped,
so a killed backfill resumes by running the same command again — upserts make a repeated day harmless.
"""

from __future__ import annotations

import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import date, timedelta
from itertools import zip_longest
from multiprocessing import get_context

import dagster as dg

from ghl_pipeline.config import partitions_start
from ghl_pipeline.defs.partitions import (
    PROJECTS_PARTITIONS_NAME,
    all_calls_partitions,
    partition_key,
    project_key,
)
from ghl_pipeline.defs.recovery import PartitionSpan, spans_of
from ghl_pipeline.defs.syncing import ALL_CALLS_KEY, TAG_SUMMARY
from ghl_pipeline.runs import dagster_console_level, dagster_instance, failure_reason
from ghl_pipeline.warehouse.db import get_engine
from ghl_pipeline.warehouse.projects import list_projects
from ghl_pipeline.warehouse.schema import upgrade

MAX_BACKFILL_DAYS = 3660
# Workers mostly wait on GHL's per-location rate limit, so more than the cores is fine; each needs ~150 MB.
DEFAULT_WORKERS = 4


class BackfillError(Exception):
    """A backfill that cannot start: the message names the problem."""


@dataclass
class SpanOutcome:
    """What one run of the backfill did."""

    span: PartitionSpan
    ok: bool
    seconds: float
    counts: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    run_id: str | None = None


@dataclass
class BackfillReport:
    """The whole backfill: what ran, what was skipped as already done, what failed."""

    outcomes: list[SpanOutcome]
    skipped_days: int
    seconds: float

    @property
    def ok(self) -> bool:
        """True when every run succeeded."""
        return all(o.ok for o in self.outcomes)

    def describe(self) -> str:
        """A human summary, with how to resume when something failed."""
        done = [o for o in self.outcomes if o.ok]
        failed = [o for o in self.outcomes if not o.ok]
        new = sum(o.counts.get("new_records", 0) for o in done)
        updated = sum(o.counts.get("updated_records", 0) for o in done)
        lines = [
            f"Backfill: {len(done)} runs succeeded, {len(failed)} failed, {self.skipped_days} days already "
            f"materialized (skipped), in {self.seconds:.1f} s: {new} new and {updated} updated call records."
        ]
        for o in failed:
            lines.append(f"  FAILED {o.span.label()}: {o.error}")
        if failed:
            lines.append("Run the same command again to resume: finished days are skipped.")
        return "\n".join(lines)


def plan_backfill(
    instance: dg.DagsterInstance, *, first: date, last: date, project_name: str | None, force: bool
) -> tuple[list[PartitionSpan], int]:
    """The runs a backfill needs (one project, ≤31 days each) and how many days are already done."""
    if last < first:
        raise BackfillError("--to: must not be before --from")
    if (last - first).days + 1 > MAX_BACKFILL_DAYS:
        raise BackfillError(f"--from/--to: more than {MAX_BACKFILL_DAYS} days")
    start = partitions_start()
    if first < start:
        raise BackfillError(
            f"--from: {first} is before the first partition ({start}); set GHL_PARTITIONS_START earlier"
        )
    newest = date.today() + timedelta(days=1)
    if last > newest:
        raise BackfillError(f"--to: {last} is in the future")

    engine = get_engine()
    upgrade(engine)
    projects = list_projects(engine, active_only=True)
    if project_name is not None:
        projects = [p for p in projects if p.name == project_name]
        if not projects:
            raise BackfillError(f"--project: {project_name!r} is not an active project")
    if not projects:
        raise BackfillError("there are no active projects")
    instance.add_dynamic_partitions(PROJECTS_PARTITIONS_NAME, [project_key(p.name) for p in projects])

    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    per_project: list[list[PartitionSpan]] = []
    skipped = 0
    for project in projects:
        todo = days
        if not force:
            keys = [str(partition_key(d, project.name)) for d in days]
            # Dagster answers None, not {}, while the asset was never materialized on this instance.
            status = instance.get_status_by_partition(ALL_CALLS_KEY, keys, all_calls_partitions) or {}
            todo = [
                d
                for d, k in zip(days, keys, strict=True)
                if status.get(k) != dg.AssetPartitionStatus.MATERIALIZED
            ]
            skipped += len(days) - len(todo)
        per_project.append(spans_of(project.name, todo))
    # Interleave projects, so parallel workers hit different GHL locations.
    spans = [s for group in zip_longest(*per_project) for s in group if s is not None]
    return spans, skipped


def _run_span(span: PartitionSpan) -> SpanOutcome:
    """Worker: one run of ``refresh_all_calls`` over ``span`` on the shared instance."""
    from ghl_pipeline.definitions import defs

    started = time.monotonic()
    instance = dg.DagsterInstance.get()
    job = defs.resolve_job_def("refresh_all_calls")
    result = job.execute_in_process(
        instance=instance,
        tags={**span.tags(), "ghl/trigger": "backfill"},
        raise_on_error=False,
        run_config={"loggers": {"console": {"config": {"log_level": dagster_console_level()}}}},
    )
    elapsed = time.monotonic() - started
    if not result.success:
        return SpanOutcome(span, False, elapsed, error=failure_reason(result), run_id=result.run_id)
    run = instance.get_run_by_id(result.run_id)
    summary = json.loads(run.tags.get(TAG_SUMMARY, "{}")) if run else {}
    counts = {k: int(summary.get(k, 0)) for k in ("new_records", "updated_records", "rejected_records")}
    return SpanOutcome(span, True, elapsed, counts=counts, run_id=result.run_id)


def run_backfill(
    *, first: date, last: date, project_name: str | None, force: bool = False, workers: int = DEFAULT_WORKERS
) -> BackfillReport:
    """Plan and run a backfill, printing a progress line per finished run."""
    if workers < 1 or workers > 16:
        raise BackfillError("--workers: must be between 1 and 16")
    started = time.monotonic()
    instance = dagster_instance()
    spans, skipped = plan_backfill(instance, first=first, last=last, project_name=project_name, force=force)
    if workers > 1 and _uses_sqlite(instance):
        # Dagster's SQLite storage locks under several writing processes; Postgres storage does not.
        print(
            "Dagster storage is SQLite: running one worker (use the repo's dagster.yaml for parallel runs).",
            file=sys.stderr,
        )
        workers = 1
    total = len(spans)
    print(
        f"Backfill {first}..{last}: {total} runs to do, {skipped} days already materialized.",
        file=sys.stderr,
        flush=True,
    )
    outcomes: list[SpanOutcome] = []
    if spans:
        with ProcessPoolExecutor(max_workers=min(workers, total), mp_context=_worker_context()) as pool:
            futures = {pool.submit(_run_span, span): span for span in spans}
            for n, future in enumerate(as_completed(futures), start=1):
                try:
                    outcome = future.result()
                except Exception as exc:  # noqa: BLE001 - a crashed worker is one failed run, not the end
                    outcome = SpanOutcome(futures[future], False, 0.0, error=f"{type(exc).__name__}: {exc}")
                outcomes.append(outcome)
                print(_progress_line(n, total, outcome), file=sys.stderr, flush=True)
    return BackfillReport(outcomes, skipped, time.monotonic() - started)


def _worker_context():
    """Workers forked from a server that has already imported Dagster and the definitions.

    A fresh ``spawn`` worker spends seconds importing Dagster; ten of them on two cores cost more than
    a rate-limited month of one location. The fork server imports once (no engines or connections are
    open at import time, so nothing is shared by accident) and each worker forks from it in
    milliseconds.
    """
    context = get_context("forkserver")
    context.set_forkserver_preload(["ghl_pipeline.definitions"])
    return context


def _uses_sqlite(instance: dg.DagsterInstance) -> bool:
    return "sqlite" in type(instance.run_storage).__name__.lower()


def _progress_line(n: int, total: int, outcome: SpanOutcome) -> str:
    head = f"[{n}/{total}] {outcome.span.label()}"
    if not outcome.ok:
        return f"{head}: FAILED after {outcome.seconds:.1f} s: {outcome.error}"
    c = outcome.counts
    new, updated, rejected = (c.get(k, 0) for k in ("new_records", "updated_records", "rejected_records"))
    return f"{head}: {new} new, {updated} updated, {rejected} rejected in {outcome.seconds:.1f} s"
