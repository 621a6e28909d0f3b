"""Each validation rule: the bad row goes to rejects with its rule and raw record, the rest pass."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pandas as pd
import pytest

from ghl_pipeline.calls.mapping import ALL_CALLS_COLUMNS
from ghl_pipeline.calls.validation import REJECT_COLUMNS, validate_calls

START = datetime(2025, 3, 1, 6, 0, tzinfo=UTC)
END = START + timedelta(days=1)


def row(key="m1", **overrides):
    values = {
        "ghl_id": key,
        "project_name": "Acme",
        "ghl_location_id": "loc1",
        "ghl_conversation_id": "conv1",
        "ghl_contact_id": "c1",
        "ghl_user_id": None,
        "lead_name": "Ada",
        "phone_number": "+15125550143",
        "direction": "inbound",
        "from_number": "+15125550143",
        "to_number": None,
        "call_status": "completed",
        "duration_seconds": 42,
        "agent_name": None,
        "message_type": "TYPE_CALL",
        "call_started_at": START + timedelta(hours=1),
        "call_date": date(2025, 3, 1),
        "ghl_updated_at": START + timedelta(hours=2),
        "synced_at": END,
        "_raw": {"id": key, "marker": "raw"},
        "_problems": (),
    }
    values.update(overrides)
    return values


def frame(rows):
    data = pd.DataFrame(rows)
    data["duration_seconds"] = data["duration_seconds"].astype("Int64")
    for col in ("call_started_at", "ghl_updated_at", "synced_at"):
        data[col] = pd.to_datetime(data[col], utc=True)
    return data


def validate(rows):
    return validate_calls(frame(rows), window_start=START, window_end=END)


def test_valid_rows_pass_with_contract_columns_only():
    result = validate([row("m1"), row("m2", duration_seconds=None, call_status=None)])
    assert result.valid["ghl_id"].tolist() == ["m1", "m2"]
    assert tuple(result.valid.columns) == ALL_CALLS_COLUMNS
    assert result.rejects.empty and tuple(result.rejects.columns) == REJECT_COLUMNS


@pytest.mark.parametrize(
    ("overrides", "rule"),
    [
        pytest.param({"ghl_id": None}, "ghl_id:not_nullable", id="no-id"),
        pytest.param({"ghl_id": ""}, "ghl_id:length", id="empty-id"),
        pytest.param({"ghl_id": "x" * 200}, "ghl_id:length", id="long-id"),
        pytest.param({"project_name": None}, "project_name:not_nullable", id="no-project"),
        pytest.param({"ghl_location_id": None}, "ghl_location_id:not_nullable", id="no-location"),
        pytest.param({"direction": "sideways"}, "direction:in_set", id="bad-direction"),
        pytest.param({"direction": None}, "direction:not_nullable", id="no-direction"),
        pytest.param({"call_status": "ringing"}, "call_status:in_set", id="unknown-status"),
        pytest.param({"duration_seconds": -1}, "duration_seconds:in_range", id="negative-duration"),
        pytest.param({"duration_seconds": 86_401}, "duration_seconds:in_range", id="over-a-day"),
        pytest.param({"message_type": "TYPE_SMS"}, "message_type:in_set", id="not-a-call"),
        pytest.param({"message_type": None}, "message_type:not_nullable", id="no-type"),
        pytest.param(
            {"call_started_at": START - timedelta(seconds=1)}, "call_started_at:in_window", id="before"
        ),
        pytest.param({"call_started_at": END}, "call_started_at:in_window", id="at-end-exclusive"),
        pytest.param({"call_started_at": None}, "call_started_at:not_nullable", id="no-start"),
        pytest.param({"call_date": None}, "call_date:not_nullable", id="no-date"),
        pytest.param({"phone_number": "1" * 80}, "phone_number:length", id="long-phone"),
        pytest.param({"lead_name": "x" * 600}, "lead_name:length", id="long-name"),
        pytest.param({"_problems": ("duration: not an integer",)}, "parse_problems", id="parse-problem"),
    ],
)
def test_each_rule_rejects_only_the_bad_row(overrides, rule):
    result = validate([row("good"), row("bad", **overrides)])

    assert result.valid["ghl_id"].tolist() == ["good"]
    assert len(result.rejects) == 1
    reject = result.rejects.iloc[0]
    assert rule in reject["rule"].split(";")
    assert reject["raw"] == {"id": "bad", "marker": "raw"}
    assert reject["project_name"] == ("Acme" if "project_name" not in overrides else None)


@pytest.mark.parametrize(
    "boundary",
    [
        {"duration_seconds": 0},
        {"duration_seconds": 86_400},
        {"call_started_at": START},
        {"call_started_at": END - timedelta(microseconds=1)},
        {"direction": "outbound", "message_type": "TYPE_CUSTOM_CALL"},
        {"message_type": "TYPE_IVR_CALL", "ghl_user_id": None, "agent_name": None},
    ],
)
def test_boundaries_pass(boundary):
    result = validate([row("m1", **boundary)])
    assert len(result.valid) == 1 and result.rejects.empty


def test_a_row_breaking_several_rules_is_one_reject_listing_them_all():
    result = validate([row("m1", direction="up", duration_seconds=-5)])
    assert result.rejects.iloc[0]["rule"] == "direction:in_set;duration_seconds:in_range"
    assert "direction='up'" in result.rejects.iloc[0]["detail"]


def test_duplicate_ids_collapse_to_the_newest_version():
    t = START + timedelta(hours=2)
    result = validate(
        [
            row("m1", ghl_updated_at=t + timedelta(minutes=5), call_status="voicemail"),
            row("m2"),
            row("m1", ghl_updated_at=t, call_status="completed"),
            row("m1", ghl_updated_at=None, call_status="failed"),
        ]
    )
    assert result.valid["ghl_id"].tolist() == ["m1", "m2"]
    assert result.valid.set_index("ghl_id").loc["m1", "call_status"] == "voicemail"
    assert result.rejects.empty


def test_duplicate_ids_with_the_same_stamp_keep_the_later_one():
    result = validate([row("m1", call_status="busy"), row("m1", call_status="completed")])
    assert result.valid["call_status"].tolist() == ["completed"]


def test_rows_without_id_are_not_collapsed_together():
    result = validate([row(None), row(None), row("m1")])
    assert len(result.rejects) == 2 and result.valid["ghl_id"].tolist() == ["m1"]


def test_naive_window_is_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        validate_calls(frame([row()]), window_start=datetime(2025, 3, 1), window_end=datetime(2025, 3, 2))


def test_empty_frame():
    result = validate_calls(frame([row()]).iloc[0:0], window_start=START, window_end=END)
    assert result.valid.empty and result.rejects.empty
