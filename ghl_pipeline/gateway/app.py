"""The dashboard's front door to Dagster: ``POST /sync``, ``GET /sync/{runId}``, the browser client.

Dagster's GraphQL endpoint has no authentication, so the webserver stays on loopback or a private
network and the browser talks only to this app. Every request except CORS preflights, the health
check and the client script carries a Supabase access token, verified here before anything reaches
Dagster.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from importlib import resources
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ghl_pipeline.gateway.auth import (
    AuthError,
    ForbiddenError,
    JwksCache,
    JwksUnavailableError,
    Principal,
    TokenVerifier,
)
from ghl_pipeline.gateway.body import ALL_PROJECTS_SCOPE, BodyError, decode_json_object, parse_sync_request
from ghl_pipeline.gateway.dagster import DagsterClient, DagsterError, RunRef, SyncRun
from ghl_pipeline.gateway.projects import ProjectCatalog, ProjectsUnavailableError
from ghl_pipeline.gateway.settings import MAX_WAIT_SECONDS, GatewaySettings

log = logging.getLogger(__name__)


class _TooLarge(Exception):
    pass


class Gateway:
    """The request handlers and the state they share (HTTP client, token verifier, launch lock)."""

    def __init__(
        self, settings: GatewaySettings, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.settings = settings
        self._transport = transport
        self._http: httpx.AsyncClient | None = None
        self._verifier: TokenVerifier | None = None
        self._dagster: DagsterClient | None = None
        self._projects = ProjectCatalog(settings.database_url)
        self._client_files = _load_client_files()
        # Check-then-launch must not interleave inside this process: two clicks a few milliseconds
        # apart would both see "nothing running" and launch twice. One lock (not one per scope)
        # because an all-projects sync and a one-project sync overlap too; it is held for two short
        # GraphQL calls only.
        self._launch_lock = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        """Open the outbound HTTP client for the app's lifetime and close it at shutdown."""
        timeout = httpx.Timeout(self.settings.dagster_timeout_seconds, connect=5.0)
        async with httpx.AsyncClient(
            transport=self._transport, timeout=timeout, follow_redirects=False
        ) as http:
            self._http = http
            jwks = None
            if self.settings.jwks_url:
                jwks = JwksCache(
                    url=self.settings.jwks_url,
                    client=http,
                    max_age=self.settings.jwks_cache_seconds,
                    min_refresh=self.settings.jwks_min_refresh_seconds,
                )
            self._verifier = TokenVerifier(self.settings, jwks=jwks)
            self._dagster = DagsterClient(url=self.settings.dagster_graphql_url, client=http)
            try:
                yield
            finally:
                self._http = self._verifier = self._dagster = None

    async def healthz(self, request: Request) -> Response:
        """Liveness for load balancers; says nothing about Dagster and needs no token."""
        return JSONResponse({"ok": True})

    async def start_sync(self, request: Request) -> Response:
        """``POST /sync``: validate, then launch ``sync_ghl_calls`` (or return the run already in flight)."""
        principal = await self._principal(request)
        if isinstance(principal, Response):
            return principal
        try:
            raw = await _read_bounded(request, self.settings.max_body_bytes)
        except _TooLarge:
            return _error(413, "body", f"the body may be at most {self.settings.max_body_bytes} bytes")
        except ClientDisconnect:
            return _error(400, "body", "the client went away before sending the body")
        try:
            sync = parse_sync_request(decode_json_object(raw))
            # Before the lock and the launch: a typo is answered at once, and nothing is started.
            await self._projects.check(sync.project_name)
        except BodyError as exc:
            return _error(400, exc.field, exc.message)
        except ProjectsUnavailableError as exc:
            return _error(503, "database", str(exc))
        dagster = self._client()
        try:
            async with self._launch_lock:
                running = await self._running_for(sync.scope)
                if running is not None:
                    log.info("sync %s already in flight for scope %r", running.run_id, sync.scope)
                    return JSONResponse(_launch_body(running, already_running=True), status_code=200)
                launched = await dagster.launch_sync(request=sync, user_id=principal.user_id)
        except DagsterError as exc:
            return _error(exc.http_status, "dagster", exc.message)
        log.info("launched sync %s for scope %r by user %s", launched.run_id, sync.scope, principal.user_id)
        return JSONResponse(
            _launch_body(launched, already_running=False),
            status_code=202,
            headers={"Location": f"/sync/{launched.run_id}"},
        )

    async def sync_status(self, request: Request) -> Response:
        """``GET /sync/{runId}[?wait=N]``: status, counts, failed projects and the toast text.

        With ``wait`` (seconds, at most 30) the answer comes as soon as the run is done, or after
        ``wait`` seconds with ``done: false``; the dashboard asks again until it is done. While it
        waits the gateway asks Dagster every ``status_poll_seconds`` (a coroutine per waiter, no thread).
        """
        principal = await self._principal(request)
        if isinstance(principal, Response):
            return principal
        run_id = request.path_params["run_id"]
        try:
            run_id = str(uuid.UUID(run_id))
        except ValueError:
            return _error(400, "runId", "must be a run id (a UUID)")
        try:
            wait = _wait_seconds(request.query_params.get("wait"))
        except BodyError as exc:
            return _error(400, exc.field, exc.message)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        dagster = self._client()
        try:
            while True:
                run = await dagster.sync_run(run_id=run_id)
                if run is None:
                    return _error(404, "runId", "no sync run with this id")
                remaining = deadline - loop.time()
                if run.done or remaining <= 0:
                    break
                if await request.is_disconnected():
                    return Response(status_code=204)  # nobody is listening any more
                await asyncio.sleep(min(self.settings.status_poll_seconds, remaining))
        except DagsterError as exc:
            return _error(exc.http_status, "dagster", exc.message)
        return JSONResponse(_status_body(run), headers={"Cache-Control": "no-store"})

    async def client_file(self, request: Request) -> Response:
        """``GET /client/ghl-sync.js`` (and ``.d.ts``): the drop-in browser client, cacheable, no token."""
        served = self._client_files.get(request.path_params["name"])
        if served is None:
            return _error(404, "path", "no such client file; try /client/ghl-sync.js")
        headers = {
            "ETag": served.etag,
            # Revalidated every 5 minutes (a 304 when unchanged), so a gateway upgrade reaches the
            # dashboard without anyone clearing a cache.
            "Cache-Control": "public, max-age=300",
            "X-Content-Type-Options": "nosniff",
        }
        if served.etag in _etags(request.headers.get("if-none-match")):
            return Response(status_code=304, headers=headers)
        return Response(served.body, media_type=served.media_type, headers=headers)

    async def _running_for(self, scope: str) -> RunRef | None:
        """A run already covering ``scope``: same project, an all-projects run, or (for ``*``) any run."""
        dagster = self._client()
        if scope == ALL_PROJECTS_SCOPE:
            runs = await dagster.active_syncs(scope=None)
        else:
            # Both at once: the click waits for this before its run is launched.
            mine, everything = await asyncio.gather(
                dagster.active_syncs(scope=scope), dagster.active_syncs(scope=ALL_PROJECTS_SCOPE)
            )
            runs = mine + everything
        return runs[0] if runs else None

    async def _principal(self, request: Request) -> Principal | Response:
        verifier = self._verifier
        if verifier is None:
            raise RuntimeError("the gateway app is not started (run it under its lifespan)")
        try:
            return await verifier.principal(request.headers.get("authorization"))
        except AuthError as exc:
            log.info("401 on %s %s: %s", request.method, request.url.path, exc)
            return _error(
                401, "authorization", str(exc), headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}
            )
        except ForbiddenError as exc:
            return _error(403, "authorization", str(exc))
        except JwksUnavailableError as exc:
            log.error("%s", exc)
            return _error(503, "authorization", "token keys are unavailable; try again shortly")

    def _client(self) -> DagsterClient:
        if self._dagster is None:
            raise RuntimeError("the gateway app is not started (run it under its lifespan)")
        return self._dagster


