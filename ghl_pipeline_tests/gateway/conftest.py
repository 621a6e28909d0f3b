"""A fake Dagster GraphQL endpoint and Supabase JWKS, served in-process to the gateway through httpx."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

with warnings.catch_warnings():  # Starlette 1.x nudges towards httpx2; httpx is what we ship with
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from ghl_pipeline.gateway import GatewaySettings, create_app

SUPABASE_URL = "http://supabase.test"
ISSUER = f"{SUPABASE_URL}/auth/v1"
JWKS_PATH = "/auth/v1/.well-known/jwks.json"
HS_SECRET = "legacy-supabase-jwt-secret-0123456789abcdef"
DASHBOARD_ORIGIN = "https://dash.example.com"
RSA_KID = "rsa-key-1"
EC_KID = "ec-key-1"
ACTIVE = {"QUEUED", "NOT_STARTED", "STARTING", "STARTED"}

# Generated once per test session: RSA key generation costs ~50 ms.
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())


def public_jwk(private_key: Any, kid: str) -> dict[str, Any]:
    """The public half of a key as a JWKS entry, the way Supabase publishes it."""
    if isinstance(private_key, rsa.RSAPrivateKey):
        entry = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private_key.public_key()))
        entry["alg"] = "RS256"
    else:
        entry = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(private_key.public_key()))
        entry["alg"] = "ES256"
    entry.update(kid=kid, use="sig")
    return entry


def make_token(
    *,
    key: Any = HS_SECRET,
    alg: str = "HS256",
    kid: str | None = None,
    headers: dict | None = None,
    **claims: Any,
) -> str:
    """A Supabase-shaped access token; pass ``claim=None`` to leave a claim out."""
    now = int(time.time())
    body = {
        "sub": "5f2b6c1e-0000-4000-8000-000000000001",
        "aud": "authenticated",
        "role": "authenticated",
        "email": "ops@example.com",
        "iss": ISSUER,
        "iat": now,
        "exp": now + 3600,
        "app_metadata": {"provider": "email"},
    }
    body.update(claims)
    body = {k: v for k, v in body.items() if v is not None}
    header = dict(headers or {})
    if kid is not None:
        header["kid"] = kid
    return jwt.encode(body, key, algorithm=alg, headers=header or None)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class FakeDagster:
    """Just enough of Dagster's GraphQL API (and Supabase's JWKS) to drive the gateway."""

    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    launches: list[dict[str, Any]] = field(default_factory=list)
    operations: list[str] = field(default_factory=list)
    jwks: dict[str, Any] = field(
        default_factory=lambda: {"keys": [public_jwk(RSA_KEY, RSA_KID), public_jwk(EC_KEY, EC_KID)]}
    )
    jwks_requests: int = 0
    jwks_status: int = 200
    launch_answer: dict[str, Any] | None = None  # replaces LaunchRunSuccess when set
    top_level_errors: list[dict[str, Any]] | None = None
    launch_delay: float = 0.0

    def add_run(
        self,
        *,
        status: str,
        job: str = "sync_ghl_calls",
        tags: dict[str, str] | None = None,
        events: list[dict[str, Any]] | None = None,
    ) -> str:
        run_id = str(uuid.uuid4())
        self.runs[run_id] = {
            "runId": run_id,
            "jobName": job,
            "status": status,
            "tags": [{"key": k, "value": v} for k, v in (tags or {}).items()],
            "events": events or [],
        }
        return run_id

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/graphql", self._graphql, methods=["POST"]),
                Route(JWKS_PATH, self._jwks, methods=["GET"]),
            ]
        )

    async def _jwks(self, request: Request) -> JSONResponse:
        self.jwks_requests += 1
        return JSONResponse(self.jwks, status_code=self.jwks_status)

    async def _graphql(self, request: Request) -> JSONResponse:
        payload = await request.json()
        operation = payload["operationName"]
        variables = payload["variables"]
        self.operations.append(operation)
        if self.top_level_errors:
            return JSONResponse({"errors": self.top_level_errors})
        if operation == "LaunchSync":
            return JSONResponse({"data": {"launchRun": await self._launch(variables["executionParams"])}})
        if operation == "ActiveSyncs":
            run_filter = variables["filter"]
            wanted_tags = {(t["key"], t["value"]) for t in run_filter.get("tags") or []}
            results = [
                {k: run[k] for k in ("runId", "status", "tags")}
                for run in self.runs.values()
                if run["jobName"] == run_filter["pipelineName"]
                and run["status"] in set(run_filter["statuses"])
                and wanted_tags <= {(t["key"], t["value"]) for t in run["tags"]}
            ]
            return JSONResponse({"data": {"runsOrError": {"__typename": "Runs", "results": results}}})
        if operation == "SyncRun":
            run = self.runs.get(variables["runId"])
            if run is None:
                answer = {"__typename": "RunNotFoundError", "message": "Run not found"}
            else:
                answer = {"__typename": "Run", **{k: v for k, v in run.items() if k != "events"}}
                if variables["withEvents"]:
                    answer["eventConnection"] = {"events": run["events"]}
            return JSONResponse({"data": {"runOrError": answer}})
        return JSONResponse({"errors": [{"message": f"unknown operation {operation}"}]})

    async def _launch(self, params: dict[str, Any]) -> dict[str, Any]:
        self.launches.append(params)
        if self.launch_delay:
            await asyncio.sleep(self.launch_delay)
        if self.launch_answer is not None:
            return self.launch_answer
        tags = {t["key"]: t["value"] for t in params["executionMetadata"]["tags"]}
        run_id = self.add_run(status="QUEUED", job=params["selector"]["jobName"], tags=tags)
        return {"__typename": "LaunchRunSuccess", "run": {"runId": run_id, "status": "QUEUED"}}


# The projects the gateway tests' database holds (the gateway refuses any other name before launching).
ACTIVE_PROJECTS = ("Acme Roofing", "Globex", "Initech HVAC")
INACTIVE_PROJECT = "Umbrella Old"


@pytest.fixture(scope="session")
def gateway_db_url(pg_admin_url: str, _schema_template: str) -> Iterator[str]:
    """One database for the session's gateway tests, read-only to them: the projects above."""
    from ghl_pipeline.warehouse.db import get_engine
    from ghl_pipeline.warehouse.projects import add_project
    from ghl_pipeline_tests.conftest import _fresh_database

    databases = _fresh_database(pg_admin_url, _schema_template)
    url = next(databases)
    engine = get_engine(url)
    for n, name in enumerate(ACTIVE_PROJECTS):
        add_project(engine, name=name, location_id=f"loc{n}", api_key=f"pit-{n}")
    add_project(engine, name=INACTIVE_PROJECT, location_id="locX", api_key="pit-x", active=False)
    yield url
    databases.close()


