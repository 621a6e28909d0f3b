"""``GET /sync/{runId}?wait=N`` answers when the run ends; ``GET /client/ghl-sync.js``; the project check."""

from __future__ import annotations

import threading
import time

import pytest

from ghl_pipeline_tests.gateway.conftest import (
    DASHBOARD_ORIGIN,
    INACTIVE_PROJECT,
    VALID_BODY,
    bearer,
    make_token,
)

AUTH = bearer(make_token())


def _finish_later(fake, run_id: str, delay: float, status: str = "SUCCESS") -> threading.Timer:
    def finish() -> None:
        run = fake.runs[run_id]
        run["tags"] = [{"key": "ghl/new_records", "value": "5"}]
        run["status"] = status

    timer = threading.Timer(delay, finish)
    timer.start()
    return timer


def test_long_poll_answers_as_soon_as_the_run_ends(client, fake):
    run_id = fake.add_run(status="STARTED")
    timer = _finish_later(fake, run_id, 0.6)
    started = time.monotonic()
    answer = client.get(f"/sync/{run_id}?wait=10", headers=AUTH).json()
    elapsed = time.monotonic() - started
    timer.join()
    assert answer["done"] is True and answer["status"] == "SUCCESS"
    assert answer["message"] == "Synced 5 new call records"
    # It waited for the run (not answering at once) and answered within a poll interval of its end.
    assert 0.55 <= elapsed < 1.2, elapsed


def test_long_poll_gives_up_after_wait_seconds(client, fake):
    run_id = fake.add_run(status="STARTED")
    started = time.monotonic()
    answer = client.get(f"/sync/{run_id}?wait=0.5", headers=AUTH).json()
    elapsed = time.monotonic() - started
    assert answer["done"] is False and answer["status"] == "STARTED"
    assert 0.45 <= elapsed < 1.5, elapsed


def test_without_wait_the_answer_is_immediate(client, fake):
    run_id = fake.add_run(status="STARTED")
    before = fake.operations.count("SyncRun")
    assert client.get(f"/sync/{run_id}", headers=AUTH).json()["done"] is False
    assert fake.operations.count("SyncRun") == before + 1


@pytest.mark.parametrize("wait", ["31", "-1", "abc", "nan", "inf", "1e9"])
def test_bad_wait_is_400_naming_it(client, fake, wait):
    run_id = fake.add_run(status="STARTED")
    response = client.get(f"/sync/{run_id}?wait={wait}", headers=AUTH)
    assert response.status_code == 400 and response.json()["field"] == "wait"
    assert "30" in response.json()["error"]


def test_long_poll_needs_a_token(client, fake):
    run_id = fake.add_run(status="STARTED")
    assert client.get(f"/sync/{run_id}?wait=1").status_code == 401


def test_client_script_is_served_as_javascript_with_caching_headers(client):
    response = client.get("/client/ghl-sync.js", headers={"Origin": DASHBOARD_ORIGIN})
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/javascript; charset=utf-8"
    assert response.headers["access-control-allow-origin"] == DASHBOARD_ORIGIN
    assert "max-age=" in response.headers["cache-control"]
    assert "export async function syncFromGhl" in response.text
    assert 'customElements.define("ghl-sync-button"' in response.text
    etag = response.headers["etag"]
    again = client.get("/client/ghl-sync.js", headers={"If-None-Match": etag, "Origin": DASHBOARD_ORIGIN})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == etag
    assert again.headers["access-control-allow-origin"] == DASHBOARD_ORIGIN
    stale = client.get("/client/ghl-sync.js", headers={"If-None-Match": '"something-else"'})
    assert stale.status_code == 200 and stale.content == response.content


def test_client_types_are_served_beside_it(client):
    response = client.get("/client/ghl-sync.d.ts")
    assert response.status_code == 200
    assert "export declare function syncFromGhl" in response.text
    assert response.headers["etag"] != client.get("/client/ghl-sync.js").headers["etag"]


def test_client_script_is_not_offered_to_other_sites(client):
    response = client.get("/client/ghl-sync.js", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in response.headers  # the browser refuses the import


@pytest.mark.parametrize("name", ["nope.js", "..%2Fapp.py", "ghl-sync.JS"])
def test_only_the_client_files_are_served(client, name):
    assert client.get(f"/client/{name}").status_code == 404


@pytest.mark.parametrize(
    ("project", "error"),
    [
        ("Acme Rofing", "Unknown project: 'Acme Rofing' (did you mean 'Acme Roofing'?)"),
        ("acme roofing", "Unknown project: 'acme roofing' (did you mean 'Acme Roofing'?)"),
        ("Zebra Plumbing", "Unknown project: 'Zebra Plumbing'"),
        (INACTIVE_PROJECT, f"Inactive project: {INACTIVE_PROJECT!r} is switched off, so it is not synced"),
    ],
)
def test_unknown_or_inactive_project_is_refused_before_launching(client, fake, project, error):
    response = client.post("/sync", json={**VALID_BODY, "projectName": project}, headers=AUTH)
    assert response.status_code == 400
    assert response.json() == {"error": error, "field": "projectName"}
    assert fake.launches == [] and fake.operations == []


def test_no_active_projects_refuses_an_all_projects_sync(gateway_factory, fake, empty_db_url):
    client = gateway_factory(database_url=empty_db_url)  # no projects table at all
    response = client.post("/sync", json={"dateFrom": "2025-12-01", "dateTo": "2025-12-01"}, headers=AUTH)
    assert response.status_code == 400 and response.json()["field"] == "projectName"
    assert "no active projects" in response.json()["error"]
    assert fake.launches == []


def test_unreachable_projects_database_is_503(gateway_factory, fake):
    client = gateway_factory(database_url="postgresql+psycopg2://nobody:secret@127.0.0.1:9/none")
    response = client.post("/sync", json=VALID_BODY, headers=AUTH)
    assert response.status_code == 503 and response.json()["field"] == "database"
    assert "secret" not in response.text
    assert fake.launches == []
