"""A running sync says it is alive, so a run whose process died is noticed (``dead_runs_sensor``).

Dagster's default run launcher cannot check a run worker's health: a run whose worker and code
server were killed stays STARTED forever, and its partitions stay IN_PROGRESS, so neither recovery
sensor ever looks at them again. Every op of this code location therefore writes a heartbeat (the
run tag ``ghl/heartbeat``, seconds since the epoch) every ``GHL_HEARTBEAT_SECONDS`` from a
background thread while it works; the sensor marks a STARTED run whose heartbeat is older than
``GHL_STALE_RUN_SECONDS`` as failed, which turns its partitions FAILED for the retry sensor.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator

import dagster as dg

from ghl_pipeline.config import heartbeat_seconds

log = logging.getLogger(__name__)

TAG_HEARTBEAT = "ghl/heartbeat"
TAG_WORKER = "ghl/worker"  # host:pid of the process executing the run (for operators, and for tests)


@contextlib.contextmanager
def heartbeat(context: dg.OpExecutionContext | dg.AssetExecutionContext) -> Iterator[None]:
    """Write the run's heartbeat tag now and every ``GHL_HEARTBEAT_SECONDS`` until the block ends."""
    instance, run_id = context.instance, context.run_id
    interval = heartbeat_seconds()
    stop = threading.Event()

    worker = {TAG_WORKER: f"{socket.gethostname()}:{os.getpid()}"}

    def beat() -> None:
        while True:
            try:
                instance.add_run_tags(run_id, {**worker, TAG_HEARTBEAT: f"{time.time():.0f}"})
                worker.clear()
            except Exception:  # Dagster's storage briefly away: the next beat tries again
                log.warning("could not write the run's heartbeat", exc_info=True)
            if stop.wait(interval):
                return

    thread = threading.Thread(target=beat, name="ghl-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


def last_sign_of_life(run: dg.DagsterRun, start_time: float | None) -> float | None:
    """When the run last showed it was alive: its heartbeat, else its start (seconds since the epoch)."""
    raw = run.tags.get(TAG_HEARTBEAT)
    if raw:
        with contextlib.suppress(ValueError):
            return float(raw)
    return start_time
