"""Property tests: whatever JSON GHL sends, every call record lands in ``all_calls`` or in the rejects.

Records go through the real client (an ``httpx.MockTransport`` serves the export page, JSON-encoded the
way GHL's wire format would carry it), then mapping, validation, the upsert and the rejects insert on
the real Postgres. Envelope junk (the page itself) must end in a typed ``GHLError``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime

import httpx
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ghl_pipeline.calls.mapping import calls_to_frame
from ghl_pipeline.calls.validation import validate_calls
from ghl_pipeline.ghl.client import EXPORT_PATH, GHLClient
from ghl_pipeline.ghl.errors import GHLError
from ghl_pipeline.ghl.parsing import parse_call_record, parse_contact, parse_user
from ghl_pipeline.warehouse.upsert import insert_rejects, upsert_calls

LOCATION = "hardeningLoc00000001"
PROJECT = "Hardening Co"
START = datetime(2025, 3, 1, tzinfo=UTC)
END = datetime(2025, 3, 8, tzinfo=UTC)
SYNCED_AT = datetime(2025, 3, 9, tzinfo=UTC)

PAYLOAD_SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)

# --------------------------------------------------------------------------------------------- strategies

# Text with everything Postgres or an encoder may choke on: NUL, other controls, lone surrogates.
nasty_text = st.one_of(
    st.text(max_size=12),
    st.text(alphabet=st.characters(categories=["Cc", "Cs", "Zs", "Zl"]), max_size=6),
    st.sampled_from(["", " ", "\x00", "a\x00b", "\ud800", "x" * 5_000, "null", "NaN", "💥" * 200]),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False),
    nasty_text,
)
junk = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)

# A small pool, so duplicate ids within a page are common; plus junk and whitespace variants.
POOL = [f"msg{i:017d}" for i in range(6)]
ids = st.one_of(st.sampled_from(POOL), st.sampled_from([f" {POOL[0]}", f"{POOL[1]} "]), junk)
other_ids = st.one_of(st.sampled_from(["conv0001", "contact0001", "contact0002", "user0001"]), junk)
in_window = st.datetimes(
    min_value=datetime(2025, 2, 28), max_value=datetime(2025, 3, 9), timezones=st.just(UTC)
)
timestamps = st.one_of(
    in_window.map(lambda d: d.isoformat().replace("+00:00", "Z")),
    in_window.map(lambda d: int(d.timestamp() * 1000)),
    st.datetimes(timezones=st.one_of(st.none(), st.timezones())).map(lambda d: d.isoformat()),
    st.sampled_from(
        [
            "0001-01-01T00:00:00+01:00",
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59-05:00",
            "9999-12-31T23:59:59.999999Z",
            "2025-02-30T00:00:00Z",
            "yesterday",
            10**20,
            -(10**20),
            1e308,
        ]
    ),
    junk,
)
durations = st.one_of(
    st.integers(min_value=-5, max_value=100_000),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["42", " 7 ", "²", "٣", "9" * 5_000, "1e3", "-1", "12.0"]),
    junk,
)
meta = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "call": st.one_of(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "duration": durations,
                        "status": st.one_of(st.sampled_from(["completed", "busy"]), junk),
                    },
                ),
                junk,
            ),
            "callDuration": durations,
            "callStatus": junk,
            "deep": junk,
        },
    ),
    junk,
)
records = st.fixed_dictionaries(
    {"messageType": st.sampled_from(["TYPE_CALL", "TYPE_IVR_CALL", "TYPE_CUSTOM_CALL"])},
    optional={
        "id": ids,
        "type": st.one_of(st.sampled_from([1, 24, 34]), junk),
        "locationId": st.one_of(st.just(LOCATION), junk),
        "conversationId": other_ids,
        "contactId": other_ids,
        "userId": other_ids,
        "direction": st.one_of(st.sampled_from(["inbound", "outbound", "Inbound", "sideways"]), junk),
        "status": st.one_of(st.sampled_from(["completed", "no-answer", "voicemail", "delivered"]), junk),
        "dateAdded": timestamps,
        "dateUpdated": timestamps,
        "meta": meta,
        "body": junk,
        "attachments": junk,
    },
)
# Non-call messages (and non-objects) in the page: not call records; the client returns them aside.
noise = st.one_of(
    junk.filter(lambda v: not isinstance(v, dict)), st.just({"id": "sms1", "messageType": "TYPE_SMS"})
)
people = st.lists(
    st.fixed_dictionaries(
        {"id": other_ids},
        optional={
            "name": junk,
            "firstName": junk,
            "lastName": junk,
            "phone": junk,
            "country": junk,
            "dateUpdated": junk,
        },
    ),
    max_size=4,
)

# ------------------------------------------------------------------------------------------------ helpers


def _wire(body: object) -> bytes:
    """JSON as GHL's wire carries it (ASCII, escapes for anything else, lone surrogates included)."""
    return json.dumps(body, ensure_ascii=True).encode()


def _client(handler) -> GHLClient:
    return GHLClient(
        token="pit-hardening-token",
        location_id=LOCATION,
        project_name=PROJECT,
        transport=httpx.MockTransport(handler),
        sleep=lambda _: None,
        max_attempts=2,
    )


def _page_client(messages: list) -> GHLClient:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == EXPORT_PATH
        return httpx.Response(200, content=_wire({"messages": messages, "total": len(messages)}))

    return _client(handler)


def _distinct_messages(messages: list) -> int:
    """Messages a walk yields: each string ``id`` once, every message without one."""
    ids = [m.get("id") if isinstance(m, dict) else None for m in messages]
    return len({i for i in ids if isinstance(i, str)}) + sum(1 for i in ids if not isinstance(i, str))


