"""Per project: when it was last synced, over which window, in which time zone.

Read by the freshness check and by the sensors, which need a project's time zone to know its "today"
when the ``projects`` row leaves it to GHL.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

DDL = """
CREATE TABLE IF NOT EXISTS ghl_sync_state (
    project_name    text PRIMARY KEY,
    timezone        text NOT NULL,
    last_synced_at  timestamptz NOT NULL,
    window_start    timestamptz NOT NULL,
    window_end      timestamptz NOT NULL
)
"""


def record_sync(
    engine: sa.Engine, *, project_name: str, timezone: str, window_start: datetime, window_end: datetime
) -> None:
    """Note a finished sync of ``project_name``."""
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO ghl_sync_state (project_name, timezone, last_synced_at, window_start, window_end)"
                " VALUES (:p, :tz, now(), :ws, :we)"
                " ON CONFLICT (project_name) DO UPDATE SET timezone = EXCLUDED.timezone,"
                " last_synced_at = EXCLUDED.last_synced_at, window_start = EXCLUDED.window_start,"
                " window_end = EXCLUDED.window_end"
            ),
            {"p": project_name, "tz": timezone, "ws": window_start, "we": window_end},
        )


def known_timezones(engine: sa.Engine) -> dict[str, str]:
    """Each synced project's time zone as last resolved."""
    with engine.connect() as conn:
        return dict(conn.execute(sa.text("SELECT project_name, timezone FROM ghl_sync_state")).all())


def last_synced(engine: sa.Engine) -> dict[str, datetime]:
    """Each synced project's last sync time."""
    with engine.connect() as conn:
        return dict(conn.execute(sa.text("SELECT project_name, last_synced_at FROM ghl_sync_state")).all())
