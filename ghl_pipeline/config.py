"""Settings read from the environment (CONTRACT §2). Nothing secret is read here: GHL tokens live in
the ``projects`` table and are read at run time."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

DEFAULT_GHL_API_BASE_URL = "https://services.leadconnectorhq.com"

# The first day the `all_calls` partitions cover. The old feed stopped after November 2025, so the
# default reaches back far enough for the gap to be backfilled.
DEFAULT_PARTITIONS_START = "2025-11-01"

# A sync window longer than this is refused (CONTRACT §4): it keeps one dashboard click bounded.
MAX_SYNC_DAYS = 93


def ghl_api_base_url() -> str:
    """GHL's API base URL (``GHL_API_BASE_URL``), without a trailing slash."""
    return (os.environ.get("GHL_API_BASE_URL") or DEFAULT_GHL_API_BASE_URL).rstrip("/")


def partitions_start() -> date:
    """First day of the ``date`` partitions (``GHL_PARTITIONS_START``, YYYY-MM-DD)."""
    raw = os.environ.get("GHL_PARTITIONS_START") or DEFAULT_PARTITIONS_START
    try:
        return date.fromisoformat(raw)
    except ValueError as exc:
        raise ValueError(f"GHL_PARTITIONS_START must be YYYY-MM-DD, got {raw!r}") from exc


def local_dagster_home() -> Path:
    """The Dagster home the CLI and demo use when ``DAGSTER_HOME`` is unset: ``./.dagster_home``."""
    return Path(os.environ.get("DAGSTER_HOME") or Path.cwd() / ".dagster_home").resolve()


def env_int(name: str, default: int) -> int:
    """A positive integer setting from the environment; a bad value fails naming the variable."""
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


# Projects one run syncs at once. Each GHL location has its own rate budget and a sync mostly waits on
# GHL's round trips (a few hundred ms each), so a run over many projects is bound by that latency, not
# by this machine: the threads overlap their waits. Each busy thread holds at most one warehouse
# connection at a time, so the engine's pool is sized from this (``warehouse.db``).
DEFAULT_PROJECT_WORKERS = 32


def project_workers() -> int:
    """Projects synced at once inside one run (``GHL_PROJECT_WORKERS``, default 32)."""
    return env_int("GHL_PROJECT_WORKERS", DEFAULT_PROJECT_WORKERS)


# Recovery timing (CONTRACT §4: the README names the variables that shorten the intervals).


def sensor_interval_seconds(default: int) -> int:
    """Minimum interval of every recovery sensor (``GHL_SENSOR_INTERVAL_SECONDS``; else each its own)."""
    return env_int("GHL_SENSOR_INTERVAL_SECONDS", default)


def retry_first_delay_seconds() -> int:
    """Wait before the first retry of a failed partition (``GHL_RETRY_FIRST_DELAY_SECONDS``, 60); doubles."""
    return env_int("GHL_RETRY_FIRST_DELAY_SECONDS", 60)


def heartbeat_seconds() -> int:
    """How often a running sync says it is alive (``GHL_HEARTBEAT_SECONDS``, default 15)."""
    return env_int("GHL_HEARTBEAT_SECONDS", 15)


def stale_run_seconds() -> int:
    """A started run silent this long is dead and marked failed (``GHL_STALE_RUN_SECONDS``, default 120)."""
    return env_int("GHL_STALE_RUN_SECONDS", 120)


def background_nice() -> int:
    """Niceness the run worker of background work takes (``GHL_BACKGROUND_NICE``, default 10; 0 = off).

    Backfills, sensors and the schedule materialize `all_calls`; the dashboard's sync_ghl_calls does
    not. On a small machine the dashboard's run then gets the CPU first while a backfill runs.
    """
    raw = os.environ.get("GHL_BACKGROUND_NICE")
    if raw is None or raw == "":
        return 10
    try:
        value = int(raw)
    except ValueError as exc:
        raise ValueError(f"GHL_BACKGROUND_NICE must be an integer 0..19, got {raw!r}") from exc
    if not 0 <= value <= 19:
        raise ValueError(f"GHL_BACKGROUND_NICE must be an integer 0..19, got {raw!r}")
    return value
