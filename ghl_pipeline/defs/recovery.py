"""Sensors and the schedule that keep `all_calls` whole without anyone watching.

- ``projects_sensor``: the ``projects`` dynamic partitions follow the active rows of ``projects``.
- ``failed_partitions_sensor``: a failed partition run is retried after 1, 2, 4 … minutes (capped),
  a bounded number of times; auth failures are never retried blindly.
- ``missing_days_sensor``: days in a lookback window never materialized (or whose last attempt
  failed) are requested, newest first, a bounded number of runs per tick.
- ``dead_runs_sensor``: a STARTED run whose heartbeat stopped (its worker or code server was killed)
  is marked failed, so the retry sensor sees its partitions instead of IN_PROGRESS forever.
- ``recent_calls_schedule``: today and yesterday of every active project are re-synced in one run per
  tick, because calls change after they end (status, duration, agent).

Every sensor that requests runs declares its job (the daemon refuses a RunRequest from a sensor
without a target). ``GHL_SENSOR_INTERVAL_SECONDS`` shortens every sensor's interval at once and
``GHL_RETRY_FIRST_DELAY_SECONDS`` the first retry's delay (README "Recovery").
"""

import functools
import json
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import dagster as dg
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    PARTITION_NAME_TAG,
)

from ghl_pipeline.config import (
    env_int,
    partitions_start,
    retry_first_delay_seconds,
    sensor_interval_seconds,
    stale_run_seconds,
)
from ghl_pipeline.defs.assets import TAG_RECENT_DAYS, local_today
from ghl_pipeline.defs.jobs import refresh_all_calls
from ghl_pipeline.defs.liveness import last_sign_of_life
from ghl_pipeline.defs.partitions import (
    all_calls_partitions,
    partition_key,
    project_key,
    project_partitions,
    registered_project_names,
    split_partition_key,
)
from ghl_pipeline.defs.resources import WarehouseResource
from ghl_pipeline.defs.syncing import ALL_CALLS_KEY, TAG_FAILED_PROJECTS, TAG_FAILURE_KIND
from ghl_pipeline.sync import is_transient_db_error
from ghl_pipeline.warehouse.projects import Project, list_projects
from ghl_pipeline.warehouse.sync_state import known_timezones
from ghl_pipeline.windows import DayRange

TAG_ATTEMPT = "ghl/attempt"
TAG_RETRY_OF = "ghl/retry_of"
TAG_PROJECT = "ghl/project"
TAG_TRIGGER = "ghl/trigger"

MAX_ATTEMPTS = 5  # the first run plus four retries
RETRY_CAP = timedelta(hours=1)
RUN_CHUNK_DAYS = 31  # same as the asset's backfill policy


def gap_lookback_days() -> int:
    """How far back the missing-days sensor looks (``GHL_GAP_LOOKBACK_DAYS``, default 120)."""
    return env_int("GHL_GAP_LOOKBACK_DAYS", 120)


def gap_runs_per_tick() -> int:
    """At most this many runs per missing-days tick (``GHL_GAP_RUNS_PER_TICK``, default 4)."""
    return env_int("GHL_GAP_RUNS_PER_TICK", 4)


def retry_runs_per_tick() -> int:
    """At most this many retry runs per failed-partitions tick (``GHL_RETRY_RUNS_PER_TICK``, default 8)."""
    return env_int("GHL_RETRY_RUNS_PER_TICK", 8)


def _now() -> datetime:
    """The sensors' clock (a seam for tests)."""
    return datetime.now(UTC)


def retry_delay(attempt: int) -> timedelta:
    """Wait before retry number ``attempt`` (1-based): the first delay (default 1 min), doubling, capped at 1 h."""
    first = timedelta(seconds=retry_first_delay_seconds())
    return min(first * 2 ** (attempt - 1), RETRY_CAP)


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


