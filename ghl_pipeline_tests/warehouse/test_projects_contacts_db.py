"""projects, the contact cache and URL handling."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from ghl_pipeline.ghl.models import Contact, Secret
from ghl_pipeline.warehouse import db
from ghl_pipeline.warehouse.contacts import cached_contacts, store_contacts
from ghl_pipeline.warehouse.projects import add_project, get_project, list_projects, set_project_active


def test_projects_round_trip_and_hide_the_token(engine):
    add_project(engine, name="Beta", location_id="loc2", api_key="tok-beta", timezone="Europe/Berlin")
    add_project(engine, name="Acme", location_id="loc1", api_key=Secret("tok-acme"))
    add_project(engine, name="Acme", location_id="loc1b", api_key="tok-acme-2")  # upsert by name

    projects = list_projects(engine)
    assert [p.name for p in projects] == ["Acme", "Beta"]
    acme = get_project(engine, "Acme")
    assert acme.location_id == "loc1b" and acme.api_key.reveal() == "tok-acme-2" and acme.timezone is None
    assert "tok-acme" not in repr(acme) and "tok-acme" not in str(projects)

    assert set_project_active(engine, "Beta", False)
    assert [p.name for p in list_projects(engine)] == ["Acme"]
    assert [p.name for p in list_projects(engine, active_only=False)] == ["Acme", "Beta"]
    assert get_project(engine, "Beta").active is False
    assert get_project(engine, "Nope") is None
    assert not set_project_active(engine, "Nope", True)


def test_contact_cache_returns_fresh_entries_only(engine):
    store_contacts(
        engine,
        "loc1",
        [
            Contact("c1", "Ada", "+15125550143", "US", datetime(2025, 1, 1, tzinfo=UTC)),
            Contact("c2", None, None, None, None),
        ],
    )
    store_contacts(engine, "loc2", [Contact("c1", "Other location", None, None, None)])

    got = cached_contacts(engine, "loc1", ["c1", "c2", "c3"], max_age=timedelta(hours=1))
    assert got["c1"] == Contact("c1", "Ada", "+15125550143", "US", datetime(2025, 1, 1, tzinfo=UTC))
    assert got["c2"].name is None and set(got) == {"c1", "c2"}

    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE ghl_contacts SET fetched_at = now() - interval '2 hours' WHERE contact_id = 'c2'")
        )
    assert set(cached_contacts(engine, "loc1", ["c1", "c2"], max_age=timedelta(hours=1))) == {"c1"}
    store_contacts(engine, "loc1", [Contact("c2", "Now named", None, None, None)])
    assert cached_contacts(engine, "loc1", ["c2"], max_age=timedelta(hours=1))["c2"].name == "Now named"
    assert cached_contacts(engine, "loc1", [], max_age=timedelta(hours=1)) == {}


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://u:p@h:5432/d", "postgresql+psycopg2://u:p@h:5432/d"),
        ("postgresql://u:p@h/d?sslmode=require", "postgresql+psycopg2://u:p@h/d?sslmode=require"),
        ("postgresql+psycopg2://u@h/d", "postgresql+psycopg2://u@h/d"),
    ],
)
def test_database_url_is_normalised_to_psycopg2(monkeypatch, given, expected):
    monkeypatch.setenv("DATABASE_URL", given)
    assert db.database_url() == expected


def test_get_engine_is_cached_per_url(db_url):
    assert db.get_engine(db_url) is db.get_engine(db_url)
    with db.get_engine(db_url).connect() as conn:
        assert conn.execute(sa.text("SHOW temp_buffers")).scalar() == "256MB"


def test_embedded_postgres_starts_in_the_configured_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("GHL_PIPELINE_PGDATA", str(tmp_path / "pg"))

    url = db.database_url()

    assert url.startswith("postgresql+psycopg2://")
    assert (tmp_path / "pg" / "PG_VERSION").exists()
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT 1")).scalar() == 1


def test_many_contacts_are_stored_in_one_statement(engine):
    statements: list[str] = []

    def record(*args) -> None:  # noqa: ANN002 - SQLAlchemy's event signature
        statements.append(args[2])

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        stamp = datetime(2025, 2, 1, tzinfo=UTC)
        contacts = [
            Contact(f"c{i:03d}", f"Name {i}", None, "US", stamp if i % 2 else None) for i in range(300)
        ]
        # A repeated id keeps its last version (one statement cannot update a row twice).
        store_contacts(engine, "loc1", [*contacts, Contact("c007", "Renamed", "+15125550143", None, None)])
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)
    assert sum("INSERT INTO ghl_contacts" in s for s in statements) == 1
    got = cached_contacts(engine, "loc1", [c.id for c in contacts], max_age=timedelta(hours=1))
    assert len(got) == 300
    assert got["c007"] == Contact("c007", "Renamed", "+15125550143", None, None)
    assert got["c001"] == Contact("c001", "Name 1", None, "US", stamp) and got["c002"].date_updated is None
