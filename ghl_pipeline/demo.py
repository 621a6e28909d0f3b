"""``ghl-pipeline demo``: the whole pipeline on a laptop, with no account and no services.

Starts the GHL simulator on loopback and the embedded Postgres, registers the simulator's three demo
locations as projects, and syncs each project's last days through the real ``sync_ghl_calls`` job —
the same job the dashboard launches.
"""

from __future__ import annotations

import os
import sys
from datetime import timedelta

from ghl_pipeline.cli import format_summary, local_today
from ghl_pipeline.ghl.simulator import Faults, GHLSimulator
from ghl_pipeline.runs import dagster_instance, run_sync_job
from ghl_pipeline.warehouse.db import database_url, get_engine
from ghl_pipeline.warehouse.projects import add_project
from ghl_pipeline.warehouse.schema import upgrade

# The first demo project leaves its time zone unset, to show it being read from the GHL location.
_CONFIGURED_TIMEZONE = [False, True, True]


UI_COMMAND = (
    ".venv/bin/ghl-pipeline simulator --port 8765 & GHL_API_BASE_URL=http://127.0.0.1:8765 "
    "DAGSTER_HOME={home} .venv/bin/dagster dev -w workspace.yaml"
)


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def run_demo(*, days: int = 7) -> int:
    """Run the demo; returns the exit status."""
    _say("Starting the embedded Postgres ...")
    engine = get_engine()
    upgrade(engine)

    # A few malformed records, as real GHL data has: they land in all_calls_rejects with their reason.
    simulator = GHLSimulator.demo(faults=Faults(malformed_rate=0.002))
    server = simulator.serve(host="127.0.0.1", port=0)
    os.environ["GHL_API_BASE_URL"] = server.url
    _say(f"GHL simulator serving on {server.url}")
    try:
        instance = dagster_instance()
        combined: dict = {"new_records": 0, "updated_records": 0, "rejected_records": 0, "projects": {}}
        for location, configured in zip(simulator.locations, _CONFIGURED_TIMEZONE, strict=False):
            add_project(
                engine,
                name=location.name,
                location_id=location.location_id,
                api_key=location.token,
                timezone=location.timezone if configured else None,
            )
            last = local_today(location.timezone)
            first = last - timedelta(days=days - 1)
            _say(f"Syncing {location.name} ({location.timezone}) {first}..{last} through sync_ghl_calls ...")
            summary = run_sync_job(
                date_from=first.isoformat(),
                date_to=last.isoformat(),
                project_name=location.name,
                instance=instance,
                tags={"ghl/launched_by": "demo"},
            )
            for key in ("new_records", "updated_records", "rejected_records"):
                combined[key] += summary[key]
            combined["projects"].update(summary["projects"])
    finally:
        server.stop()

    print(format_summary(combined))
    print(f"\nSynced {combined['new_records']} new call records into all_calls.")
    if combined["rejected_records"]:
        print(
            f"{combined['rejected_records']} malformed records were kept in all_calls_rejects with the rule they "
            "broke (`ghl-pipeline status` counts them)."
        )
    # The UI's runs (and its schedule and sensors) must reach the demo's GHL, never the real one with
    # the demo's fake tokens: the simulator is deterministic, so serving it again serves the same data.
    print(
        "\nOpen the Dagster UI on the same data (runs, partitions, sensors; the same instance settings as\n"
        "production, storage aside), with the demo's GHL simulator served for its runs:\n"
        f"  {UI_COMMAND.format(home=instance.root_directory)}\n"
        f"The calls are in the embedded Postgres: {_redacted(database_url())}"
    )
    return 0


def _redacted(url: str) -> str:
    """The database URL without a password."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