def _tolerates_warehouse_outage(fn):
    """A tick that finds the warehouse briefly unreachable (a restart, a failover) skips, saying why.

    The next tick tries again; a FAILURE tick would only say the same thing louder, and an outage that
    lasts shows on the freshness check.
    """

    @functools.wraps(fn)
    def tick(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            if not is_transient_db_error(exc):
                raise
            return dg.SkipReason(f"warehouse unreachable ({type(exc).__name__}); the next tick tries again")

    return tick


def _registered_active(context_instance: dg.DagsterInstance, warehouse: WarehouseResource) -> list[Project]:
    """Active projects that already have a ``project`` partition, in partition order."""
    active = {p.name: p for p in list_projects(warehouse.read_engine(), active_only=True)}
    return [active[n] for n in registered_project_names(context_instance) if n in active]


def _status(instance: dg.DagsterInstance, keys: Sequence[str]) -> dict[str, dg.AssetPartitionStatus]:
    """Partition statuses of `all_calls` (Dagster answers None, not {}, before any materialization)."""
    if not keys:
        return {}
    return instance.get_status_by_partition(ALL_CALLS_KEY, list(keys), all_calls_partitions) or {}


# --------------------------------------------------------------------------------------------------


@dg.sensor(
    name="projects_sensor",
    minimum_interval_seconds=sensor_interval_seconds(60),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Adds a `projects` partition for every active project; never deletes one (history stays).",
)
@_tolerates_warehouse_outage
def projects_sensor(context: dg.SensorEvaluationContext, warehouse: WarehouseResource) -> dg.SensorResult:
    """Keep the ``projects`` dynamic partitions in step with the active rows of ``projects``."""
    active = list_projects(warehouse.read_engine(), active_only=True)
    existing = set(context.instance.get_dynamic_partitions(project_partitions.name))
    new = [project_key(p.name) for p in active if project_key(p.name) not in existing]
    if not new:
        return dg.SensorResult(skip_reason=dg.SkipReason("no new active projects"))
    return dg.SensorResult(dynamic_partitions_requests=[project_partitions.build_add_request(sorted(new))])


def _run_partition_keys(instance: dg.DagsterInstance, run: dg.DagsterRun) -> list[str]:
    """The `all_calls` partition keys a run covered: one partition, or a range (a rectangle of days × projects)."""
    if run.tags.get(PARTITION_NAME_TAG):
        return [run.tags[PARTITION_NAME_TAG]]
    start, end = run.tags.get(ASSET_PARTITION_RANGE_START_TAG), run.tags.get(ASSET_PARTITION_RANGE_END_TAG)
    if not (start and end):
        return []
    return list(
        all_calls_partitions.get_partition_keys_in_range(
            dg.PartitionKeyRange(start, end), dynamic_partitions_store=instance
        )
    )


def _failed_kinds(run: dg.DagsterRun) -> dict[str, str]:
    """``{project: failure kind}`` as the run recorded it (empty when it died before it could)."""
    try:
        kinds = json.loads(run.tags.get(TAG_FAILED_PROJECTS) or "{}")
    except ValueError:
        return {}
    return kinds if isinstance(kinds, dict) else {}


# Failures no retry can fix: a human must fix the token or the projects row first.
NOT_RETRIED = {"auth", "refused"}


@dg.sensor(
    name="failed_partitions_sensor",
    job=refresh_all_calls,
    minimum_interval_seconds=sensor_interval_seconds(30),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Retries failed all_calls partitions after 1, 2, 4 … minutes (max 60), up to 5 attempts; "
    "auth failures (revoked token, missing scope) are not retried.",
)
@_tolerates_warehouse_outage
def failed_partitions_sensor(
    context: dg.SensorEvaluationContext, warehouse: WarehouseResource
) -> dg.SensorResult:
    """Retry failed `all_calls` runs with growing delays; surface auth failures instead of retrying."""
    instance = context.instance
    now = _now()
    recent = instance.get_run_records(
        filters=dg.RunsFilter(updated_after=now - timedelta(days=2)), limit=2000
    )
    # A failed run already retried is the retry's business now: only the newest failure counts.
    retried = {r.dagster_run.tags[TAG_RETRY_OF] for r in recent if TAG_RETRY_OF in r.dagster_run.tags}
    projects = {p.name: p for p in list_projects(warehouse.read_engine(), active_only=True)}
    resolved = known_timezones(warehouse.read_engine())
    requests: list[dg.RunRequest] = []
    notes: list[str] = []
    for record in recent:
        run = record.dagster_run
        if run.status != dg.DagsterRunStatus.FAILURE or run.run_id in retried:
            continue
        if run.asset_selection and ALL_CALLS_KEY not in run.asset_selection:
            continue
        attempt = int(run.tags.get(TAG_ATTEMPT, "1"))
        if attempt >= MAX_ATTEMPTS:
            continue
        ended = datetime.fromtimestamp(record.end_time or record.update_timestamp.timestamp(), tz=UTC)
        if now < ended + retry_delay(attempt):
            continue
        keys = _run_partition_keys(instance, run)
        if not keys:
            continue
        kinds = _failed_kinds(run)
        for name, kind in sorted(kinds.items()):
            if kind in NOT_RETRIED:
                notes.append(
                    f"not retrying {name!r} of run {run.run_id[:8]}: {kind} failure, a person must fix it"
                )
        status = _status(instance, keys)
        by_project: dict[str, list[date]] = {}
        for key in keys:
            if status.get(key) != dg.AssetPartitionStatus.FAILED:
                continue  # fixed since, or in progress
            day, name = split_partition_key(key)
            project = projects.get(name)
            if kinds.get(name) in NOT_RETRIED or project is None:
                continue
            if day > local_today(project, resolved, now):
                continue  # not begun in the project's zone
            by_project.setdefault(name, []).append(day)
        for name, days in sorted(by_project.items()):
            for span in spans_of(name, days):
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
    # Newest failures first; the rest wait for the next tick (their run keys are not spent yet).
    return dg.SensorResult(run_requests=requests[: retry_runs_per_tick()])


def _recent_auth_failures(instance: dg.DagsterInstance, since: datetime) -> set[str]:
    """Projects whose token GHL refused in a run that ended after ``since``."""
    records = instance.get_run_records(
        filters=dg.RunsFilter(
            statuses=[dg.DagsterRunStatus.FAILURE], tags={TAG_FAILURE_KIND: "auth"}, updated_after=since
        ),
        limit=200,
    )
    return {name for r in records for name, kind in _failed_kinds(r.dagster_run).items() if kind == "auth"}


@dg.sensor(
    name="missing_days_sensor",
    job=refresh_all_calls,
    minimum_interval_seconds=sensor_interval_seconds(300),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Requests all_calls partitions of the lookback window (default 120 days) that were never "
    "materialized or whose last attempt failed: newest first, a few runs per tick, skipping what runs.",
)
@_tolerates_warehouse_outage
def missing_days_sensor(context: dg.SensorEvaluationContext, warehouse: WarehouseResource) -> dg.SensorResult:
    """Find the gaps of the lookback window and request them, newest first, bounded per tick."""
    instance = context.instance
    projects = _registered_active(instance, warehouse)
    if not projects:
        return dg.SensorResult(skip_reason=dg.SkipReason("no registered active projects"))

    now = _now()
    auth_failed = _recent_auth_failures(instance, now - timedelta(hours=24))
    resolved = known_timezones(warehouse.read_engine())
    budget = gap_runs_per_tick()
    candidates: list[tuple[date, PartitionSpan]] = []
    for project in projects:
        if project.name in auth_failed:
            context.log.warning(f"skipping {project.name!r}: GHL refused its token in the last 24 hours")
            continue
        yesterday = local_today(project, resolved, now) - timedelta(days=1)
        first = max(partitions_start(), yesterday - timedelta(days=gap_lookback_days() - 1))
        days = [first + timedelta(days=i) for i in range((yesterday - first).days + 1)]
        keys = [str(partition_key(d, project.name)) for d in days]
        status = _status(instance, keys)
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


@dg.sensor(
    name="dead_runs_sensor",
    minimum_interval_seconds=sensor_interval_seconds(60),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Marks a STARTED run whose heartbeat stopped (its process died) as failed, so its "
    "partitions are retried instead of staying IN_PROGRESS forever.",
)
def dead_runs_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    """Fail the runs that stopped beating: Dagster's default launcher cannot tell that a worker died."""
    instance = context.instance
    stale_after = stale_run_seconds()
    now = time.time()
    records = instance.get_run_records(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))
    dead = []
    for record in records:
        last = last_sign_of_life(record.dagster_run, record.start_time)
        if last is not None and now - last > stale_after:
            silent = int(now - last)
            instance.report_run_failed(
                record.dagster_run,
                message=f"No heartbeat for {silent} s (limit GHL_STALE_RUN_SECONDS={stale_after}): "
                "the run's process died; marked failed so its partitions are retried.",
            )
            dead.append(f"{record.dagster_run.run_id[:8]} (silent {silent} s)")
    if dead:
        context.log.warning("marked failed: " + ", ".join(dead))
        return dg.SensorResult(skip_reason=dg.SkipReason("marked failed: " + ", ".join(dead)))
    return dg.SensorResult(skip_reason=dg.SkipReason(f"{len(records)} started runs, all alive"))


