"""Dagster resources: the GHL API and the warehouse.

Neither holds a secret. GHL tokens are read from the ``projects`` table when a run needs them, and
``DATABASE_URL`` is read from the environment inside the run, so neither shows up in the UI, the run
config or GraphQL.
"""

from __future__ import annotations

import threading

import dagster as dg
import httpx
import sqlalchemy as sa
from pydantic import Field, PrivateAttr

from ghl_pipeline.config import ghl_api_base_url
from ghl_pipeline.ghl.client import GHLClient
from ghl_pipeline.ghl.ratelimit import RateLimiter
from ghl_pipeline.warehouse.db import database_url, get_engine
from ghl_pipeline.warehouse.projects import Project
from ghl_pipeline.warehouse.ratelimit import PostgresRateLimiter
from ghl_pipeline.warehouse.schema import upgrade

# One limiter per database and process; the budget itself lives in Postgres, shared by all processes.
_LIMITERS: dict[str, PostgresRateLimiter] = {}
_LIMITERS_LOCK = threading.Lock()


def shared_limiter(engine: sa.Engine) -> PostgresRateLimiter:
    """The Postgres-shared GHL rate limiter of ``engine``'s database."""
    key = engine.url.render_as_string(hide_password=False)
    with _LIMITERS_LOCK:
        if key not in _LIMITERS:
            _LIMITERS[key] = PostgresRateLimiter(engine)
        return _LIMITERS[key]


class GHLResource(dg.ConfigurableResource):
    """Opens a GHL client for a project (token from the ``projects`` table, never from config)."""

    base_url: str | None = Field(
        default=None, description="GHL API base URL; default: GHL_API_BASE_URL or GHL's production URL."
    )
    timeout_seconds: float = Field(default=30.0, description="Timeout of one HTTP request.")
    max_attempts: int = Field(default=6, description="Attempts per request on 429/5xx/timeouts.")

    # Seams for tests and the demo: an in-process simulator transport and a limiter of their own.
    _transport: httpx.BaseTransport | None = PrivateAttr(default=None)
    _limiter: RateLimiter | None = PrivateAttr(default=None)

    @classmethod
    def with_transport(
        cls, transport: httpx.BaseTransport, *, limiter: RateLimiter | None = None, **config
    ) -> GHLResource:
        """A resource whose clients talk to ``transport`` (e.g. the in-process simulator)."""
        resource = cls(**config)
        resource._transport = transport
        resource._limiter = limiter
        return resource

    def client_for(self, project: Project, *, engine: sa.Engine) -> GHLClient:
        """A client for ``project``'s location, on the location's shared rate budget; close it when done."""
        return GHLClient(
            token=project.api_key,
            location_id=project.location_id,
            project_name=project.name,
            base_url=self.base_url or ghl_api_base_url(),
            transport=self._transport,
            limiter=self._limiter or shared_limiter(engine),
            timeout=self.timeout_seconds,
            max_attempts=self.max_attempts,
        )


_upgraded: set[str] = set()
_upgrade_lock = threading.Lock()


class WarehouseResource(dg.ConfigurableResource):
    """The Postgres that holds ``projects`` and ``all_calls``."""

    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; default: DATABASE_URL, else the embedded local Postgres.",
    )

    def engine(self) -> sa.Engine:
        """The engine, with the schema created or upgraded once per process."""
        url = self.database_url or database_url()
        engine = get_engine(url)
        with _upgrade_lock:
            if url not in _upgraded:
                upgrade(engine)
                _upgraded.add(url)
        return engine

    def read_engine(self) -> sa.Engine:
        """The engine, without touching the schema (for checks that must not write)."""
        return get_engine(self.database_url or database_url())
