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