def _expected_after_dedup(messages: list) -> int:
    """Call records left after the documented de-duplication.

    The client yields each string ``id`` once per walk; validation then collapses rows whose (trimmed)
    ``ghl_id`` repeats, keeping the newest version. Records without an id are never collapsed.
    """
    seen_raw: set[str] = set()
    seen_clean: set[str] = set()
    count = 0
    for message in messages:
        if not isinstance(message, dict) or message.get("messageType") not in {
            "TYPE_CALL",
            "TYPE_IVR_CALL",
            "TYPE_CUSTOM_CALL",
        }:
            continue
        raw_id = message.get("id")
        if isinstance(raw_id, str):
            if raw_id in seen_raw:
                continue
            seen_raw.add(raw_id)
            clean = raw_id.strip()
            if clean:
                if clean in seen_clean:
                    continue
                seen_clean.add(clean)
        count += 1
    return count


# -------------------------------------------------------------------------------------------------- tests


@given(raw=st.one_of(records, junk))
@settings(max_examples=300, deadline=None)
def test_parsing_one_record_never_raises(raw):
    record = parse_call_record(raw)
    assert record.raw is raw or record.raw == {"value": raw}
    for problem in record.problems:
        assert isinstance(problem, str) and "\n" not in problem and len(problem) < 200


@given(raw=junk)
@settings(max_examples=200, deadline=None)
def test_parsing_people_never_raises(raw):
    parse_contact(raw) if isinstance(raw, Mapping) else None
    parse_user(raw) if isinstance(raw, Mapping) else None


@given(
    messages=st.lists(st.one_of(records, records, records, noise), max_size=12),
    contacts_raw=people,
    users_raw=people,
    timezone=st.sampled_from(["UTC", "America/Chicago", "Pacific/Kiritimati", "America/St_Johns"]),
    region=st.sampled_from([None, "US", "GB", "ZZ"]),
)
@PAYLOAD_SETTINGS
def test_every_record_lands_in_valid_or_rejects(engine, messages, contacts_raw, users_raw, timezone, region):
    with _page_client(messages) as client:
        pages = list(client.iter_call_pages(start=START, end=END))
    calls = [call for page in pages for call in page.calls]
    # Nothing the export sent vanishes: what is not a call comes back aside, with a reason.
    aside = [message for page in pages for message in page.unrecognised]
    assert len(calls) + len(aside) == _distinct_messages(messages)
    assert all(message.reason for message in aside)
    contacts = {c.id: c for c in map(parse_contact, contacts_raw) if c is not None}
    users = {u.id: u for u in map(parse_user, users_raw) if u is not None}

    frame = calls_to_frame(
        calls,
        project_name=PROJECT,
        location_id=LOCATION,
        timezone=timezone,
        region=region,
        users=users,
        contacts=contacts,
        synced_at=SYNCED_AT,
    )
    assert len(frame) == len(calls)
    checked = validate_calls(frame, window_start=START, window_end=END)

    # None vanishes: every record is valid or rejected, after the documented de-duplication.
    assert len(checked.valid) + len(checked.rejects) == _expected_after_dedup(messages)
    assert checked.valid["ghl_id"].notna().all() and not checked.valid["ghl_id"].duplicated().any()
    # What GHL sent, as decoded from the wire (surrogate pairs in the input come back as one character).
    inputs = [m for m in json.loads(_wire(messages)) if isinstance(m, dict)]
    for reject in checked.rejects.to_dict("records"):
        assert reject["rule"], reject
        assert any(reject["raw"] == m for m in inputs), "a reject must carry the record GHL sent"

    counts = upsert_calls(engine, checked.valid)
    assert counts.new + counts.updated + counts.unchanged == len(checked.valid)
    stored = insert_rejects(engine, checked.rejects)
    assert stored <= len(checked.rejects)
    with engine.connect() as conn:
        in_table = set(conn.execute(sa.text("SELECT ghl_id FROM all_calls")).scalars())
        assert set(checked.valid["ghl_id"]) <= in_table
        if len(checked.rejects):
            assert conn.execute(sa.text("SELECT count(*) FROM all_calls_rejects")).scalar_one() >= 1


# ----------------------------------------------------------------------------------------- envelope junk

not_an_object = junk.filter(lambda v: not isinstance(v, dict))
envelopes = st.one_of(
    not_an_object,
    st.fixed_dictionaries({}, optional={"total": junk, "nextCursor": junk}),  # no messages at all
    st.fixed_dictionaries({"messages": junk.filter(lambda v: not isinstance(v, list))}),
    st.fixed_dictionaries(
        {
            "messages": st.just([]),
            "nextCursor": junk.filter(lambda v: v is not None and not isinstance(v, str)),
        }
    ),
)


@given(body=envelopes)
@settings(max_examples=150, deadline=None)
def test_envelope_junk_is_a_typed_error(body):
    with _page_client_body(_wire(body)) as client, pytest.raises(GHLError):
        list(client.iter_call_pages(start=START, end=END))


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"not json",
        b'{"messages": [',
        b"\xff\xfe\x00garbage",
        b"[" * 100_000 + b"]" * 100_000,  # nesting deeper than any JSON parser recurses
        b'{"messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    ],
    ids=["empty", "text", "truncated", "binary", "deep-list", "deep-messages"],
)
def test_unreadable_pages_are_a_typed_error(content):
    with _page_client_body(content) as client, pytest.raises(GHLError):
        list(client.iter_call_pages(start=START, end=END))


def _page_client_body(content: bytes) -> GHLClient:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=content, headers={"Content-Type": "application/json"})

    return _client(handler)
