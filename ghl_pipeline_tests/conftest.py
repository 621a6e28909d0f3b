"""Shared fixtures: a real Postgres for every test that needs one, never SQLite.

The server is started once per session: ``TEST_DATABASE_URL`` when set (the role must be allowed to
CREATE DATABASE; ``DATABASE_URL`` is deliberately ignored), else an embedded ``pgserver`` in a temp folder (~1 s). Each test
then gets its own database, cloned from a template that already has the schema, so tests are
isolated and may run their own DDL. Fixtures:

- ``pg_admin_url``   (session) URL of the server's maintenance database; do not write to it.
- ``db_url``         a fresh database with the schema applied (``upgrade``); a psycopg2 SQLAlchemy URL.
- ``engine``         ``get_engine(db_url)``: the same cached engine the code under test gets for that URL.
- ``empty_db_url`` / ``empty_engine``  a fresh database with no tables at all (upgrade tests).
- ``database_url_env`` sets ``DATABASE_URL`` to ``db_url`` for code that calls ``database_url()``.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from ghl_pipeline.warehouse import db
from ghl_pipeline.warehouse.schema import upgrade

# The real-webserver fixtures (served_ghl, sync_environment) for every test folder.
pytest_plugins = ["ghl_pipeline_tests.webserver"]

_counter = itertools.count()


@pytest.fixture(scope="session", autouse=True)
def _no_real_systems() -> Iterator[None]:
    """Tests never reach an operator's real database, GHL or Dagster instance, whatever the shell holds."""
    saved = {
        k: os.environ.pop(k) for k in ("DATABASE_URL", "GHL_API_BASE_URL", "DAGSTER_HOME") if k in os.environ
    }
    yield
    os.environ.update(saved)


@pytest.fixture(scope="session")
def pg_admin_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The test server's maintenance-database URL (external when configured, else embedded)."""
    # Only TEST_DATABASE_URL: an operator's DATABASE_URL (the dashboard's database!) is never used for
    # tests, which create and drop scratch databases.
    external = os.environ.get("TEST_DATABASE_URL")
    if external:
        yield db.normalise_url(external)
        return
    import pgserver

    server = pgserver.get_server(tmp_path_factory.mktemp("pgdata"), cleanup_mode="delete")
    url = db.normalise_url(server.get_uri())
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    with admin.connect() as conn:
        # Throwaway data: durability only costs time here.
        for setting in ("fsync = off", "synchronous_commit = off", "full_page_writes = off"):
            conn.exec_driver_sql(f"ALTER SYSTEM SET {setting}")
        conn.exec_driver_sql("SELECT pg_reload_conf()")
    admin.dispose()
    yield url
    db.dispose_engines()
    server.cleanup()


def _admin(url: str) -> sa.Engine:
    return sa.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)


@pytest.fixture(scope="session")
def _schema_template(pg_admin_url: str) -> Iterator[str]:
    """A database with the schema applied, cloned by ``db_url``."""
    name = f"ghl_tpl_{os.getpid()}"
    admin = _admin(pg_admin_url)
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    template_url = make_url(pg_admin_url).set(database=name).render_as_string(hide_password=False)
    engine = sa.create_engine(template_url, poolclass=sa.NullPool)
    upgrade(engine)
    engine.dispose()
    yield name
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


def _fresh_database(admin_url: str, template: str) -> Iterator[str]:
    name = f"ghl_test_{os.getpid()}_{next(_counter)}"
    admin = _admin(admin_url)
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE "{template}" STRATEGY FILE_COPY')
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        db.dispose_engine(url)  # the cached engine of a dropped database is useless
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture
def db_url(pg_admin_url: str, _schema_template: str) -> Iterator[str]:
    """A fresh database with every table of the schema, dropped after the test."""
    yield from _fresh_database(pg_admin_url, _schema_template)


@pytest.fixture
def engine(db_url: str) -> sa.Engine:
    """The cached engine for ``db_url`` (what ``get_engine(db_url)`` returns to the code under test)."""
    return db.get_engine(db_url)


@pytest.fixture
def empty_db_url(pg_admin_url: str) -> Iterator[str]:
    """A fresh database with no tables, dropped after the test."""
    yield from _fresh_database(pg_admin_url, "template0")


@pytest.fixture
def empty_engine(empty_db_url: str) -> sa.Engine:
    """Engine for ``empty_db_url``."""
    return db.get_engine(empty_db_url)


@pytest.fixture
def database_url_env(db_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """``DATABASE_URL`` pointing at ``db_url`` for the duration of the test."""
    monkeypatch.setenv("DATABASE_URL", db_url)
    return db_url
