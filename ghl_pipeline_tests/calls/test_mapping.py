"""GHL call models -> all_calls rows."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pandas as pd
import pytest

from ghl_pipeline.calls.mapping import ALL_CALLS_COLUMNS, EXTRA_COLUMNS, calls_to_frame, normalise_phone
from ghl_pipeline.ghl.models import CallRecord, Contact, User

SYNCED = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def record(**overrides) -> CallRecord:
    fields = {
        "id": "msg1",
        "location_id": "loc1",
        "conversation_id": "conv1",
        "contact_id": "c1",
        "user_id": "u1",
        "direction": "outbound",
        "call_status": "completed",
        "duration_seconds": 214,
        "message_type": "TYPE_CALL",
        "date_added": datetime(2025, 3, 27, 18, 13, 49, tzinfo=UTC),
        "date_updated": datetime(2025, 3, 27, 18, 20, tzinfo=UTC),
        "raw": {"id": "msg1"},
    }
    fields.update(overrides)
    return CallRecord(**fields)


def to_frame(calls, *, timezone="America/Chicago", region="US", users=None, contacts=None):
    return calls_to_frame(
        calls,
        project_name="Acme",
        location_id="loc1",
        timezone=timezone,
        region=region,
        users={"u1": User("u1", "Sam Agent")} if users is None else users,
        contacts={"c1": Contact("c1", "Ada Lovelace", "(512) 555-0143", "US", None)}
        if contacts is None
        else contacts,
        synced_at=SYNCED,
    )


def test_columns_are_the_contract_plus_raw_and_problems():
    frame = to_frame([record()])
    assert tuple(frame.columns) == ALL_CALLS_COLUMNS + EXTRA_COLUMNS
    row = frame.iloc[0]
    assert row["ghl_id"] == "msg1" and row["project_name"] == "Acme" and row["ghl_location_id"] == "loc1"
    assert row["lead_name"] == "Ada Lovelace" and row["agent_name"] == "Sam Agent"
    assert row["phone_number"] == "+15125550143"
    assert row["duration_seconds"] == 214 and str(frame["duration_seconds"].dtype) == "Int64"
    assert row["call_started_at"] == pd.Timestamp("2025-03-27T18:13:49Z")
    assert row["synced_at"] == pd.Timestamp(SYNCED)
    assert row["_raw"] == {"id": "msg1"} and row["_problems"] == ()


@pytest.mark.parametrize(
    ("started_utc", "timezone", "expected_date"),
    [
        pytest.param(
            "2025-03-27T04:59:59Z", "America/Chicago", date(2025, 3, 26), id="chicago-before-midnight"
        ),
        pytest.param("2025-03-27T05:00:00Z", "America/Chicago", date(2025, 3, 27), id="chicago-midnight-cdt"),
        pytest.param(
            "2025-01-15T05:59:59Z", "America/Chicago", date(2025, 1, 14), id="chicago-before-midnight-cst"
        ),
        pytest.param("2025-01-15T06:00:00Z", "America/Chicago", date(2025, 1, 15), id="chicago-midnight-cst"),
        # Spring forward (US 2025-03-09 02:00 local): 07:59Z is 01:59 CST, 08:00Z is 03:00 CDT, same day.
        pytest.param("2025-03-09T07:59:00Z", "America/Chicago", date(2025, 3, 9), id="dst-spring-forward"),
        pytest.param("2025-03-09T05:30:00Z", "America/Chicago", date(2025, 3, 8), id="dst-day-early-utc"),
        # Fall back (2025-11-02): 23:30 CST on Nov 2 is 05:30Z Nov 3.
        pytest.param(
            "2025-11-03T05:30:00Z", "America/Chicago", date(2025, 11, 2), id="dst-fall-back-evening"
        ),
        pytest.param(
            "2025-11-02T06:30:00Z", "America/Chicago", date(2025, 11, 2), id="dst-fall-back-repeated-hour"
        ),
        pytest.param("2025-03-30T22:30:00Z", "Europe/Berlin", date(2025, 3, 31), id="berlin-after-dst"),
        pytest.param("2025-06-30T14:00:00Z", "Asia/Kolkata", date(2025, 6, 30), id="half-hour-offset"),
        pytest.param(
            "2025-06-30T18:30:00Z", "Asia/Kolkata", date(2025, 7, 1), id="half-hour-offset-midnight"
        ),
        pytest.param("2025-06-30T10:00:00Z", "Pacific/Auckland", date(2025, 6, 30), id="ahead-of-utc"),
        pytest.param(
            "2025-06-30T12:00:00Z", "Pacific/Auckland", date(2025, 7, 1), id="ahead-of-utc-midnight"
        ),
        pytest.param("2025-06-30T23:59:59Z", "UTC", date(2025, 6, 30), id="utc"),
    ],
)
def test_call_date_is_the_start_in_the_projects_zone(started_utc, timezone, expected_date):
    frame = to_frame([record(date_added=datetime.fromisoformat(started_utc))], timezone=timezone)
    assert frame.loc[0, "call_date"] == expected_date
    assert frame.loc[0, "call_started_at"] == pd.Timestamp(started_utc)


def test_many_rows_over_several_days_get_their_own_dates():
    starts = ["2025-11-01T12:00:00Z", "2025-11-02T04:00:00Z", "2025-11-02T07:00:00Z", "2025-11-03T06:00:00Z"]
    frame = to_frame([record(id=f"m{i}", date_added=datetime.fromisoformat(s)) for i, s in enumerate(starts)])
    assert frame["call_date"].tolist() == [
        date(2025, 11, 1),
        date(2025, 11, 1),
        date(2025, 11, 2),
        date(2025, 11, 3),
    ]


def test_unknown_time_zone_fails_loudly():
    with pytest.raises(Exception, match="Mars"):
        to_frame([record()], timezone="Mars/Olympus")


@pytest.mark.parametrize(
    ("contacts", "expected_name"),
    [
        pytest.param({"c1": Contact("c1", "Ada", None, None, None)}, "Ada", id="named"),
        pytest.param({"c1": Contact("c1", None, None, None, None)}, None, id="no-name"),
        pytest.param({"c1": Contact("c1", "   ", None, None, None)}, None, id="blank-name"),
        pytest.param({}, None, id="contact-unknown"),
    ],
)
def test_lead_name_from_the_contact(contacts, expected_name):
    assert to_frame([record()], contacts=contacts).loc[0, "lead_name"] == expected_name


@pytest.mark.parametrize(
    ("user_id", "users", "expected"),
    [
        pytest.param("u1", {"u1": User("u1", "Sam")}, "Sam", id="user"),
        pytest.param(None, {"u1": User("u1", "Sam")}, None, id="inbound-no-user"),
        pytest.param("u9", {"u1": User("u1", "Sam")}, None, id="deleted-user"),
        pytest.param("u1", {"u1": User("u1", None)}, None, id="user-without-name"),
    ],
)
def test_agent_name_from_the_user(user_id, users, expected):
    frame = to_frame([record(user_id=user_id)], users=users)
    assert frame.loc[0, "agent_name"] == expected


@pytest.mark.parametrize(
    ("phone", "region", "contact_country", "expected"),
    [
        pytest.param("+15125550143", "US", None, "+15125550143", id="e164"),
        pytest.param("(512) 555-0143", "US", None, "+15125550143", id="us-national"),
        pytest.param("512.555.0143", "US", None, "+15125550143", id="dots"),
        pytest.param("030 123456", "DE", None, "+4930123456", id="germany-national"),
        pytest.param("07700 900123", "GB", None, "+447700900123", id="uk-mobile"),
        pytest.param("+44 7700 900123", "US", None, "+447700900123", id="international-ignores-region"),
        pytest.param(
            "07700 900123", None, "GB", "+447700900123", id="contact-country-when-location-has-none"
        ),
        pytest.param("555-0143", None, None, "555-0143", id="no-region-kept"),
        pytest.param("not a phone", "US", None, "not a phone", id="junk-kept"),
        pytest.param("12", "US", None, "12", id="too-short-kept"),
        pytest.param("", "US", None, None, id="empty"),
        pytest.param(None, "US", None, None, id="none"),
    ],
)
def test_phone_numbers_in_e164_when_they_parse(phone, region, contact_country, expected):
    contacts = {"c1": Contact("c1", "Ada", phone, contact_country, None)}
    assert to_frame([record()], region=region, contacts=contacts).loc[0, "phone_number"] == expected


def test_phone_parsing_is_cached_per_distinct_input():
    normalise_phone.cache_clear()
    contacts = {f"c{i}": Contact(f"c{i}", "Ada", "(512) 555-0143", "US", None) for i in range(50)}
    to_frame([record(id=f"m{i}", contact_id=f"c{i}") for i in range(50)], contacts=contacts)
    assert normalise_phone.cache_info().misses == 1


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("completed", "completed"),
        ("Completed", "completed"),
        (" voicemail ", "voicemail"),
        ("no-answer", "no-answer"),
        ("no_answer", "no-answer"),
        ("NO ANSWER", "no-answer"),
        ("noanswer", "no-answer"),
        ("cancelled", "canceled"),
        ("busy", "busy"),
        ("ringing", "ringing"),  # unknown: kept, validation rejects it
        (None, None),
        ("", None),
    ],
)
def test_call_status_quirks(given, expected):
    assert to_frame([record(call_status=given)]).loc[0, "call_status"] == expected


@pytest.mark.parametrize(
    ("given", "expected"), [("Inbound", "inbound"), ("OUTBOUND ", "outbound"), (None, None)]
)
def test_direction_is_lower_case(given, expected):
    assert to_frame([record(direction=given)]).loc[0, "direction"] == expected


@pytest.mark.parametrize("duration", [0, 1, 3309, None])
def test_duration_is_an_integer_or_null(duration):
    value = to_frame([record(duration_seconds=duration)]).loc[0, "duration_seconds"]
    assert (value is pd.NA) if duration is None else value == duration


def test_missing_timestamps_stay_missing_and_problems_are_carried():
    frame = to_frame([record(date_added=None, date_updated=None, problems=("dateAdded: not a timestamp",))])
    assert pd.isna(frame.loc[0, "call_started_at"]) and frame.loc[0, "call_date"] is None
    assert pd.isna(frame.loc[0, "ghl_updated_at"])
    assert frame.loc[0, "_problems"] == ("dateAdded: not a timestamp",)


def test_a_call_of_another_location_is_flagged():
    frame = to_frame([record(location_id="other")])
    assert frame.loc[0, "ghl_location_id"] == "other"
    assert any("location" in p for p in frame.loc[0, "_problems"])


def test_no_calls_give_an_empty_frame_with_the_columns():
    frame = to_frame([])
    assert frame.empty and tuple(frame.columns) == ALL_CALLS_COLUMNS + EXTRA_COLUMNS


@pytest.mark.parametrize(
    ("sent", "region", "contact_country", "expected"),
    [
        pytest.param(
            ("+15125550100", "(512) 555-0143"), "US", None, ("+15125550100", "+15125550143"), id="e164"
        ),
        pytest.param(("07700 900123", None), None, "GB", ("+447700900123", None), id="contact-country"),
        pytest.param(("anonymous", "12"), "US", None, ("anonymous", "12"), id="as-given"),
        pytest.param((None, None), "US", None, (None, None), id="not-sent"),
    ],
)
def test_from_and_to_numbers_in_e164_when_they_parse(sent, region, contact_country, expected):
    contacts = {"c1": Contact("c1", "Ada", None, contact_country, None)}
    frame = to_frame([record(from_number=sent[0], to_number=sent[1])], region=region, contacts=contacts)
    assert (frame.loc[0, "from_number"], frame.loc[0, "to_number"]) == expected
