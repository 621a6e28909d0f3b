"""Sensors and the schedule that keep `all_calls` whole without anyone watching.

- ``projects_sensor``: the ``projects`` dynamic partitions follow the active rows of ``projects``.
- ``failed_partitions_sensor``: a failed partition run is retried after 1, 2, 4 … minutes (capped),
  a bounded number of times; auth failures are never retried blindly.
- ``missing_days_sensor``: days in a lookback window never materialized (or whose last attempt
  failed) are requested, newest first, a bounded number of runs per tick.
- ``recent_calls_schedule``: today and yesterday of every active project are re-synced, because
  calls change after they end (status, duration, agent).
"""

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import dagster as dg
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    PARTITION_NAME_TAG,
)

from ghl_pipeline.config import partitions_start
from ghl_pipeline.defs.jobs import refresh_all_calls
from ghl_pipeline.defs.partitions import (
    PROJECTS_PARTITIONS_NAME,
    all_calls_partitions,
    partition_key,
    partition_key_problem,
    project_partitions,
    split_partition_key,
)
from ghl_pipeline.defs.resources import WarehouseResource
from ghl_pipeline.defs.syncing import ALL_CALLS_KEY, TAG_FAILED_PROJECT, TAG_FAILURE_KIND
from ghl_pipeline.warehouse.projects import Project, list_projects
from ghl_pipeline.warehouse.sync_state import known_timezones
from ghl_pipeline.windows import DayRange

TAG_ATTEMPT = "ghl/attempt"
TAG_RETRY_OF = "ghl/retry_of"
TAG_PROJECT = "ghl/project"
TAG_TRIGGER = "ghl/trigger"

MAX_ATTEMPTS = 5  # the first run plus four retries
RETRY_BASE_MINUTES = 1
RETRY_CAP_MINUTES = 60
RUN_CHUNK_DAYS = 31  # same as the asset's backfill policy


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from exc
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {value}")
    return value


def gap_lookback_days() -> int:
    """How far back the missing-days sensor looks (``GHL_GAP_LOOKBACK_DAYS``, default 120)."""
    return _env_int("GHL_GAP_LOOKBACK_DAYS", 120)


def gap_runs_per_tick() -> int:
    """At most this many runs per missing-days tick (``GHL_GAP_RUNS_PER_TICK``, default 4)."""
    return _env_int("GHL_GAP_RUNS_PER_TICK", 4)


def _now() -> datetime:
    """The sensors' clock (a seam for tests)."""
    return datetime.now(UTC)


def retry_delay(attempt: int) -> timedelta:
    """Wait before retry number ``attempt`` (1-based): 1, 2, 4, … minutes, capped at an hour."""
    return timedelta(minutes=min(RETRY_BASE_MINUTES * 2 ** (attempt - 1), RETRY_CAP_MINUTES))


@dataclass(frozen=True, slots=True)
class PartitionSpan:
    """One project's consecutive local days, as one run."""

    project_name: str
    days: DayRange

    def tags(self) -> dict[str, str]:
        """Run tags that make Dagster run exactly these partitions (a range when more than one)."""
        first = str(partition_key(self.days.first, self.project_name))
        last = str(partition_key(self.days.last, self.project_name))
        tags = {TAG_PROJECT: self.project_name}
        if first == last:
            tags[PARTITION_NAME_TAG] = first
        else:
            tags[ASSET_PARTITION_RANGE_START_TAG] = first
            tags[ASSET_PARTITION_RANGE_END_TAG] = last
        return tags

    def label(self) -> str:
        """``project:first..last`` for run keys and messages."""
        return f"{self.project_name}:{self.days.first}..{self.days.last}"


def spans_of(
    project_name: str, days: Iterable[date], *, max_days: int = RUN_CHUNK_DAYS
) -> list[PartitionSpan]:
    """Consecutive runs of ``days``, at most ``max_days`` long, newest first."""
    spans: list[PartitionSpan] = []
    for day in sorted(set(days), reverse=True):
        if (
            spans
            and spans[-1].days.first - timedelta(days=1) == day
            and ((spans[-1].days.last - day).days < max_days)
        ):
            spans[-1] = PartitionSpan(project_name, DayRange(day, spans[-1].days.last))
        else:
            spans.append(PartitionSpan(project_name, DayRange(day, day)))
    return spans


def run_request(span: PartitionSpan, *, run_key: str, tags: dict[str, str] | None = None) -> dg.RunRequest:
    """A run of ``refresh_all_calls`` over ``span``."""
    return dg.RunRequest(
        run_key=run_key, job_name=refresh_all_calls.name, tags={**span.tags(), **(tags or {})}
    )


