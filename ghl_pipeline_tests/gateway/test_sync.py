"""POST /sync and GET /sync/{runId}: bodies, size limits, one sync in flight, Dagster's error unions, CORS."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from ghl_pipeline.gateway import create_app
from ghl_pipeline_tests.gateway.conftest import (
    DASHBOARD_ORIGIN,
    VALID_BODY,
    TestClient,
    bearer,
    make_settings,
    make_token,
)

AUTH = bearer(make_token())


def test_launch_builds_the_run_config_from_validated_fields(client, fake):
    body = {
        "dateFrom": " 2025-12-01T00:00:00Z",
        "dateTo": "2025-12-02T12:30:00+02:00",
        "projectName": " Acme Roofing ",
    }
    response = client.post("/sync", json=body, headers=AUTH)
    assert response.status_code == 202, response.text
    answer = response.json()
    assert answer["status"] == "QUEUED" and answer["alreadyRunning"] is False
    assert response.headers["location"] == f"/sync/{answer['runId']}"
    params = fake.launches[0]
    assert params["selector"] == {
        "repositoryLocationName": "ghl_pipeline",
        "repositoryName": "__repository__",
        "jobName": "sync_ghl_calls",
    }
    assert params["runConfigData"] == {
        "ops": {
            "sync_calls": {
                "config": {
                    "date_from": "2025-12-01T00:00:00+00:00",
                    "date_to": "2025-12-02T12:30:00+02:00",
                    "project_name": "Acme Roofing",
                }
            }
        }
    }


def test_all_projects_scope(client, fake):
    response = client.post("/sync", json={"dateFrom": "2025-12-01", "dateTo": "2025-12-01"}, headers=AUTH)
    assert response.status_code == 202
    config = fake.launches[0]["runConfigData"]["ops"]["sync_calls"]["config"]
    assert config["project_name"] is None
    tags = {t["key"]: t["value"] for t in fake.launches[0]["executionMetadata"]["tags"]}
    assert tags["ghl/scope"] == "*"


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"dateTo": "2025-12-01"}, "dateFrom", "required"),
        ({"dateFrom": "2025-12-01"}, "dateTo", "required"),
        ({"dateFrom": 20251201, "dateTo": "2025-12-01"}, "dateFrom", "string"),
        ({"dateFrom": "12/01/2025", "dateTo": "2025-12-01"}, "dateFrom", "YYYY-MM-DD"),
        ({"dateFrom": "20251201", "dateTo": "2025-12-01"}, "dateFrom", "YYYY-MM-DD"),
        ({"dateFrom": "2025-02-30", "dateTo": "2025-03-01"}, "dateFrom", "real calendar date"),
        ({"dateFrom": "２０２５-12-01", "dateTo": "2025-12-01"}, "dateFrom", "YYYY-MM-DD"),
        ({"dateFrom": "2025-12-01T00:00:00", "dateTo": "2025-12-02T00:00:00"}, "dateFrom", "offset"),
        ({"dateFrom": "2025-12-01", "dateTo": "2025-12-02T00:00:00Z"}, "dateTo", "mix"),
        ({"dateFrom": "2025-12-05", "dateTo": "2025-12-01"}, "dateTo", "before"),
        ({"dateFrom": "2025-12-01T10:00Z", "dateTo": "2025-12-01T10:00Z"}, "dateTo", "after"),
        ({"dateFrom": "2025-01-01", "dateTo": "2025-04-04"}, "dateTo", "93 days"),
        ({"dateFrom": "2025-01-01T00:00Z", "dateTo": "2025-04-04T00:00:01Z"}, "dateTo", "93 days"),
        ({"dateFrom": "1970-01-01", "dateTo": "1970-01-02"}, "dateFrom", "outside 2000-01-01"),
        ({"dateFrom": "9999-12-30", "dateTo": "9999-12-31"}, "dateFrom", "outside 2000-01-01"),
        ({**VALID_BODY, "projectName": 7}, "projectName", "string"),
        ({**VALID_BODY, "projectName": "  "}, "projectName", "empty"),
        ({**VALID_BODY, "projectName": "x" * 201}, "projectName", "200"),
        ({**VALID_BODY, "projectName": "Acme\u0000"}, "projectName", "control"),
        ({**VALID_BODY, "projectName": "*"}, "projectName", "omit"),
        ({**VALID_BODY, "project_name": "Acme"}, "project_name", "unknown field"),
        ([VALID_BODY], "body", "object"),
    ],
)
def test_bad_bodies_get_400_naming_the_field(client, fake, body, field, words):
    response = client.post("/sync", json=body, headers=AUTH)
    assert response.status_code == 400, response.text
    assert response.json()["field"] == field
    assert words in response.json()["error"]
    assert fake.launches == []


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"not json",
        b'{"dateFrom": ',
        b"\xff\xfe",
        b"[" * 500 + b"]" * 500,
        b"NaN",
        b'{"dateFrom": "2025-12-01", "dateFrom": "2025-12-02", "dateTo": "2025-12-03"}',
    ],
    ids=["empty", "text", "truncated", "not utf-8", "deep nesting", "NaN", "duplicate key"],
)
def test_non_json_gets_400(client, fake, raw):
    response = client.post("/sync", content=raw, headers={**AUTH, "Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    assert fake.launches == []


def test_nesting_deeper_than_the_parser_allows_is_400_not_500(gateway_factory, fake):
    client = gateway_factory(max_body_bytes=8192)
    raw = b'{"dateFrom":' + b"[" * 4000 + b"]" * 4000 + b"}"
    response = client.post("/sync", content=raw, headers=AUTH)
    assert response.status_code == 400, response.text
    assert fake.launches == []


def test_oversize_body_by_content_length_is_413(client, fake):
    body = json.dumps({**VALID_BODY, "projectName": "x" * 2000})
    response = client.post("/sync", content=body, headers={**AUTH, "Content-Type": "application/json"})
    assert response.status_code == 413
    assert fake.launches == []


def test_oversize_streamed_body_without_content_length_is_413(client, fake):
    def chunks():
        for _ in range(100):
            yield b" " * 100

    response = client.post("/sync", content=chunks(), headers=AUTH)
    assert "content-length" not in response.request.headers
    assert response.status_code == 413
    assert fake.launches == []


def test_second_click_returns_the_run_in_flight(client, fake):
    first = client.post("/sync", json=VALID_BODY, headers=AUTH)
    second = client.post("/sync", json={**VALID_BODY, "dateFrom": "2025-12-02"}, headers=AUTH)
    assert first.status_code == 202 and second.status_code == 200
    assert second.json()["runId"] == first.json()["runId"]
    assert second.json()["alreadyRunning"] is True
    assert len(fake.launches) == 1


def test_simultaneous_clicks_launch_once(client, fake):
    fake.launch_delay = 0.2  # widen the window between "nothing running" and "launched"
    with ThreadPoolExecutor(max_workers=6) as pool:
        responses = list(pool.map(lambda _: client.post("/sync", json=VALID_BODY, headers=AUTH), range(6)))
    assert len(fake.launches) == 1
    assert len({r.json()["runId"] for r in responses}) == 1
    assert sorted(r.status_code for r in responses) == [200] * 5 + [202]


def test_finished_run_does_not_block_a_new_sync(client, fake):
    fake.add_run(status="SUCCESS", tags={"ghl/scope": "Acme Roofing"})
    assert client.post("/sync", json=VALID_BODY, headers=AUTH).status_code == 202


def test_all_projects_run_blocks_a_project_sync_and_vice_versa(client, fake):
    everything = fake.add_run(status="STARTED", tags={"ghl/scope": "*"})
    response = client.post("/sync", json=VALID_BODY, headers=AUTH)
    assert response.status_code == 200 and response.json()["runId"] == everything
    fake.runs[everything]["status"] = "SUCCESS"
    acme = fake.add_run(status="QUEUED", tags={"ghl/scope": "Acme Roofing"})
    response = client.post("/sync", json={"dateFrom": "2025-12-01", "dateTo": "2025-12-01"}, headers=AUTH)
    assert response.status_code == 200 and response.json()["runId"] == acme
    # Another project is independent.
    assert client.post("/sync", json={**VALID_BODY, "projectName": "Globex"}, headers=AUTH).status_code == 202


@pytest.mark.parametrize(
    ("answer", "status", "words"),
    [
        (
            {
                "__typename": "RunConfigValidationInvalid",
                "errors": [
                    {"message": 'Received unexpected config entry "x"', "path": ["ops"], "reason": "X"}
                ],
            },
            400,
            "unexpected config entry",
        ),
        ({"__typename": "PipelineNotFoundError", "message": "Could not find"}, 502, "sync_ghl_calls"),
        (
            {"__typename": "PythonError", "message": "KeyError: 'boom'\n  File ...", "className": "KeyError"},
            502,
            "boom",
        ),
        ({"__typename": "RunConflict", "message": "conflict"}, 409, "conflict"),
        ({"__typename": "UnauthorizedError", "message": "nope"}, 502, "UnauthorizedError"),
    ],
)
def test_dagster_error_unions_become_readable_errors(client, fake, answer, status, words):
    fake.launch_answer = answer
    response = client.post("/sync", json=VALID_BODY, headers=AUTH)
    assert response.status_code == status
    assert words in response.json()["error"]
    assert "File ..." not in response.json()["error"]  # first line only, no stack


def test_graphql_level_errors_are_502(client, fake):
    fake.top_level_errors = [{"message": 'Cannot query field "x" on type "Run".'}]
    response = client.post("/sync", json=VALID_BODY, headers=AUTH)
    assert response.status_code == 502 and "Cannot query field" in response.json()["error"]


def test_unreachable_dagster_is_503(gateway_db_url):
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    settings = make_settings(jwks_url=None, database_url=gateway_db_url)
    app = create_app(settings, transport=httpx.MockTransport(refuse))
    with TestClient(app) as client:
        response = client.post("/sync", json=VALID_BODY, headers=AUTH)
    assert response.status_code == 503 and "unreachable" in response.json()["error"]


def test_status_of_a_finished_run_reports_the_summary(client, fake):
    summary = {
        "new_records": 24,
        "updated_records": 3,
        "rejected_records": 1,
        "projects": {"Acme Roofing": {"new_records": 24, "updated_records": 3, "rejected_records": 1}},
    }
    run_id = fake.add_run(
        status="SUCCESS",
        tags={
            "ghl/new_records": "24",
            "ghl/updated_records": "3",
            "ghl/rejected_records": "1",
            "ghl/summary": json.dumps(summary),
        },
    )
    response = client.get(f"/sync/{run_id}", headers=AUTH)
    assert response.status_code == 200
    assert response.json() == {
        "runId": run_id,
        "status": "SUCCESS",
        "done": True,
        "outcome": "success",
        "newRecords": 24,
        "updatedRecords": 3,
        "rejectedRecords": 1,
        "projects": summary["projects"],
        "failedProjects": [],
        "message": "Synced 24 new call records",
    }
    assert response.headers["cache-control"] == "no-store"


def test_status_while_running_has_no_counts(client, fake):
    run_id = fake.add_run(status="STARTED", tags={"ghl/summary": "{not json", "ghl/new_records": "-3"})
    answer = client.get(f"/sync/{run_id}", headers=AUTH).json()
    assert answer["done"] is False and answer["newRecords"] is None and answer["projects"] == {}
    assert answer["message"] is None and answer["outcome"] is None


def test_failed_run_reports_the_users_reason(client, fake):
    error = {
        "message": 'dagster._core.errors.DagsterExecutionStepExecutionError: Error occurred while executing op "sync_calls":\n',
        "className": "DagsterExecutionStepExecutionError",
        "cause": {
            "message": "ValueError: project_name: unknown project 'Nope'\n",
            "className": "ValueError",
            "cause": None,
        },
    }
    events = [
        {
            "__typename": "ExecutionStepFailureEvent",
            "message": 'Execution of step "sync_calls" failed.',
            "error": error,
        },
        {"__typename": "RunFailureEvent", "message": "Execution of run failed.", "error": None},
    ]
    run_id = fake.add_run(status="FAILURE", events=events)
    answer = client.get(f"/sync/{run_id}", headers=AUTH).json()
    assert answer["status"] == "FAILURE" and answer["done"] is True
    assert answer["error"] == "Project: unknown project 'Nope'"
    assert answer["message"] == "Sync failed: Project: unknown project 'Nope'"
    assert answer["outcome"] == "failed"


def test_runs_of_other_jobs_are_invisible(client, fake):
    run_id = fake.add_run(status="SUCCESS", job="some_admin_job")
    assert client.get(f"/sync/{run_id}", headers=AUTH).status_code == 404


@pytest.mark.parametrize(
    "run_id", ["nope", "1234", "urn:uuid:not-a-uuid", "00000000-0000-4000-8000-00000000000g"]
)
def test_malformed_run_id_is_400(client, fake, run_id):
    response = client.get(f"/sync/{run_id}", headers=AUTH)
    assert response.status_code == 400 and response.json()["field"] == "runId"
    assert "SyncRun" not in fake.operations


def test_unknown_run_is_404(client):
    assert client.get("/sync/3f0c1d7e-8a1b-4c2d-9e3f-000000000000", headers=AUTH).status_code == 404


def test_healthz_needs_no_token(client, fake):
    assert client.get("/healthz").json() == {"ok": True}
    assert fake.operations == []


def test_cors_preflight_for_the_dashboard(client, fake):
    response = client.options(
        "/sync",
        headers={
            "Origin": DASHBOARD_ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == DASHBOARD_ORIGIN
    assert "authorization" in response.headers["access-control-allow-headers"].lower()
    assert fake.operations == []


def test_cors_preflight_from_another_site_is_refused(client):
    response = client.options(
        "/sync",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert response.status_code == 400
    assert "access-control-allow-origin" not in response.headers


def test_errors_carry_cors_headers_so_the_dashboard_can_read_them(client):
    response = client.post("/sync", json=VALID_BODY, headers={"Origin": DASHBOARD_ORIGIN})
    assert response.status_code == 401
    assert response.headers["access-control-allow-origin"] == DASHBOARD_ORIGIN
    other = client.post("/sync", json=VALID_BODY, headers={"Origin": "https://evil.example", **AUTH})
    assert "access-control-allow-origin" not in other.headers
