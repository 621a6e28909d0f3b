"""Where the warehouse lives: ``DATABASE_URL`` when set, else an embedded Postgres started on demand.

The embedded server (``pgserver`` ships Postgres in a wheel) keeps its data under ``./.pgdata``
(``GHL_PIPELINE_PGDATA`` overrides). pgserver shares one server between processes that ask for the
same data folder and stops it when the last of them exits, so the CLI, the Dagster webserver and its
run workers all see the same tables. Never SQLite: the upsert relies on Postgres' ``ON CONFLICT``.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import sqlalchemy as sa

from ghl_pipeline.config import project_workers

log = logging.getLogger(__name__)

DEFAULT_PGDATA = Path(".pgdata")
# The staging table of a bulk upsert is a temp table; a session may only raise temp_buffers before it
# first touches one, so the engine sets it on every new connection. Local buffers are allocated on
# demand, so a small upsert never pays for the ceiling.
TEMP_BUFFERS = "256MB"

_engines: dict[str, sa.Engine] = {}
_servers: dict[Path, object] = {}
_lock = threading.Lock()


def normalise_url(url: str) -> str:
    """Pin the psycopg2 driver: SQLAlchemy 2.1 maps a bare ``postgresql://`` to psycopg 3 (not installed)."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url[len(prefix) :]
    return url


def start_embedded_postgres(data_dir: Path) -> str:
    """Start (or join) the embedded Postgres keeping its data in ``data_dir``; return its SQLAlchemy URL."""
    import pgserver  # imported here: only the no-DATABASE_URL path needs the bundled server

    data_dir = Path(data_dir).expanduser().resolve()
    with _lock:
        server = _servers.get(data_dir)
        if server is None:
            data_dir.mkdir(parents=True, exist_ok=True)
            log.info("starting embedded Postgres with data in %s", data_dir)
            server = pgserver.get_server(data_dir)
            _servers[data_dir] = server  # keep the handle: pgserver stops the server when the last one goes
    return normalise_url(server.get_uri())


def embedded_data_dir() -> Path:
    """The embedded server's data folder: ``GHL_PIPELINE_PGDATA`` or ``./.pgdata``."""
    return Path(os.environ.get("GHL_PIPELINE_PGDATA") or DEFAULT_PGDATA)


def database_url() -> str:
    """``DATABASE_URL`` (normalised to psycopg2) when set, else the embedded server's URL."""
    url = os.environ.get("DATABASE_URL", "").strip()
    if url:
        return normalise_url(url)
    return start_embedded_postgres(embedded_data_dir())


# Connections a process may open beyond one per project worker: the op's own thread (materialization
# counts, run tags), a sensor or the gateway sharing the process.
POOL_SPARE = 4


def pool_size() -> int:
    """Connections the engine keeps: one per project a run syncs at once, plus spares.

    A project's sync holds at most one connection at a time (the rate limiter's, a query, an upsert),
    so a smaller pool would make the parallel projects queue for connections, and time out after 30 s.
    """
    return project_workers() + POOL_SPARE


def _create_engine(url: str) -> sa.Engine:
    engine = sa.create_engine(url, pool_pre_ping=True, pool_size=pool_size(), max_overflow=POOL_SPARE)

    @sa.event.listens_for(engine, "connect")
    def _session_settings(dbapi_connection, _record):  # noqa: ANN001 - SQLAlchemy event signature
        with dbapi_connection.cursor() as cursor:
            try:
                cursor.execute("SET temp_buffers = %s", (TEMP_BUFFERS,))
            except Exception:  # a pooler may refuse session settings; the upsert still works without
                log.debug("could not set temp_buffers", exc_info=True)
        dbapi_connection.commit()

    return engine


def get_engine(url: str | None = None) -> sa.Engine:
    """A SQLAlchemy engine for ``url`` (default: :func:`database_url`), cached per URL."""
    url = normalise_url(url) if url else database_url()
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            engine = _engines[url] = _create_engine(url)
    return engine


def dispose_engine(url: str) -> None:
    """Forget and close the cached engine for ``url`` (before its database is dropped)."""
    with _lock:
        engine = _engines.pop(normalise_url(url), None)
    if engine is not None:
        engine.dispose()


def dispose_engines() -> None:
    """Close every cached engine's connections (tests drop their databases after this)."""
    with _lock:
        engines = list(_engines.values())
        _engines.clear()
    for engine in engines:
        engine.dispose()