def recent_calls_cron() -> str:
    """Cron of the late-data re-sync (``GHL_RECENT_SYNC_CRON``, default every 15 minutes)."""
    return os.environ.get("GHL_RECENT_SYNC_CRON") or "*/15 * * * *"


RECENT_DAYS = 2  # today and yesterday: calls change after they end


@dg.schedule(
    name="recent_calls_schedule",
    cron_schedule=recent_calls_cron(),
    job=refresh_all_calls,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Re-syncs today and yesterday of every active project, in one run per tick.",
)
@_tolerates_warehouse_outage
def recent_calls_schedule(context: dg.ScheduleEvaluationContext, warehouse: WarehouseResource):
    """One run for every project: the rectangle of all registered projects over the local days in play.

    Projects' todays differ by zone (UTC−12 to UTC+14 spans up to three dates), so the run covers from
    the earliest local yesterday to the latest local today and the asset syncs, per project, only its
    own yesterday and today (tag ``ghl/recent_days``). One run process per tick, whatever the count.
    """
    projects = _registered_active(context.instance, warehouse)
    if not projects:
        return dg.SkipReason("no registered active projects")
    resolved = known_timezones(warehouse.read_engine())
    tick = context.scheduled_execution_time or datetime.now(UTC)
    todays = [local_today(p, resolved, tick) for p in projects]
    first_day, last_day = min(todays) - timedelta(days=RECENT_DAYS - 1), max(todays)
    names = registered_project_names(context.instance)
    start, end = partition_key(first_day, names[0]), partition_key(last_day, names[-1])
    tags = {TAG_TRIGGER: "schedule", TAG_RECENT_DAYS: str(RECENT_DAYS)}
    if str(start) == str(end):
        tags[PARTITION_NAME_TAG] = str(start)
    else:
        tags[ASSET_PARTITION_RANGE_START_TAG] = str(start)
        tags[ASSET_PARTITION_RANGE_END_TAG] = str(end)
    return dg.RunRequest(run_key=f"recent:{tick.isoformat()}", tags=tags)