def create_app(settings: GatewaySettings, *, transport: httpx.AsyncBaseTransport | None = None) -> Starlette:
    """The gateway ASGI app; ``transport`` replaces real HTTP to Dagster and the JWKS (tests)."""
    gateway = Gateway(settings, transport=transport)
    middleware = [
        # Outermost, so 401/403/4xx answers carry CORS headers too and the dashboard can read them.
        Middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
            expose_headers=["Location", "ETag"],
            allow_credentials=False,  # bearer tokens, not cookies
            max_age=600,
        )
    ]
    routes = [
        Route("/healthz", gateway.healthz, methods=["GET"]),
        Route("/sync", gateway.start_sync, methods=["POST"]),
        Route("/sync/{run_id}", gateway.sync_status, methods=["GET"]),
        Route("/client/{name}", gateway.client_file, methods=["GET", "HEAD"]),
    ]
    app = Starlette(routes=routes, middleware=middleware, lifespan=gateway.lifespan)
    app.state.gateway = gateway
    return app


def run(host: str = "127.0.0.1", port: int = 8080, *, settings: GatewaySettings | None = None) -> None:
    """Serve the gateway with uvicorn until interrupted (``ghl-pipeline gateway``)."""
    import uvicorn

    app = create_app(settings or GatewaySettings.from_env())
    # No access log of headers; uvicorn's access log prints method, path and status only.
    uvicorn.run(app, host=host, port=port, proxy_headers=True, server_header=False, log_level="info")