def project_timezone(project: Project, resolved: dict[str, str]) -> ZoneInfo:
    """The zone a project's "today" is read in: configured, else last resolved from GHL, else UTC."""
    return ZoneInfo(project.timezone or resolved.get(project.name) or "UTC")


def _keyable(projects: Sequence[Project]) -> list[Project]:
    return [p for p in projects if partition_key_problem(p.name) is None]


# --------------------------------------------------------------------------------------------------


@dg.sensor(
    name="projects_sensor",
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Adds a `projects` partition for every active project; never deletes one (history stays).",
)
def projects_sensor(context: dg.SensorEvaluationContext, warehouse: WarehouseResource) -> dg.SensorResult:
    """Keep the ``projects`` dynamic partitions in step with the active rows of ``projects``."""
    active = list_projects(warehouse.engine(), active_only=True)
    refused = [(p.name, partition_key_problem(p.name)) for p in active if partition_key_problem(p.name)]
    for name, problem in refused:
        context.log.error(f"project {name!r} cannot be a partition key: {problem}; rename it in projects")
    existing = set(context.instance.get_dynamic_partitions(PROJECTS_PARTITIONS_NAME))
    new = sorted(p.name for p in _keyable(active) if p.name not in existing)
    if not new:
        return dg.SensorResult(skip_reason=dg.SkipReason("no new active projects"))
    return dg.SensorResult(dynamic_partitions_requests=[project_partitions.build_add_request(new)])


def _run_partition_keys(run: dg.DagsterRun) -> list[str]:
    """The `all_calls` partition keys a run covered (single partition or a range)."""
    if run.tags.get(PARTITION_NAME_TAG):
        return [run.tags[PARTITION_NAME_TAG]]
    start, end = run.tags.get(ASSET_PARTITION_RANGE_START_TAG), run.tags.get(ASSET_PARTITION_RANGE_END_TAG)
    if not (start and end):
        return []
    first_day, first_project = split_partition_key(start)
    last_day, last_project = split_partition_key(end)
    if first_project != last_project:  # a rectangle over several projects: retry it as one span each
        return [
            str(partition_key(first_day + timedelta(days=i), p))
            for p in {first_project, last_project}
            for i in range((last_day - first_day).days + 1)
        ]
    return [
        str(partition_key(first_day + timedelta(days=i), first_project))
        for i in range((last_day - first_day).days + 1)
    ]


@dg.sensor(
    name="failed_partitions_sensor",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Retries failed all_calls partitions after 1, 2, 4 … minutes (max 60), up to 5 attempts; "
    "auth failures (revoked token, missing scope) are not retried.",
)
def failed_partitions_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    """Retry failed `all_calls` runs with growing delays; surface auth failures instead of retrying."""
    instance = context.instance
    now = _now()
    recent = instance.get_run_records(
        filters=dg.RunsFilter(updated_after=now - timedelta(days=2)), limit=2000
    )
    # A failed run already retried is the retry's business now: only the newest failure counts.
    retried = {r.dagster_run.tags[TAG_RETRY_OF] for r in recent if TAG_RETRY_OF in r.dagster_run.tags}
    requests: list[dg.RunRequest] = []
    notes: list[str] = []
    for record in recent:
        run = record.dagster_run
        if run.status != dg.DagsterRunStatus.FAILURE or run.run_id in retried:
            continue
        if run.asset_selection and ALL_CALLS_KEY not in run.asset_selection:
            continue
        keys = _run_partition_keys(run)
        if not keys:
            continue
        if run.tags.get(TAG_FAILURE_KIND) == "auth":
            notes.append(
                f"not retrying {run.run_id[:8]}: GHL refused access for {run.tags.get(TAG_FAILED_PROJECT)!r}"
            )
            continue
        attempt = int(run.tags.get(TAG_ATTEMPT, "1"))
        if attempt >= MAX_ATTEMPTS:
            continue
        ended = datetime.fromtimestamp(record.end_time or record.update_timestamp.timestamp(), tz=UTC)
        if now < ended + retry_delay(attempt):
            continue
        # Dagster answers None, not {}, while the asset was never materialized on this instance.
        status = instance.get_status_by_partition(ALL_CALLS_KEY, keys, all_calls_partitions) or {}
        still_failed = [k for k in keys if status.get(k) == dg.AssetPartitionStatus.FAILED]
        if not still_failed:
            continue  # fixed since, or in progress
        by_project: dict[str, list[date]] = {}
        for key in still_failed:
            day, project = split_partition_key(key)
            by_project.setdefault(project, []).append(day)
        for project, days in by_project.items():
            for span in spans_of(project, days):
                requests.append(
                    run_request(
                        span,
                        run_key=f"retry:{span.label()}:attempt{attempt + 1}:{run.run_id}",
                        tags={TAG_ATTEMPT: str(attempt + 1), TAG_RETRY_OF: run.run_id, TAG_TRIGGER: "retry"},
                    )
                )
    for note in notes:
        context.log.warning(note)
    if not requests:
        return dg.SensorResult(skip_reason=dg.SkipReason("; ".join(notes) or "no failed partitions to retry"))
    return dg.SensorResult(run_requests=requests)


