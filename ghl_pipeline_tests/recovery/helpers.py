"""Shared by the recovery tests: the CLI as a subprocess, and comparing all_calls with the simulator."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import date
from pathlib import Path

import sqlalchemy as sa

from ghl_pipeline.ghl.simulator import GHLSimulator, SimLocation
from ghl_pipeline.windows import local_days_window

REPO = Path(__file__).resolve().parents[2]


def dagster_home(path: Path) -> Path:
    """A Dagster home with the repo's production ``dagster.yaml`` (Postgres storage from DAGSTER_PG_URL).

    Several processes write the instance at once here (backfill workers, a dashboard sync), which
    the SQLite default cannot take ("database is locked"); production uses Postgres, so do the tests.
    """
    path.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "dagster.yaml", path / "dagster.yaml")
    return path


def cli_env(
    *, db_url: str, dagster_pg_url: str, home: Path, ghl_url: str, partitions_start: date
) -> dict[str, str]:
    """Environment of a ``ghl-pipeline`` subprocess: our database, instance and simulator only."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GHL_", "DAGSTER_"))}
    env.pop("TEST_DATABASE_URL", None)
    env.update(
        DATABASE_URL=db_url,
        DAGSTER_HOME=str(dagster_home(home)),
        DAGSTER_PG_URL=dagster_pg_url,
        GHL_API_BASE_URL=ghl_url,
        GHL_PARTITIONS_START=partitions_start.isoformat(),
        PYTHONUNBUFFERED="1",
        GHL_PIPELINE_DEBUG=os.environ.get("GHL_PIPELINE_DEBUG", ""),
    )
    return env


def cli(*args: str) -> list[str]:
    """The argv of ``ghl-pipeline ARGS`` with this interpreter."""
    return [sys.executable, "-m", "ghl_pipeline.cli", *args]


def start_cli(env: dict[str, str], *args: str) -> subprocess.Popen:
    """Start ``ghl-pipeline ARGS`` in its own process group (so a test can kill it and its workers)."""
    return subprocess.Popen(
        cli(*args), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )


def truth_ids(sim: GHLSimulator, location: SimLocation, first: date, last: date) -> set[str]:
    """Ids of the simulator's call messages on ``location``'s local days ``first..last``."""
    start, end = local_days_window(first, last, location.timezone)
    return {m["id"] for m in sim.ground_truth(location.location_id, start, end)}


def stored_id_counts(engine: sa.Engine, project_name: str) -> Counter[str]:
    """How often each ghl_id of a project is in all_calls (each must be exactly once)."""
    with engine.connect() as conn:
        return Counter(
            conn.execute(
                sa.text("SELECT ghl_id FROM all_calls WHERE project_name = :p"), {"p": project_name}
            ).scalars()
        )


class StderrWatcher:
    """Reads a subprocess's stderr in a thread, so a test can wait for a line and still get it all."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._thread.start()

    def _read(self, proc: subprocess.Popen) -> None:
        for line in proc.stderr:
            with self._cond:
                self.lines.append(line)
                self._cond.notify_all()
        with self._cond:
            self.lines.append("")  # EOF marker
            self._cond.notify_all()

    def wait_for(self, needle: str, timeout: float) -> str | None:
        """The first line containing ``needle`` (waiting up to ``timeout`` s); None at EOF or timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines:
                    if needle in line:
                        return line
                if self.lines and self.lines[-1] == "":
                    return None
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)

    def text(self) -> str:
        """Everything read so far (call after the process ended for all of it)."""
        self._thread.join(timeout=10)
        return "".join(self.lines)
