"""The dashboard's on-demand job, ``sync_ghl_calls`` (CONTRACT §4), and the asset job."""

from datetime import date

import dagster as dg
import psycopg2.errors
import sqlalchemy as sa

from ghl_pipeline.defs.assets import all_calls
from ghl_pipeline.defs.checks import every_active_project_fresh
from ghl_pipeline.defs.liveness import heartbeat
from ghl_pipeline.defs.partitions import PROJECTS_PARTITIONS_NAME, all_calls_partitions, project_key
from ghl_pipeline.defs.resources import GHLResource, WarehouseResource
from ghl_pipeline.defs.syncing import ProjectWork, log_partition_materializations, summary_tags, sync_projects
from ghl_pipeline.sync import SyncResult
from ghl_pipeline.warehouse.projects import Project, list_projects
from ghl_pipeline.windows import DayRange, SyncConfigError, SyncRequest, parse_sync_request


class SyncCallsConfig(dg.Config):
    """What the dashboard's "Sync from GHL" button sends."""

    date_from: str
    date_to: str
    project_name: str | None = None


def _projects_for(engine: sa.Engine, request: SyncRequest) -> list[Project]:
    """The active projects a request covers; a bad project name fails here, before anything is written."""
    try:
        active = list_projects(engine, active_only=True)
    except sa.exc.ProgrammingError as exc:
        if not isinstance(exc.orig, psycopg2.errors.UndefinedTable):
            # A permission error (or any other) is the real cause: say it, not "no such project".
            raise SyncConfigError(
                f"project_name: cannot read the projects table: {_first_line(exc)}"
            ) from None
        active = []  # no projects table yet: nothing is active
    if request.project_name is None:
        if not active:
            raise SyncConfigError("project_name: there are no active projects to sync")
        return active
    for project in active:
        if project.name == request.project_name:
            return [project]
    raise SyncConfigError(f"project_name: {request.project_name!r} is not an active project")


def _first_line(exc: sa.exc.DBAPIError) -> str:
    lines = str(exc.orig).strip().splitlines()
    return lines[0] if lines else type(exc.orig).__name__


@dg.op(name="sync_calls", tags={"kind": "ghl"})
def sync_calls(
    context: dg.OpExecutionContext,
    config: SyncCallsConfig,
    ghl: GHLResource,
    warehouse: WarehouseResource,
) -> None:
    """Sync the requested days (or window) of one or every active project into ``all_calls``.

    Each project succeeds or fails on its own (several at once); the run's summary tags count what
    landed and name each failed project, and the run fails at the end when any project did.
    """
    try:
        request = parse_sync_request(config.date_from, config.date_to, config.project_name)
        projects = _projects_for(warehouse.read_engine(), request)
    except SyncConfigError as exc:
        raise dg.Failure(description=f"Invalid sync_ghl_calls config: {exc}", allow_retries=False) from None

    with heartbeat(context):
        engine = warehouse.engine()
        # So the UI and the sensors see this sync even before the projects sensor's next tick.
        context.instance.add_dynamic_partitions(
            PROJECTS_PARTITIONS_NAME, [project_key(p.name) for p in projects]
        )

        def covered(result: SyncResult) -> list[date]:
            if isinstance(request.span, DayRange):
                return request.span.days()
            return request.span.days(result.timezone)

        def report(result: SyncResult) -> None:
            log_partition_materializations(context, engine=engine, result=result, days=covered(result))

        outcome = sync_projects(
            context,
            engine=engine,
            ghl=ghl,
            work=[ProjectWork(p, [request.span], count_days=covered) for p in projects],
            on_result=report,
        )
        # The run summary, counted once from the sync results: what the dashboard and the gateway read.
        context.instance.add_run_tags(context.run_id, summary_tags(outcome.results, outcome.failures))
    if outcome.failures:
        raise dg.Failure(
            description=outcome.failure_description(),
            metadata={"failed_projects": {n: f.as_dict() for n, f in outcome.failures.items()}},
            allow_retries=False,
        )


@dg.job(
    name="sync_ghl_calls",
    description="The dashboard's on-demand sync: a date range (and optionally one project) from GHL into all_calls.",
    executor_def=dg.in_process_executor,
    # The dashboard waits on this run: it goes first in the run queue (background runs: priority 0).
    tags={"ghl/job": "sync_ghl_calls", "dagster/priority": "10"},
)
def sync_ghl_calls() -> None:
    """Op job so the dashboard can pass a date range as config."""
    sync_calls()


refresh_all_calls = dg.define_asset_job(
    name="refresh_all_calls",
    # The partitions and their inline reconciliation check; the freshness check has its own schedule.
    selection=dg.AssetSelection.assets(all_calls) - dg.AssetSelection.checks(every_active_project_fresh),
    partitions_def=all_calls_partitions,
    executor_def=dg.in_process_executor,
    description="Materializes all_calls partitions (used by the sensors, the schedule and `ghl-pipeline backfill`).",
)


@dg.op(name="check_warehouse")
def check_warehouse(warehouse: WarehouseResource) -> None:
    """Fails when the warehouse cannot be reached."""
    with warehouse.read_engine().connect() as conn:
        conn.execute(sa.text("SELECT 1"))


@dg.job(
    name="health_check",
    description="Checks the code location and the warehouse; also the baseline of the latency benchmark.",
    executor_def=dg.in_process_executor,
)
def health_check() -> None:
    """A run that does almost nothing: Dagster's own launch-to-SUCCESS time."""
    check_warehouse()
