"""Running this code location's jobs from a terminal process (the CLI, the demo, the backfill workers)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ghl_pipeline.config import local_dagster_home


class RunFailed(Exception):
    """A run this process executed failed; the message is one line saying why."""


INSTANCE_SETTINGS = Path(__file__).with_name("instance.yaml")
_WRITTEN_BY_US = "# Written by ghl-pipeline from its instance settings"


def write_local_instance_settings(home: Path) -> None:
    """Give a local Dagster home the production instance settings (storage aside: local SQLite).

    Written when the home has no ``dagster.yaml`` or one this function wrote (kept current); a
    ``dagster.yaml`` an operator wrote is left alone.
    """
    target = home / "dagster.yaml"
    if target.exists() and not target.read_text().startswith(_WRITTEN_BY_US):
        return
    target.write_text(
        f"{_WRITTEN_BY_US} ({INSTANCE_SETTINGS.name}); edits are overwritten.\n"
        + INSTANCE_SETTINGS.read_text()
    )


def dagster_instance():
    """The Dagster instance: ``DAGSTER_HOME`` when set, else ``./.dagster_home`` (created on demand).

    The local home gets the production instance settings (run monitoring, run queue), so
    ``dagster dev`` on the demo's data behaves as deployed.
    """
    import dagster as dg

    explicit = bool(os.environ.get("DAGSTER_HOME"))
    home = local_dagster_home()
    home.mkdir(parents=True, exist_ok=True)
    if not explicit:
        write_local_instance_settings(home)
    os.environ["DAGSTER_HOME"] = str(home)
    return dg.DagsterInstance.get()


def dagster_console_level() -> str:
    """Dagster's console log level for runs the CLI executes: INFO with ``--verbose``, else CRITICAL."""
    return "INFO" if os.environ.get("GHL_PIPELINE_VERBOSE") else "CRITICAL"


def failure_reason(result) -> str:
    """One line saying why a run failed (the step's Failure description, else the run's message)."""
    for event in result.all_events:
        if event.is_step_failure:
            data = event.step_failure_data
            if data.user_failure_data is not None and data.user_failure_data.description:
                return data.user_failure_data.description.splitlines()[0]
            if data.error is not None:
                return data.error.message.strip().splitlines()[-1]
    failure = result.get_run_failure_event()
    return failure.message if failure is not None else "the run failed"


def run_sync_job(
    *, date_from: str, date_to: str, project_name: str | None, instance=None, tags: dict | None = None
) -> dict:
    """Run ``sync_ghl_calls`` in this process and return its summary; raise ``RunFailed`` (one line) on failure."""
    from ghl_pipeline.definitions import defs
    from ghl_pipeline.defs.syncing import TAG_SUMMARY

    instance = instance or dagster_instance()
    job = defs.resolve_job_def("sync_ghl_calls")
    run_config = {
        "ops": {
            "sync_calls": {
                "config": {"date_from": date_from, "date_to": date_to, "project_name": project_name}
            }
        },
        # Dagster's step chatter (and its tracebacks) stay off the terminal unless --verbose: the failure
        # is printed as one line by main(); the full story is in the run's logs in the Dagster UI.
        "loggers": {"console": {"config": {"log_level": dagster_console_level()}}},
    }
    result = job.execute_in_process(
        run_config=run_config,
        instance=instance,
        raise_on_error=False,
        tags=tags or {"ghl/launched_by": "cli"},
    )
    if not result.success:
        raise RunFailed(failure_reason(result))
    run = instance.get_run_by_id(result.run_id)
    summary = json.loads(run.tags[TAG_SUMMARY])
    summary["run_id"] = result.run_id
    return summary