async def _read_bounded(request: Request, limit: int) -> bytes:
    """The body, refusing early on a large Content-Length and reading at most ``limit + 1`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise _TooLarge
        except ValueError:
            pass  # the server already refuses a malformed Content-Length
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


CLIENT_PACKAGE = "ghl_pipeline.gateway"
CLIENT_FILES = {
    "ghl-sync.js": "text/javascript; charset=utf-8",
    "ghl-sync.d.ts": "application/typescript; charset=utf-8",
}


@dataclass(frozen=True)
class _ClientFile:
    body: bytes
    media_type: str
    etag: str


def _load_client_files() -> dict[str, _ClientFile]:
    """The client files shipped in the package (``gateway/client/``), read once with their ETags."""
    folder = resources.files(CLIENT_PACKAGE).joinpath("client")
    files = {}
    for name, media_type in CLIENT_FILES.items():
        body = folder.joinpath(name).read_bytes()
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        files[name] = _ClientFile(body=body, media_type=media_type, etag=etag)
    return files


def _etags(header: str | None) -> set[str]:
    if not header:
        return set()
    # Weak validators match too for a GET (RFC 9110 §13.1.2): a proxy may have weakened ours.
    return {tag.strip().removeprefix("W/") for tag in header.split(",")}


def _wait_seconds(raw: str | None) -> float:
    """The ``wait`` query parameter: 0 (answer at once) to 30 seconds."""
    if raw is None or raw == "":
        return 0.0
    try:
        wait = float(raw)
    except ValueError:
        raise BodyError("wait", f"must be a number of seconds from 0 to {MAX_WAIT_SECONDS:g}") from None
    if not math.isfinite(wait) or not 0 <= wait <= MAX_WAIT_SECONDS:
        raise BodyError("wait", f"must be a number of seconds from 0 to {MAX_WAIT_SECONDS:g}")
    return wait


def _status_body(run: SyncRun) -> dict[str, Any]:
    body: dict[str, Any] = {
        "runId": run.run_id,
        "status": run.status,
        "done": run.done,
        "outcome": run.outcome,
        "newRecords": run.new_records,
        "updatedRecords": run.updated_records,
        "rejectedRecords": run.rejected_records,
        "projects": dict(run.projects),
        "failedProjects": [f.as_json() for f in run.failed_projects],
        "message": run.message,
    }
    if run.error is not None:
        body["error"] = run.error
    return body


def _launch_body(run: RunRef, *, already_running: bool) -> dict[str, Any]:
    return {"runId": run.run_id, "status": run.status, "alreadyRunning": already_running, "scope": run.scope}


def _error(status: int, field: str, message: str, *, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "field": field}, status_code=status, headers=headers)