def _recent_auth_failures(instance: dg.DagsterInstance, since: datetime) -> set[str]:
    records = instance.get_run_records(
        filters=dg.RunsFilter(
            statuses=[dg.DagsterRunStatus.FAILURE], tags={TAG_FAILURE_KIND: "auth"}, updated_after=since
        ),
        limit=200,
    )
    return {
        r.dagster_run.tags[TAG_FAILED_PROJECT] for r in records if TAG_FAILED_PROJECT in r.dagster_run.tags
    }


@dg.sensor(
    name="missing_days_sensor",
    minimum_interval_seconds=300,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Requests all_calls partitions of the lookback window (default 120 days) that were never "
    "materialized or whose last attempt failed: newest first, a few runs per tick, skipping what runs.",
)
def missing_days_sensor(context: dg.SensorEvaluationContext, warehouse: WarehouseResource) -> dg.SensorResult:
    """Find the gaps of the lookback window and request them, newest first, bounded per tick."""
    instance = context.instance
    engine = warehouse.engine()
    projects = _keyable(list_projects(engine, active_only=True))
    registered = set(instance.get_dynamic_partitions(PROJECTS_PARTITIONS_NAME))
    projects = [p for p in projects if p.name in registered]
    if not projects:
        return dg.SensorResult(skip_reason=dg.SkipReason("no registered active projects"))

    now = _now()
    auth_failed = _recent_auth_failures(instance, now - timedelta(hours=24))
    resolved = known_timezones(engine)
    budget = gap_runs_per_tick()
    candidates: list[tuple[date, PartitionSpan]] = []
    for project in projects:
        if project.name in auth_failed:
            context.log.warning(f"skipping {project.name!r}: GHL refused its token in the last 24 hours")
            continue
        yesterday = now.astimezone(project_timezone(project, resolved)).date() - timedelta(days=1)
        first = max(partitions_start(), yesterday - timedelta(days=gap_lookback_days() - 1))
        days = [first + timedelta(days=i) for i in range((yesterday - first).days + 1)]
        keys = [str(partition_key(d, project.name)) for d in days]
        # Dagster answers None, not {}, while the asset was never materialized on this instance.
        status = instance.get_status_by_partition(ALL_CALLS_KEY, keys, all_calls_partitions) or {}
        gaps = [
            d
            for d, k in zip(days, keys, strict=True)
            if status.get(k) is None or status.get(k) == dg.AssetPartitionStatus.FAILED
        ]
        for span in spans_of(project.name, gaps):
            candidates.append((span.days.last, span))
    candidates.sort(key=lambda c: c[0], reverse=True)  # newest gaps first, across projects
    today = now.date().isoformat()
    requests = [
        # One request per span per day at most: a persistently failing day does not storm GHL.
        run_request(span, run_key=f"gap:{span.label()}:{today}", tags={TAG_TRIGGER: "gap"})
        for _, span in candidates[:budget]
    ]
    if not requests:
        return dg.SensorResult(skip_reason=dg.SkipReason("no gaps in the lookback window"))
    return dg.SensorResult(run_requests=requests)


def recent_calls_cron() -> str:
    """Cron of the late-data re-sync (``GHL_RECENT_SYNC_CRON``, default every 15 minutes)."""
    return os.environ.get("GHL_RECENT_SYNC_CRON") or "*/15 * * * *"


@dg.schedule(
    name="recent_calls_schedule",
    cron_schedule=recent_calls_cron(),
    job=refresh_all_calls,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Re-syncs today and yesterday of every active project: calls change after they end.",
)
def recent_calls_schedule(context: dg.ScheduleEvaluationContext, warehouse: WarehouseResource):
    """One run per active project over its local yesterday and today."""
    engine = warehouse.engine()
    registered = set(context.instance.get_dynamic_partitions(PROJECTS_PARTITIONS_NAME))
    resolved = known_timezones(engine)
    tick = context.scheduled_execution_time or datetime.now(UTC)
    requests = []
    for project in _keyable(list_projects(engine, active_only=True)):
        if project.name not in registered:
            continue
        today = tick.astimezone(project_timezone(project, resolved)).date()
        span = PartitionSpan(project.name, DayRange(today - timedelta(days=1), today))
        requests.append(
            run_request(
                span, run_key=f"recent:{span.label()}:{tick.isoformat()}", tags={TAG_TRIGGER: "schedule"}
            )
        )
    return requests or dg.SkipReason("no registered active projects")
