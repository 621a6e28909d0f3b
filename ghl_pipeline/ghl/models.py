"""Typed models of what GHL sends, parsed once at the client boundary.

Nothing downstream of the client digs through raw GHL JSON: it reads these frozen dataclasses.
Parsing is tolerant per record (GHL's quirks are normal, not errors): a field that is missing
becomes ``None``; a field that is present but malformed becomes ``None`` *and* a note in
``problems``, so validation can reject the row with a reason while the rest of the page lands.
The raw record is kept for ``all_calls_rejects``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

# The message types that are phone calls (GHL numeric type in brackets): TYPE_CALL (1),
# TYPE_IVR_CALL (24, inbound IVR, never has a userId) and TYPE_CUSTOM_CALL (34, third-party calls).
CALL_MESSAGE_TYPES: frozenset[str] = frozenset({"TYPE_CALL", "TYPE_IVR_CALL", "TYPE_CUSTOM_CALL"})
CALL_TYPE_NUMBERS: Mapping[int, str] = {1: "TYPE_CALL", 24: "TYPE_IVR_CALL", 34: "TYPE_CUSTOM_CALL"}

# GHL's numeric message types by name (reference §3). Only 1, 3, 10, 11, 18, 24 and 31 are confirmed by
# the official material or several observations; the rest come from one third-party table, so a
# number outside CONFIRMED_TYPE_NUMBERS never overrules the string ``messageType``.
MESSAGE_TYPE_NUMBERS: Mapping[str, int] = {
    "TYPE_CALL": 1,
    "TYPE_SMS": 2,
    "TYPE_EMAIL": 3,
    "TYPE_SMS_REVIEW_REQUEST": 4,
    "TYPE_WEBCHAT": 5,
    "TYPE_SMS_NO_SHOW_REQUEST": 6,
    "TYPE_CAMPAIGN_SMS": 7,
    "TYPE_CAMPAIGN_CALL": 8,
    "TYPE_CAMPAIGN_EMAIL": 9,
    "TYPE_CAMPAIGN_VOICEMAIL": 10,
    "TYPE_FACEBOOK": 11,
    "TYPE_CAMPAIGN_FACEBOOK": 12,
    "TYPE_CAMPAIGN_MANUAL_CALL": 13,
    "TYPE_CAMPAIGN_MANUAL_SMS": 14,
    "TYPE_GMB": 15,
    "TYPE_CAMPAIGN_GMB": 16,
    "TYPE_REVIEW": 17,
    "TYPE_INSTAGRAM": 18,
    "TYPE_WHATSAPP": 19,
    "TYPE_CUSTOM_SMS": 20,
    "TYPE_CUSTOM_EMAIL": 21,
    "TYPE_CUSTOM_PROVIDER_SMS": 22,
    "TYPE_CUSTOM_PROVIDER_EMAIL": 23,
    "TYPE_IVR_CALL": 24,
    "TYPE_ACTIVITY_CONTACT": 25,
    "TYPE_ACTIVITY_INVOICE": 26,
    "TYPE_ACTIVITY_PAYMENT": 27,
    "TYPE_ACTIVITY_OPPORTUNITY": 28,
    "TYPE_LIVE_CHAT": 29,
    "TYPE_LIVE_CHAT_INFO_MESSAGE": 30,
    "TYPE_ACTIVITY_APPOINTMENT": 31,
    "TYPE_FACEBOOK_COMMENT": 32,
    "TYPE_INSTAGRAM_COMMENT": 33,
    "TYPE_CUSTOM_CALL": 34,
    "TYPE_GROUP_SMS": 35,
    "TYPE_INTERNAL_CHAT": 36,
    "TYPE_INTERNAL_COMMENT": 37,
    "TYPE_ACTIVITY_EMPLOYEE_ACTION_LOG": 38,
    "TYPE_NO_SHOW": 100,
}
# Names in the spec's enum that carry no number in any table we have.
UNNUMBERED_MESSAGE_TYPES: frozenset[str] = frozenset(
    {
        "TYPE_RCS",
        "TYPE_TIKTOK",
        "TYPE_TIKTOK_COMMENT",
        "TYPE_ACTIVITY_WHATSAPP",
        "TYPE_FORM_SUBMISSION",
        "TYPE_SMS_REACTION",
    }
)
MESSAGE_TYPE_NAMES: Mapping[int, str] = {number: name for name, number in MESSAGE_TYPE_NUMBERS.items()}
CONFIRMED_TYPE_NUMBERS: frozenset[int] = frozenset({1, 3, 10, 11, 18, 24, 31})
# Call-like types all_calls does not keep (the contract's message_type has three values): campaign
# calls and voicemail drops. They are filed as rejects with a reason that names them.
CAMPAIGN_CALL_TYPES: frozenset[str] = frozenset(
    {"TYPE_CAMPAIGN_CALL", "TYPE_CAMPAIGN_MANUAL_CALL", "TYPE_CAMPAIGN_VOICEMAIL"}
)


class Secret:
    """A token that never shows itself: ``str``/``repr``/f-strings print ``Secret('***')``."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if isinstance(value, Secret):
            value = value.reveal()
        if not isinstance(value, str) or not value.strip():
            raise ValueError("a GHL token must be a non-empty string")
        self._value = value.strip()

    def reveal(self) -> str:
        """The token itself; call only where it goes into an Authorization header."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __reduce__(self):  # pickling would write the token into Dagster's storage
        raise TypeError("a Secret cannot be pickled")


def parse_timestamp(value: Any) -> datetime | None:
    """An aware UTC datetime from GHL's ISO-8601 string (or epoch milliseconds); ``None`` if absent.

    Raises ``ValueError`` when the value is present but not a timestamp.
    """
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError(f"not a timestamp: {value!r}")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ValueError(f"not a timestamp: {value!r}")
        try:
            return datetime.fromtimestamp(value / 1000, tz=UTC)
        except (OverflowError, OSError, ValueError) as exc:
            raise ValueError(f"epoch milliseconds out of range: {value!r}") from exc
    if not isinstance(value, str):
        raise ValueError(f"not a timestamp: {type(value).__name__}")
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)  # ValueError on junk
    if parsed.tzinfo is None:  # GHL sends UTC; a naive stamp is read as UTC
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError as exc:  # e.g. 0001-01-01T00:00+01:00 lies before year 1 in UTC
        raise ValueError(f"timestamp out of range: {text[:40]!r}") from exc


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One call message from ``GET /conversations/messages/export`` (or the nested messages pages)."""

    id: str | None
    location_id: str | None
    conversation_id: str | None
    contact_id: str | None
    # Missing on inbound and IVR calls: there is no dialing user.
    user_id: str | None
    direction: str | None
    # ``meta.call.status`` when present, else the message's top-level ``status`` (which carries call
    # statuses on call messages, not the SMS enum the spec lists).
    call_status: str | None
    # ``meta.call.duration`` in seconds; absent on no-answer/busy/failed calls.
    duration_seconds: int | None
    message_type: str | None
    date_added: datetime | None
    date_updated: datetime | None
    raw: Mapping[str, Any] = field(repr=False, compare=False)
    problems: tuple[str, ...] = ()
    # The call's numbers (top-level ``from``/``to``, or ``meta.call.from``/``to``), as GHL gives them.
    # Newer than the reference: absent on most accounts.
    from_number: str | None = None
    to_number: str | None = None


@dataclass(frozen=True, slots=True)
class UnrecognisedMessage:
    """A message the export returned for ``channel=Call`` that is not a call type ``all_calls`` keeps."""

    id: str | None
    date_added: datetime | None
    reason: str
    raw: Mapping[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class CallPage:
    """One page of the export: its calls, and the messages that are not calls (never dropped silently)."""

    calls: tuple[CallRecord, ...]
    total: int | None
    next_cursor: str | None
    unrecognised: tuple[UnrecognisedMessage, ...] = ()


@dataclass(frozen=True, slots=True)
class Contact:
    """The parts of a contact that ``all_calls`` needs."""

    id: str
    name: str | None
    phone: str | None
    country: str | None
    date_updated: datetime | None


@dataclass(frozen=True, slots=True)
class User:
    """A GHL user (an agent)."""

    id: str
    name: str | None


@dataclass(frozen=True, slots=True)
class Location:
    """A GHL sub-account: its IANA time zone and country (default phone region)."""

    id: str
    name: str | None
    timezone: str | None
    country: str | None
    # The agency (company) id: what ``GET /users/search`` needs.
    company_id: str | None = None
