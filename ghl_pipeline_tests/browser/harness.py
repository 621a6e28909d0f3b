"""What the browser tests (and ``benchmarks/bench_button.py``) run: the gateway on a real port, a page
served from another origin, and Debian's Chromium driven by Playwright.

Playwright's own browser download does not work on these machines, so Playwright is pointed at
``/usr/bin/chromium`` (the Makefile installs Debian's ``chromium`` when it is missing). A missing
browser is an error, never a skip: a test that CI silently skips proves nothing.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from ghl_pipeline.gateway import GatewaySettings, create_app

CHROMIUM = Path("/usr/bin/chromium")
PAGE = Path(__file__).with_name("dashboard.html")
# The flags these machines need (closed network: no background requests, no QUIC, no GPU).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
RUNS_QUERY = """
query Runs($filter: RunsFilter!) { runsOrError(filter: $filter) { __typename ... on Runs { results { runId } } } }
"""
RUN_END_QUERY = "query End($id: ID!) { runOrError(runId: $id) { ... on Run { status startTime endTime } } }"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def serve_gateway(settings: GatewaySettings, *, extra_routes: list | None = None) -> Iterator[str]:
    """The gateway under uvicorn on a free loopback port, in a thread; yields its base URL."""
    app = create_app(settings)
    for route in extra_routes or []:
        app.router.routes.append(route)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="gateway", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the gateway did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@contextlib.contextmanager
def serve_page() -> Iterator[str]:
    """``dashboard.html`` from ``http://localhost:<port>``: another origin than the gateway's 127.0.0.1."""

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
            pass

    handler = functools.partial(Handler, directory=str(PAGE.parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="page", daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """A headless Debian Chromium under Playwright, with a fresh profile; yields the Browser."""
    if not CHROMIUM.exists():
        raise RuntimeError(
            f"{CHROMIUM} is missing: `make install` installs Debian's chromium (apt-get install -y chromium)"
        )
    from playwright.sync_api import sync_playwright

    # Playwright starts Chromium with a fresh temporary --user-data-dir of its own on every launch.
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS, chromium_sandbox=False
        )
        try:
            yield browser
        finally:
            browser.close()


def open_dashboard(browser: Any, page_origin: str, gateway_url: str, **attributes: str) -> Any:
    """A new page on the dashboard stand-in with the button placed; ``attributes`` like date_from=..."""
    query = httpx.QueryParams(
        {"gateway": gateway_url, **{k.replace("_", "-"): v for k, v in attributes.items()}}
    )
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{page_origin}/dashboard.html?{query}")
    page.wait_for_function("() => window.__ready !== undefined", timeout=30_000)
    ready = page.evaluate("() => window.__ready")
    if ready is not True:
        raise AssertionError(f"the dashboard page did not load the client: {ready}")
    return page


def sync_run_ids(graphql_url: str, job: str = "sync_ghl_calls") -> set[str]:
    """Every run id of ``job`` the Dagster instance knows."""
    answer = httpx.post(
        graphql_url, json={"query": RUNS_QUERY, "variables": {"filter": {"pipelineName": job}}}, timeout=30
    ).json()
    return {run["runId"] for run in answer["data"]["runsOrError"]["results"]}


def run_times(graphql_url: str, run_id: str) -> dict[str, Any]:
    """``status``, ``startTime`` and ``endTime`` (Unix seconds) of a run, as Dagster recorded them."""
    answer = httpx.post(graphql_url, json={"query": RUN_END_QUERY, "variables": {"id": run_id}}, timeout=30)
    return answer.json()["data"]["runOrError"]
