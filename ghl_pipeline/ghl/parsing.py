"""GHL JSON -> typed models, once, at the client boundary.

Tolerant per record: GHL's quirks (no ``userId`` on inbound calls, no ``meta.call.duration`` on
unanswered calls, call status at the top level or in ``meta.call``) are normal and simply give
``None``. A field that is present but malformed also gives ``None`` plus a note in ``problems``,
so validation can reject that row with a reason while the rest of the page lands.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from ghl_pipeline.ghl.models import (
    CALL_MESSAGE_TYPES,
    CALL_TYPE_NUMBERS,
    CAMPAIGN_CALL_TYPES,
    CONFIRMED_TYPE_NUMBERS,
    MESSAGE_TYPE_NAMES,
    MESSAGE_TYPE_NUMBERS,
    UNNUMBERED_MESSAGE_TYPES,
    CallRecord,
    Contact,
    Location,
    UnrecognisedMessage,
    User,
    parse_timestamp,
)

_DIRECTIONS = frozenset({"inbound", "outbound"})
_MAX_DURATION = 2**63 - 1  # Int64


# Spellings GHL documents for the same type: REST sends ``TYPE_CALL``, webhooks ``CALL`` (and ``SMS``,
# ``Email``), the export's channel says ``Call``. Case, blanks, hyphens and the ``TYPE_`` prefix are
# folded; any other spelling is unknown and never guessed at.
_WEBHOOK_SPELLINGS: Mapping[str, str] = {"EMAIL": "TYPE_EMAIL", "SMS": "TYPE_SMS", "CALL": "TYPE_CALL"}
_SEPARATORS = re.compile(r"[\s\-]+")


def canonical_message_type(value: Any) -> str | None:
    """GHL's canonical ``TYPE_...`` name for a ``messageType`` in any documented spelling, else None."""
    if not isinstance(value, str):
        return None
    folded = _SEPARATORS.sub("_", value.strip()).upper()
    if not folded:
        return None
    bare = folded.removeprefix("TYPE_")
    name = f"TYPE_{bare}"
    if name in MESSAGE_TYPE_NUMBERS or name in UNNUMBERED_MESSAGE_TYPES:
        return name
    return _WEBHOOK_SPELLINGS.get(bare)


def _type_number(message: Mapping[str, Any]) -> int | None:
    number = message.get("type")
    if isinstance(number, bool):
        return None
    if isinstance(number, float) and number.is_integer():
        number = int(number)
    return number if isinstance(number, int) else None


def classify_message(message: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """``(call type, None)`` for a call ``all_calls`` keeps, else ``(None, reason)``.

    The string ``messageType`` and the numeric ``type`` are read together. A known call spelling wins
    unless a *confirmed* number says the message is something else (the spec's own example is
    ``type: 1`` with ``messageType: "SMS"``: it contradicts itself, so it is not taken as either).
    The number alone decides only when ``messageType`` is absent.
    """
    raw_type = message.get("messageType")
    number = _type_number(message)
    has_string = raw_type is not None and raw_type != ""
    name = canonical_message_type(raw_type)
    number_name = MESSAGE_TYPE_NAMES.get(number) if number is not None else None
    shown = f"messageType {str(raw_type)[:40]!r}"
    shown_number = f"type {number} ({number_name or 'unknown'})" if number is not None else "no numeric type"

    if has_string and name is None:
        return None, f"{shown} is not a message type GHL documents ({shown_number})"
    if name in CALL_MESSAGE_TYPES:
        if number is not None and number in CONFIRMED_TYPE_NUMBERS and number_name not in CALL_MESSAGE_TYPES:
            return None, f"{shown} says a call but {shown_number} says otherwise"
        return name, None
    if name is not None:
        if number is not None and number in CONFIRMED_TYPE_NUMBERS and number_name in CALL_MESSAGE_TYPES:
            return None, f"{shown} contradicts {shown_number}"
        if name in CAMPAIGN_CALL_TYPES:
            return (
                None,
                f"{shown} ({shown_number}) is a campaign call or voicemail drop, not kept in all_calls",
            )
        return None, f"{shown} ({shown_number}) is not a call"
    if number is not None and number in CALL_TYPE_NUMBERS:
        return CALL_TYPE_NUMBERS[number], None
    if number is not None:
        kind = "a campaign call or voicemail drop" if number_name in CAMPAIGN_CALL_TYPES else "not a call"
        return None, f"no messageType and {shown_number} is {kind}"
    return None, "neither messageType nor type says what this message is"


def call_message_type(message: Mapping[str, Any]) -> str | None:
    """The message's call type (``TYPE_CALL``/``TYPE_IVR_CALL``/``TYPE_CUSTOM_CALL``), or None if not a call."""
    return classify_message(message)[0]


def is_call_message(message: Any) -> bool:
    """True for the call-like messages ``all_calls`` keeps."""
    return isinstance(message, Mapping) and call_message_type(message) is not None


def unrecognised_message(raw: Any, reason: str) -> UnrecognisedMessage:
    """A message kept aside (with its raw JSON and the reason) instead of being dropped."""
    if not isinstance(raw, Mapping):
        return UnrecognisedMessage(
            id=None,
            date_added=None,
            reason=f"record is not an object: {type(raw).__name__}",
            raw={"value": raw},
        )
    raw_id = raw.get("id")
    try:
        added = parse_timestamp(raw.get("dateAdded"))
    except ValueError:
        added = None
    return UnrecognisedMessage(
        id=raw_id if isinstance(raw_id, str) and raw_id else None, date_added=added, reason=reason, raw=raw
    )


def _number(
    raw: Mapping[str, Any], call_meta: Mapping[str, Any], key: str, problems: list[str]
) -> str | None:
    # ``from``/``to`` are newer than the reference: seen at the top level of webhooks (2026) and inside
    # ``call`` on the outbound-call endpoints; read either, top level first.
    value = raw.get(key)
    if value is None or value == "":
        value = call_meta.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        problems.append(f"{key} is not a phone number: {type(value).__name__}")
        return None
    return value.strip() or None


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

    from_number = _number(raw, call_meta, "from", problems)
    to_number = _number(raw, call_meta, "to", problems)
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
        from_number=from_number,
        to_number=to_number,
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
        id=text("id") or location_id,
        name=text("name"),
        timezone=text("timezone"),
        country=text("country"),
        company_id=text("companyId"),
    )
