"""The toast text and failed-project list the gateway composes from a run's status and ``ghl/summary``."""

from __future__ import annotations

import json

import pytest

from ghl_pipeline.gateway.outcome import GENERIC_FAILURE, failed_projects, person_reason, toast_message
from ghl_pipeline_tests.gateway.conftest import bearer, make_token

AUTH = bearer(make_token())


def _summary(new: int, projects: dict, failed: dict | None = None) -> dict:
    summary = {"new_records": new, "updated_records": 0, "rejected_records": 0, "projects": projects}
    if failed is not None:
        summary["failed_projects"] = failed
    return summary


def _counts(new: int) -> dict:
    return {"new_records": new, "updated_records": 0, "rejected_records": 0}


def _message(status: str, summary: dict, error: str | None = None) -> str | None:
    return toast_message(
        status,
        new_records=summary.get("new_records"),
        synced_projects=len(summary.get("projects", {})),
        failed=failed_projects(summary),
        error=error,
    )


@pytest.mark.parametrize(
    ("status", "summary", "expected"),
    [
        ("SUCCESS", _summary(24, {"Acme": _counts(24)}, {}), "Synced 24 new call records"),
        ("SUCCESS", _summary(1, {"Acme": _counts(1)}), "Synced 1 new call record"),
        ("SUCCESS", _summary(0, {"Acme": _counts(0)}, {}), "No new call records"),
        (
            "FAILURE",
            _summary(
                240,
                {"Globex": _counts(200), "Initech": _counts(40)},
                {"Acme Roofing": {"kind": "auth", "reason": "GHL token revoked"}},
            ),
            "Synced 240 new call records; 1 project failed: Acme Roofing — GHL token revoked",
        ),
        (
            "FAILURE",
            _summary(
                7,
                {"Initech": _counts(7)},
                {
                    "B Corp": {"kind": "ghl_unavailable", "reason": "GHL did not answer"},
                    "A Corp": {"kind": "database", "reason": "the database was unreachable"},
                },
            ),
            "Synced 7 new call records; 2 projects failed: A Corp — the database was unreachable; "
            "B Corp — GHL did not answer",
        ),
        (
            "FAILURE",
            _summary(0, {}, {"Acme Roofing": {"kind": "auth", "reason": "GHL token revoked"}}),
            "Sync failed for Acme Roofing — GHL token revoked",
        ),
        (
            "FAILURE",
            _summary(
                0,
                {},
                {
                    "A": {"kind": "auth", "reason": "GHL token revoked"},
                    "B": {"kind": "error", "reason": "x y"},
                },
            ),
            "Sync failed for 2 projects: A — GHL token revoked; B — x y",
        ),
        ("CANCELED", _summary(0, {}), "Sync was canceled before it finished"),
        (
            "CANCELED",
            _summary(5, {"Acme": _counts(5)}, {}),
            "Synced 5 new call records; the sync was canceled",
        ),
        (
            "FAILURE",
            _summary(5, {"Acme": _counts(5)}),
            f"Synced 5 new call records; the sync then failed: {GENERIC_FAILURE}",
        ),
        ("STARTED", _summary(0, {}), None),
    ],
    ids=[
        "success",
        "one",
        "zero",
        "partial",
        "partial-two",
        "one-failed",
        "all-failed",
        "canceled",
        "canceled-after-some",
        "stopped-after-some",
        "running",
    ],
)
def test_toast_text(status, summary, expected):
    assert _message(status, summary) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            "Invalid sync_ghl_calls config: project_name: 'Nope' is not an active project",
            "Project: 'Nope' is not an active project",
        ),
        (
            "Invalid sync_ghl_calls config: date_to: must not be before date_from",
            "End date: must not be before date_from",
        ),
        (
            "GHL refused access for project 'Acme': token revoked\nTraceback ...",
            "GHL refused access for project 'Acme': token revoked",
        ),
        ("Execution of run for \"sync_ghl_calls\" failed. Steps failed: ['sync_calls'].", GENERIC_FAILURE),
        ('Traceback (most recent call last):\n  File "x.py"', GENERIC_FAILURE),
        ("", GENERIC_FAILURE),
        (None, GENERIC_FAILURE),
        ("x" * 500, "x" * 199 + "…"),
    ],
)
def test_reasons_for_a_person_never_name_the_job_or_show_a_traceback(raw, expected):
    assert person_reason(raw) == expected


def test_malformed_failed_projects_still_name_the_project(client, fake):
    summary = {
        "new_records": 3,
        "projects": {"Globex": _counts(3)},
        "failed_projects": {"Acme": "not an object", "Initech": {"kind": "martian", "reason": 7}},
    }
    run_id = fake.add_run(status="FAILURE", tags={"ghl/new_records": "3", "ghl/summary": json.dumps(summary)})
    answer = client.get(f"/sync/{run_id}", headers=AUTH).json()
    assert answer["failedProjects"] == [
        {"name": "Acme", "kind": "error", "reason": GENERIC_FAILURE},
        {"name": "Initech", "kind": "error", "reason": GENERIC_FAILURE},
    ]
    assert answer["outcome"] == "partial"
    assert answer["message"].startswith("Synced 3 new call records; 2 projects failed: Acme — ")


def test_partial_run_over_http(client, fake):
    summary = _summary(
        240, {"Globex": _counts(240)}, {"Acme Roofing": {"kind": "auth", "reason": "GHL token revoked"}}
    )
    events = [{"__typename": "RunFailureEvent", "message": 'Execution of run for "sync_ghl_calls" failed.'}]
    run_id = fake.add_run(
        status="FAILURE", tags={"ghl/new_records": "240", "ghl/summary": json.dumps(summary)}, events=events
    )
    answer = client.get(f"/sync/{run_id}", headers=AUTH).json()
    assert answer["status"] == "FAILURE" and answer["done"] is True and answer["outcome"] == "partial"
    assert answer["failedProjects"] == [
        {"name": "Acme Roofing", "kind": "auth", "reason": "GHL token revoked"}
    ]
    assert (
        answer["message"] == "Synced 240 new call records; 1 project failed: Acme Roofing — GHL token revoked"
    )
    assert "sync_ghl_calls" not in json.dumps(answer)


def test_failure_without_summary_is_worded_for_a_person(client, fake):
    error = {
        "message": "dagster._core.errors.DagsterExecutionStepExecutionError: Error occurred while executing op",
        "className": "DagsterExecutionStepExecutionError",
        "cause": None,
    }
    events = [
        {"__typename": "ExecutionStepFailureEvent", "message": "Execution of step failed.", "error": error}
    ]
    run_id = fake.add_run(status="FAILURE", events=events)
    answer = client.get(f"/sync/{run_id}", headers=AUTH).json()
    assert answer["message"] == f"Sync failed: {GENERIC_FAILURE}"
    assert "sync_ghl_calls" not in json.dumps(answer) and "dagster." not in json.dumps(answer)


def test_every_kind_the_run_side_writes_is_kept():
    summary = _summary(
        0,
        {},
        {
            name: {"kind": kind, "reason": "r"}
            for name, kind in [
                ("A", "auth"),
                ("B", "ghl_unavailable"),
                ("C", "bad_data"),
                ("D", "database"),
                ("E", "refused"),
                ("F", "error"),
            ]
        },
    )
    kinds = [f.kind for f in failed_projects(summary)]
    assert kinds == ["auth", "ghl_unavailable", "bad_data", "database", "refused", "error"]
