"""The ``projects`` table: which GHL locations to sync, with their tokens and time zones."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from ghl_pipeline.ghl.models import Secret


@dataclass(frozen=True)
class Project:
    """One dashboard project = one GHL location. ``api_key`` is a :class:`Secret` (its repr hides it)."""

    name: str
    location_id: str
    api_key: Secret
    active: bool
    timezone: str | None


_SELECT = "SELECT project_name, ghl_location_id, ghl_api_key, active, timezone FROM projects"


def _row_to_project(row: sa.Row) -> Project | None:
    name, location_id, api_key, active, timezone = row
    if not location_id or not api_key or not str(api_key).strip():
        return None  # a half-configured row cannot be synced; the dashboard may still show it
    return Project(
        name=name,
        location_id=location_id,
        api_key=Secret(api_key),
        active=bool(active) if active is not None else True,
        timezone=timezone or None,
    )


def list_projects(engine: sa.Engine, *, active_only: bool = True) -> list[Project]:
    """Projects ordered by name; by default only active ones with a location id and a token."""
    sql = _SELECT + (" WHERE active IS NOT FALSE" if active_only else "") + " ORDER BY project_name"
    with engine.connect() as conn:
        rows = conn.execute(sa.text(sql)).all()
    return [p for p in map(_row_to_project, rows) if p is not None]


def get_project(engine: sa.Engine, name: str) -> Project | None:
    """The project called ``name`` (active or not), or ``None`` when absent or lacking a token/location."""
    with engine.connect() as conn:
        row = conn.execute(sa.text(_SELECT + " WHERE project_name = :name"), {"name": name}).first()
    return _row_to_project(row) if row is not None else None


def add_project(
    engine: sa.Engine,
    *,
    name: str,
    location_id: str,
    api_key: Secret | str,
    timezone: str | None = None,
    active: bool = True,
) -> Project:
    """Insert or replace (by name) a project; used by the demo and tests."""
    secret = Secret(api_key)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO projects (project_name, ghl_location_id, ghl_api_key, active, timezone) "
                "VALUES (:name, :loc, :key, :active, :tz) "
                "ON CONFLICT (project_name) DO UPDATE SET ghl_location_id = EXCLUDED.ghl_location_id, "
                "ghl_api_key = EXCLUDED.ghl_api_key, active = EXCLUDED.active, timezone = EXCLUDED.timezone"
            ),
            {"name": name, "loc": location_id, "key": secret.reveal(), "active": active, "tz": timezone},
        )
    return Project(name=name, location_id=location_id, api_key=secret, active=active, timezone=timezone)


def set_project_active(engine: sa.Engine, name: str, active: bool) -> bool:
    """Switch a project on or off; returns False when there is no such project."""
    with engine.begin() as conn:
        result = conn.execute(
            sa.text("UPDATE projects SET active = :active WHERE project_name = :name"),
            {"active": active, "name": name},
        )
    return result.rowcount > 0
