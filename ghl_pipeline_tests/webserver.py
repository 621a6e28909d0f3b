"""A real ``dagster-webserver`` for end-to-end tests, and the environment its runs sync against."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
WEBSERVER_START_TIMEOUT = 120.0
RUN_TIMEOUT = 180.0
# Without the daemon a queued run would wait forever; the default coordinator launches at once.
INSTANCE_YAML = """\
run_coordinator:
  module: dagster._core.run_coordinator
  class: DefaultRunCoordinator
telemetry:
  enabled: false
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def dagster_webserver(workspace: Path, *, dagster_home: Path, env: dict[str, str]) -> Iterator[str]:
    """Run ``dagster-webserver -w workspace`` on a free loopback port; yield its GraphQL URL."""
    dagster_home.mkdir(parents=True, exist_ok=True)
    (dagster_home / "dagster.yaml").write_text(INSTANCE_YAML)
    port = free_port()
    webserver = Path(sys.executable).with_name("dagster-webserver")
    log_path = dagster_home / "webserver.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(webserver), "-w", str(workspace), "-h", "127.0.0.1", "-p", str(port)],
            cwd=workspace.parent,
            env={**env, "DAGSTER_HOME": str(dagster_home)},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so the code server child dies with it
        )
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + WEBSERVER_START_TIMEOUT
            while True:
                if process.poll() is not None:
                    pytest.fail(f"dagster-webserver exited early:\n{log_path.read_text()[-3000:]}")
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{base}/server_info", timeout=2).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    pytest.fail(f"dagster-webserver did not start:\n{log_path.read_text()[-3000:]}")
                time.sleep(0.5)
            yield f"{base}/graphql"
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


@pytest.fixture
def served_ghl(db_url):
    """The GHL simulator (demo data) on loopback, with its first location registered as a project."""
    from ghl_pipeline.ghl.simulator import GHLSimulator
    from ghl_pipeline.warehouse.db import get_engine
    from ghl_pipeline.warehouse.projects import add_project

    simulator = GHLSimulator.demo()
    location = simulator.locations[0]  # Acme Roofing: a modest number of calls per day
    add_project(
        get_engine(db_url), name=location.name, location_id=location.location_id, api_key=location.token
    )
    server = simulator.serve(host="127.0.0.1", port=0)
    try:
        yield simulator, server
    finally:
        server.stop()


@pytest.fixture
def sync_environment(served_ghl, db_url) -> dict[str, str]:
    """Environment for the webserver and its runs: a fresh database and the served GHL simulator."""
    simulator, server = served_ghl
    project = simulator.locations[0].name
    return {**os.environ, "DATABASE_URL": db_url, "GHL_API_BASE_URL": server.url, "PROJECT": project}