def make_settings(**overrides: Any) -> GatewaySettings:
    values: dict[str, Any] = {
        "dagster_graphql_url": "http://dagster.test/graphql",
        "jwks_url": SUPABASE_URL + JWKS_PATH,
        "jwt_secret": HS_SECRET,
        "jwt_issuer": ISSUER,
        "cors_origins": (DASHBOARD_ORIGIN,),
        "max_body_bytes": 1024,
    }
    values.update(overrides)
    return GatewaySettings(**values)


@pytest.fixture
def fake() -> FakeDagster:
    return FakeDagster()


@pytest.fixture
def gateway_factory(fake: FakeDagster, gateway_db_url: str) -> Iterator[Any]:
    """Build a started gateway TestClient with settings overrides, talking to ``fake``."""
    clients: list[TestClient] = []

    def build(**overrides: Any) -> TestClient:
        overrides.setdefault("database_url", gateway_db_url)
        app = create_app(make_settings(**overrides), transport=httpx.ASGITransport(app=fake.app()))
        client = TestClient(app, raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        return client

    yield build
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(gateway_factory: Any) -> TestClient:
    return gateway_factory()


VALID_BODY = {"dateFrom": "2025-12-01", "dateTo": "2025-12-07", "projectName": "Acme Roofing"}
