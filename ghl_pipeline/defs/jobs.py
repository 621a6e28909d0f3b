"""The dashboard's on-demand job, ``sync_ghl_calls`` (CONTRACT §4), and the asset job."""

import dagster as dg
import sqlalchemy as sa

from ghl_pipeline.defs.assets import all_calls
from ghl_pipeline.defs.checks import every_active_project_fresh
from ghl_pipeline.defs.partitions import PROJECTS_PARTITIONS_NAME, all_calls_partitions, partition_key_problem
from ghl_pipeline.defs.resources import GHLResource, WarehouseResource
from ghl_pipeline.defs.syncing import log_partition_materializations, summary_tags, sync_spans
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
    except sa.exc.ProgrammingError:  # no projects table yet: nothing is active
        active = []
    if request.project_name is None:
        if not active:
            raise SyncConfigError("project_name: there are no active projects to sync")
        return active
    for project in active:
        if project.name == request.project_name:
            return [project]
    raise SyncConfigError(f"project_name: {request.project_name!r} is not an active project")


@dg.op(name="sync_calls", tags={"kind": "ghl"})
def sync_calls(
    context: dg.OpExecutionContext,
    config: SyncCallsConfig,
    ghl: GHLResource,
    warehouse: WarehouseResource,
) -> None:
    """Sync the requested days (or window) of one or every active project into ``all_calls``."""
    try:
        request = parse_sync_request(config.date_from, config.date_to, config.project_name)
        projects = _projects_for(warehouse.read_engine(), request)
    except SyncConfigError as exc:
        raise dg.Failure(description=f"Invalid sync_ghl_calls config: {exc}", allow_retries=False) from None

    engine = warehouse.engine()
    keyable = [p.name for p in projects if partition_key_problem(p.name) is None]
    if keyable:  # so the UI and the sensors see this sync even before the projects sensor's next tick
        context.instance.add_dynamic_partitions(PROJECTS_PARTITIONS_NAME, keyable)

    results: dict[str, SyncResult] = {}
    try:
        for project in projects:
            result = sync_spans(context, engine=engine, ghl=ghl, project=project, spans=[request.span])
            results[project.name] = result
            covered = (
                request.span.days()
                if isinstance(request.span, DayRange)
                else request.span.days(result.timezone)
            )
            log_partition_materializations(context, engine=engine, result=result, days=covered)
            context.log.info(f"{project.name}: {result.totals.as_dict()} in {result.requests} GHL requests")
    finally:
        # The run summary, counted once from the sync results: what the dashboard and the gateway read.
        # Written even when a later project fails, so what did land is on record.
        context.instance.add_run_tags(context.run_id, summary_tags(results))


@dg.job(
    name="sync_ghl_calls",
    description="The dashboard's on-demand sync: a date range (and optionally one project) from GHL into all_calls.",
    executor_def=dg.in_process_executor,
    tags={"ghl/job": "sync_ghl_calls"},
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
