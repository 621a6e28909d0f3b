"""GHL JSON -> typed models, once, at the client boundary.

Tolerant per record: GHL's quirks (no ``userId`` on inbound calls, no ``meta.call.duration`` on
unanswered calls, call status at the top level or in ``meta.call``) are normal and simply give
``None``. A field that is present but malformed also gives ``None`` plus a note in ``problems``,
so validation can reject that row with a reason while the rest of the page lands.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ghl_pipeline.ghl.models import (
    CALL_MESSAGE_TYPES,
    CALL_TYPE_NUMBERS,
    CallRecord,
    Contact,
    Location,
    User,
    parse_timestamp,
)

_DIRECTIONS = frozenset({"inbound", "outbound"})
_MAX_DURATION = 2**63 - 1  # Int64


def call_message_type(message: Mapping[str, Any]) -> str | None:
    """The message's call type (``TYPE_CALL``/``TYPE_IVR_CALL``/``TYPE_CUSTOM_CALL``), or None if not a call.

    The string ``messageType`` decides when present; the numeric ``type`` is the fallback.
    """
    message_type = message.get("messageType")
    if isinstance(message_type, str) and message_type:
        return message_type if message_type in CALL_MESSAGE_TYPES else None
    number = message.get("type")
    if isinstance(number, int) and not isinstance(number, bool):
        return CALL_TYPE_NUMBERS.get(number)
    return None


def is_call_message(message: Any) -> bool:
    """True for the call-like messages ``all_calls`` keeps."""
    return isinstance(message, Mapping) and call_message_type(message) is not None


def _text(raw: Mapping[str, Any], key: str, problems: list[str], *, required: bool = False) -> str | None:
    value = raw.get(key)
    if value is None or value == "":
        if required:
            problems.append(f"{key} missing")
        return None
    if not isinstance(value, str):
        problems.append(f"{key} is not a string: {type(value).__name__}")
        return None
    return value


def _timestamp(raw: Mapping[str, Any], key: str, problems: list[str], *, required: bool = False):
    value = raw.get(key)
    try:
        parsed = parse_timestamp(value)
    except ValueError:
        problems.append(f"{key} is not a timestamp: {str(value)[:40]!r}")
        return None
    if parsed is None and required:
        problems.append(f"{key} missing")
    return parsed


def _duration(value: Any, problems: list[str]) -> int | None:
    if value is None:
        return None  # normal on no-answer/busy/failed calls
    if isinstance(value, bool):
        problems.append("meta.call.duration is not a number")
        return None
    if isinstance(value, str):
        text = value.strip()
        # ASCII digits only: str.isdigit() also accepts "²", which int() refuses.
        if not (text.isascii() and text.isdigit()):
            problems.append(f"meta.call.duration is not a number: {text[:20]!r}")
            return None
        if len(text) > 18:  # beyond Int64 (and int()'s 4300-digit limit); nothing lasts that long
            problems.append(f"meta.call.duration is out of range: {text[:20]!r}...")
            return None
        value = int(text)
    if isinstance(value, float):
        if not math.isfinite(value) or value != int(value):
            problems.append(f"meta.call.duration is not whole seconds: {value!r}")
            return None
        value = int(value)
    if not isinstance(value, int):
        problems.append(f"meta.call.duration is not a number: {type(value).__name__}")
        return None
    if value < 0:
        problems.append("meta.call.duration is negative")
        return None
    if value > _MAX_DURATION:  # would overflow the frame's Int64 column
        problems.append("meta.call.duration is out of range")
        return None
    return value


def parse_call_record(raw: Mapping[str, Any]) -> CallRecord:
    """One call message (export or conversation page) as a ``CallRecord``; never raises on bad fields."""
    problems: list[str] = []
    if not isinstance(raw, Mapping):
        return CallRecord(
            id=None,
            location_id=None,
            conversation_id=None,
            contact_id=None,
            user_id=None,
            direction=None,
            call_status=None,
            duration_seconds=None,
            message_type=None,
            date_added=None,
            date_updated=None,
            raw={"value": raw},
            problems=(f"record is not an object: {type(raw).__name__}",),
        )

    direction = _text(raw, "direction", problems)
    if direction is not None:
        direction = direction.lower()
        if direction not in _DIRECTIONS:
            problems.append(f"direction is not inbound/outbound: {direction[:20]!r}")
            direction = None

    # Live call messages carry ``meta.call.{duration,status}``; the spec's ``meta.callDuration`` /
    # ``meta.callStatus`` never appear live but cost nothing to accept.
    meta = raw.get("meta")
    call_meta: Mapping[str, Any] = {}
    if isinstance(meta, Mapping):
        nested = meta.get("call")
        if isinstance(nested, Mapping):
            call_meta = nested
        elif nested is not None:
            problems.append(f"meta.call is not an object: {type(nested).__name__}")
        if not call_meta and ("callDuration" in meta or "callStatus" in meta):
            call_meta = {"duration": meta.get("callDuration"), "status": meta.get("callStatus")}
    elif meta is not None:
        problems.append(f"meta is not an object: {type(meta).__name__}")

    # ``meta.call.status`` is the call's own status; the top-level ``status`` is the fallback (it
    # carries call statuses on call messages, but says "completed" for an outbound call that reached
    # voicemail, where ``meta.call.status`` says "voicemail").
    call_status = None
    meta_status = call_meta.get("status")
    if isinstance(meta_status, str) and meta_status:
        call_status = meta_status
    else:
        if meta_status not in (None, ""):
            problems.append(f"meta.call.status is not a string: {type(meta_status).__name__}")
        call_status = _text(raw, "status", problems)

    return CallRecord(
        id=_text(raw, "id", problems, required=True),
        location_id=_text(raw, "locationId", problems),
        conversation_id=_text(raw, "conversationId", problems),
        contact_id=_text(raw, "contactId", problems),
        user_id=_text(raw, "userId", problems),  # absent on inbound and IVR calls: no dialing user
        direction=direction,
        call_status=call_status,
        duration_seconds=_duration(call_meta.get("duration"), problems),
        message_type=call_message_type(raw),
        date_added=_timestamp(raw, "dateAdded", problems, required=True),
        date_updated=_timestamp(raw, "dateUpdated", problems),
        raw=raw,
        problems=tuple(problems),
    )


def messages_of_page(body: Any) -> tuple[list[Any], str | None, bool]:
    """``(messages, lastMessageId, nextPage)`` from a ``GET /conversations/{id}/messages`` body.

    The live API nests the page (``{"messages": {"messages": [...], "nextPage", "lastMessageId"}}``)
    while the 2026 spec shows it flat; both are accepted.
    """
    if not isinstance(body, Mapping):
        return [], None, False
    page = body.get("messages")
    if isinstance(page, Mapping):  # live, nested
        container: Mapping[str, Any] = page
        messages = page.get("messages")
    else:  # the spec's flat form
        container = body
        messages = page
    if not isinstance(messages, list):
        messages = []
    last_id = container.get("lastMessageId")
    return messages, last_id if isinstance(last_id, str) else None, container.get("nextPage") is True


def _name(first: Any, last: Any) -> str | None:
    parts = [p.strip() for p in (first, last) if isinstance(p, str) and p.strip()]
    return " ".join(parts) or None


def parse_contact(raw: Mapping[str, Any]) -> Contact | None:
    """A contact (``GET /contacts/{id}`` or a search hit); None when it has no id."""
    if not isinstance(raw, Mapping) or not isinstance(raw.get("id"), str) or not raw["id"]:
        return None
    name = raw.get("name") if isinstance(raw.get("name"), str) and raw.get("name", "").strip() else None
    name = (
        name.strip()
        if name
        else _name(raw.get("firstName"), raw.get("lastName")) or _name(raw.get("contactName"), None)
    )
    phone = raw.get("phone")
    country = raw.get("country")
    try:
        date_updated = parse_timestamp(raw.get("dateUpdated"))
    except ValueError:
        date_updated = None
    return Contact(
        id=raw["id"],
        name=name,
        phone=phone.strip() or None if isinstance(phone, str) else None,
        country=country.strip() or None if isinstance(country, str) else None,
        date_updated=date_updated,
    )


def parse_user(raw: Mapping[str, Any]) -> User | None:
    """A user (agent); None when it has no id."""
    if not isinstance(raw, Mapping) or not isinstance(raw.get("id"), str) or not raw["id"]:
        return None
    name = raw.get("name")
    name = name.strip() if isinstance(name, str) and name.strip() else None
    return User(id=raw["id"], name=name or _name(raw.get("firstName"), raw.get("lastName")))


def parse_location(raw: Mapping[str, Any], *, location_id: str) -> Location:
    """The location (``GET /locations/{id}`` body's ``location``); missing fields become None."""
    body = raw.get("location") if isinstance(raw.get("location"), Mapping) else raw
    if not isinstance(body, Mapping):
        body = {}

    def text(key: str) -> str | None:
        value = body.get(key)
        return value.strip() or None if isinstance(value, str) else None

    return Location(
        id=text("id") or location_id, name=text("name"), timezone=text("timezone"), country=text("country")
    )
