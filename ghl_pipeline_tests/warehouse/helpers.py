"""Builders of ``all_calls`` frames for warehouse tests."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pandas as pd

from ghl_pipeline.calls.mapping import ALL_CALLS_COLUMNS

T0 = datetime(2025, 3, 1, 15, 0, tzinfo=UTC)


def call_row(ghl_id: str, *, updated: datetime | None = T0, status: str = "completed", **overrides) -> dict:
    """One valid all_calls row; ``overrides`` replace any column."""
    row = {
        "ghl_id": ghl_id,
        "project_name": "Acme",
        "ghl_location_id": "loc1",
        "ghl_conversation_id": f"conv-{ghl_id}",
        "ghl_contact_id": f"contact-{ghl_id}",
        "ghl_user_id": None,
        "lead_name": "Ada Lovelace",
        "phone_number": "+15125550143",
        "direction": "inbound",
        "call_status": status,
        "duration_seconds": 42,
        "agent_name": None,
        "message_type": "TYPE_CALL",
        "call_started_at": T0,
        "call_date": date(2025, 3, 1),
        "ghl_updated_at": updated,
        "synced_at": T0 + timedelta(hours=1),
    }
    row.update(overrides)
    return row


def calls_frame(rows: list[dict]) -> pd.DataFrame:
    """A frame with the mapping's dtypes."""
    frame = pd.DataFrame(rows, columns=list(ALL_CALLS_COLUMNS))
    frame["duration_seconds"] = frame["duration_seconds"].astype("Int64")
    for col in ("call_started_at", "ghl_updated_at", "synced_at"):
        frame[col] = pd.to_datetime(frame[col], utc=True)
    return frame
