"""GHL JSON parsed once into typed models, tolerant of the known quirks."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ghl_pipeline.ghl.parsing import (
    canonical_message_type,
    classify_message,
    is_call_message,
    messages_of_page,
    parse_call_record,
    parse_contact,
    parse_location,
    parse_user,
)

BASE = {
    "id": "Ms2bC3dE4fG5hI6jK7lM",
    "direction": "inbound",
    "status": "voicemail",
    "type": 1,
    "locationId": "Lz8xQk2mN4pR7sT1vW3y",
    "contactId": "Ct7mN6bV5cX4zL3kJ2hG",
    "conversationId": "Cv1aB2cD3eF4gH5iJ6kL",
    "dateAdded": "2024-07-01T18:30:12.340Z",
    "dateUpdated": "2024-07-01T18:31:02.118Z",
    "meta": {"call": {"duration": 38, "status": "voicemail"}},
    "messageType": "TYPE_CALL",
}


def test_a_live_call_message_parses_fully():
    call = parse_call_record(BASE)
    assert call.problems == ()
    assert (call.id, call.direction, call.call_status, call.duration_seconds, call.message_type) == (
        "Ms2bC3dE4fG5hI6jK7lM",
        "inbound",
        "voicemail",
        38,
        "TYPE_CALL",
    )
    assert call.user_id is None  # inbound calls have no userId: normal, not a problem
    assert call.date_added == datetime(2024, 7, 1, 18, 30, 12, 340000, tzinfo=UTC)
    assert call.raw is BASE


@pytest.mark.parametrize(
    ("change", "field", "value"),
    [
        ({"meta": {"call": {"status": "no-answer"}}}, "duration_seconds", None),  # absent duration
        (
            {"meta": {"call": {"duration": 5}}, "status": "completed"},
            "call_status",
            "completed",
        ),  # top-level status
        (
            {"meta": {"call": {"duration": 5, "status": "voicemail"}}, "status": "completed"},
            "call_status",
            "voicemail",
        ),
        (
            {"meta": {"callDuration": 12, "callStatus": "busy"}},
            "duration_seconds",
            12,
        ),  # the spec's flat form
        ({"meta": {"call": {"duration": "41"}}}, "duration_seconds", 41),
        ({"meta": {"call": {"duration": 41.0}}}, "duration_seconds", 41),
        ({"messageType": None, "type": 24}, "message_type", "TYPE_IVR_CALL"),
        ({"userId": "Us9pQ8rS7tU6vW5xY4zA", "direction": "OUTBOUND"}, "direction", "outbound"),
        ({"dateUpdated": None}, "date_updated", None),
    ],
)
def test_known_quirks_are_normal(change, field, value):
    call = parse_call_record({**BASE, **change})
    assert getattr(call, field) == value
    assert call.problems == ()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"meta": {"call": {"duration": "3m12s"}}}, "duration_seconds"),
        ({"meta": {"call": {"duration": -4}}}, "duration_seconds"),
        ({"meta": {"call": {"duration": True}}}, "duration_seconds"),
        ({"meta": "n/a"}, "duration_seconds"),
        ({"dateUpdated": "yesterday"}, "date_updated"),
        ({"dateAdded": None}, "date_added"),
        ({"direction": 7}, "direction"),
        ({"direction": "sideways"}, "direction"),
        ({"contactId": {"id": "x"}}, "contact_id"),
        ({"id": ""}, "id"),
    ],
)
def test_malformed_fields_become_none_with_a_problem(change, field):
    call = parse_call_record({**BASE, **change})
    assert getattr(call, field) is None
    assert len(call.problems) == 1
    assert call.raw["messageType"] == "TYPE_CALL"


def test_a_record_that_is_not_an_object_is_kept_as_a_problem():
    call = parse_call_record(["nope"])
    assert call.id is None and call.problems and call.raw == {"value": ["nope"]}


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ({"messageType": "TYPE_CALL"}, True),
        ({"messageType": "TYPE_CUSTOM_CALL", "type": 2}, True),  # the string decides
        ({"messageType": "TYPE_SMS", "type": 1}, False),
        ({"type": 34}, True),
        ({"type": 2}, False),
        ({"type": True}, False),
        ("TYPE_CALL", False),
    ],
)
def test_call_like_messages(message, expected):
    assert is_call_message(message) is expected


def test_messages_pages_are_read_nested_or_flat():
    nested = {"messages": {"lastMessageId": "m2", "nextPage": True, "messages": [{"id": "m1"}, {"id": "m2"}]}}
    flat = {"lastMessageId": "m2", "nextPage": False, "messages": [{"id": "m1"}]}
    assert messages_of_page(nested) == ([{"id": "m1"}, {"id": "m2"}], "m2", True)
    assert messages_of_page(flat) == ([{"id": "m1"}], "m2", False)
    assert messages_of_page({"messages": None}) == ([], None, False)
    assert messages_of_page("junk") == ([], None, False)


def test_contacts_users_and_locations_fall_back_sensibly():
    contact = parse_contact(
        {"id": "c1", "name": None, "firstName": "Maria", "lastName": None, "phone": " ", "country": "US"}
    )
    assert (contact.name, contact.phone, contact.country) == ("Maria", None, "US")
    assert parse_contact({"id": "c2", "dateUpdated": "junk"}).date_updated is None
    assert parse_contact({"name": "no id"}) is None
    assert parse_user({"id": "u1", "firstName": "Sam", "lastName": "Carter"}).name == "Sam Carter"
    assert parse_user({"id": 5}) is None
    location = parse_location({"location": {"id": "L1", "timezone": "Europe/London"}}, location_id="L1")
    assert (location.timezone, location.country) == ("Europe/London", None)
    assert parse_location({}, location_id="L1").id == "L1"


@pytest.mark.parametrize(
    ("spelling", "canonical"),
    [
        ("TYPE_CALL", "TYPE_CALL"),
        ("CALL", "TYPE_CALL"),  # webhooks
        ("Call", "TYPE_CALL"),  # the export's channel name
        (" type-ivr call ", "TYPE_IVR_CALL"),
        ("custom_call", "TYPE_CUSTOM_CALL"),
        ("SMS", "TYPE_SMS"),
        ("TYPE_CAMPAIGN_VOICEMAIL", "TYPE_CAMPAIGN_VOICEMAIL"),
        ("TYPE_TIKTOK", "TYPE_TIKTOK"),  # in the spec's enum without a number
        ("PHONE_CALL", None),
        ("VoiceMail", None),  # a webhook word with no REST type we could map it to
        ("", None),
        (1, None),
    ],
)
def test_documented_spellings_fold_to_ghl_names_and_nothing_else_is_guessed(spelling, canonical):
    assert canonical_message_type(spelling) == canonical


@pytest.mark.parametrize(
    ("message", "call_type", "reason"),
    [
        ({"messageType": "TYPE_CALL", "type": 1}, "TYPE_CALL", None),
        ({"messageType": "CALL"}, "TYPE_CALL", None),
        ({"type": 24}, "TYPE_IVR_CALL", None),
        ({"type": 34.0}, "TYPE_CUSTOM_CALL", None),
        # 2 is SMS only in a third-party table: an unconfirmed number never overrules the string.
        ({"messageType": "TYPE_CUSTOM_CALL", "type": 2}, "TYPE_CUSTOM_CALL", None),
        # The spec's own example: a confirmed call number with a non-call string is neither.
        ({"messageType": "SMS", "type": 1}, None, "messageType 'SMS' contradicts type 1 (TYPE_CALL)"),
        (
            {"messageType": "TYPE_CALL", "type": 3},
            None,
            "messageType 'TYPE_CALL' says a call but type 3 (TYPE_EMAIL) says otherwise",
        ),
        (
            {"messageType": "TYPE_CAMPAIGN_CALL", "type": 8},
            None,
            "messageType 'TYPE_CAMPAIGN_CALL' (type 8 (TYPE_CAMPAIGN_CALL)) is a campaign call or voicemail "
            "drop, not kept in all_calls",
        ),
        (
            {"type": 10},
            None,
            "no messageType and type 10 (TYPE_CAMPAIGN_VOICEMAIL) is a campaign call or voicemail drop",
        ),
        ({"type": 2}, None, "no messageType and type 2 (TYPE_SMS) is not a call"),
        (
            {"messageType": "PHONE_CALL", "type": 1},
            None,
            "messageType 'PHONE_CALL' is not a message type GHL documents (type 1 (TYPE_CALL))",
        ),
        ({"type": True}, None, "neither messageType nor type says what this message is"),
        ({}, None, "neither messageType nor type says what this message is"),
    ],
)
def test_calls_are_recognised_by_type_and_message_type_together(message, call_type, reason):
    assert classify_message(message) == (call_type, reason)


def test_from_and_to_are_read_from_the_top_level_or_meta_call():
    top = parse_call_record({**BASE, "from": "+15125550100", "to": 15125550143})
    nested = parse_call_record({**BASE, "meta": {"call": {"duration": 3, "from": "(512) 555-0100"}}})
    bad = parse_call_record({**BASE, "to": {"number": "x"}})
    assert (top.from_number, top.to_number) == ("+15125550100", "15125550143")
    assert (nested.from_number, nested.to_number) == ("(512) 555-0100", None)
    assert bad.to_number is None and bad.problems == ("to is not a phone number: dict",)
    assert parse_call_record(BASE).from_number is None
