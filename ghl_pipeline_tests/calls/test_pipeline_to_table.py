"""Mapping -> validation -> upsert/rejects on a real Postgres: bad rows are kept aside, good rows land."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from ghl_pipeline.calls.mapping import calls_to_frame
from ghl_pipeline.calls.validation import validate_calls
from ghl_pipeline.ghl.models import CallRecord, Contact, User
from ghl_pipeline.warehouse.upsert import UpsertCounts, insert_rejects, upsert_calls

START = datetime(2025, 3, 9, 6, 0, tzinfo=UTC)


def call(i: int, **overrides) -> CallRecord:
    fields = {
        "id": f"msg{i}",
        "location_id": "loc1",
        "conversation_id": f"conv{i}",
        "contact_id": "c1",
        "user_id": "u1" if i % 2 else None,
        "direction": "outbound" if i % 2 else "inbound",
        "call_status": "completed",
        "duration_seconds": 10 * i,
        "message_type": "TYPE_CALL",
        "date_added": START + timedelta(hours=i),
        "date_updated": START + timedelta(hours=i, minutes=2),
        "raw": {"id": f"msg{i}", "direction": overrides.get("direction", "x")},
    }
    fields.update(overrides)
    return CallRecord(**fields)


def test_a_page_with_bad_rows_lands_its_good_rows_and_keeps_the_bad_ones(engine):
    calls = [call(1), call(2), call(3, direction="sideways"), call(4, duration_seconds=-1), call(5)]
    frame = calls_to_frame(
        calls,
        project_name="Acme",
        location_id="loc1",
        timezone="America/Chicago",
        region="US",
        users={"u1": User("u1", "Sam")},
        contacts={"c1": Contact("c1", "Ada", "512 555 0143", "US", None)},
        synced_at=START + timedelta(days=1),
    )
    result = validate_calls(frame, window_start=START, window_end=START + timedelta(days=1))

    for _ in range(2):  # a re-sync changes nothing and records no reject twice
        counts = upsert_calls(engine, result.valid)
        insert_rejects(engine, result.rejects)

    assert counts == UpsertCounts(new=0, updated=0, unchanged=3)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT ghl_id, call_date::text, agent_name, phone_number FROM all_calls ORDER BY ghl_id")
        ).all()
        rejects = conn.execute(
            sa.text("SELECT ghl_id, rule, raw FROM all_calls_rejects ORDER BY ghl_id")
        ).all()
    # 2025-03-09 is the US spring-forward day: 07:00Z is 01:00 CST, 11:00Z is 06:00 CDT, both Mar 9.
    assert rows == [
        ("msg1", "2025-03-09", "Sam", "+15125550143"),
        ("msg2", "2025-03-09", None, "+15125550143"),
        ("msg5", "2025-03-09", "Sam", "+15125550143"),
    ]
    assert [(r[0], r[1]) for r in rejects] == [
        ("msg3", "direction:in_set"),
        ("msg4", "duration_seconds:in_range"),
    ]
    assert rejects[0][2] == {"id": "msg3", "direction": "sideways"}
