"""GHL call models -> an ``all_calls`` frame (CONTRACT §3). Pure pandas: no I/O, no Dagster.

Besides the contract's columns the frame carries ``_raw`` (the record GHL sent) and ``_problems``
(what the client could not parse), which validation turns into ``all_calls_rejects`` rows; the upsert
ignores columns that start with ``_``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import phonenumbers

from ghl_pipeline.ghl.models import CallRecord, Contact, User

ALL_CALLS_COLUMNS: tuple[str, ...] = (
    "ghl_id",
    "project_name",
    "ghl_location_id",
    "ghl_conversation_id",
    "ghl_contact_id",
    "ghl_user_id",
    "lead_name",
    "phone_number",
    "direction",
    "from_number",
    "to_number",
    "call_status",
    "duration_seconds",
    "agent_name",
    "message_type",
    "call_started_at",
    "call_date",
    "ghl_updated_at",
    "synced_at",
)
EXTRA_COLUMNS: tuple[str, ...] = ("_raw", "_problems")

# GHL spells some statuses more than one way across message versions and third-party dialers
# (TYPE_CUSTOM_CALL); fold them into the contract's set. Anything else is kept and left to validation.
_STATUS_ALIASES: Mapping[str, str] = {
    "no-answer": "no-answer",
    "noanswer": "no-answer",
    "no_answer": "no-answer",
    "no answer": "no-answer",
    "not-answered": "no-answer",
    "cancelled": "canceled",
    "canceled": "canceled",
    "voice-mail": "voicemail",
    "voice_mail": "voicemail",
}


def normalise_status(status: str | None) -> str | None:
    """Lower-case, trimmed call status with GHL's spelling variants folded; ``None`` when blank."""
    if status is None:
        return None
    text = str(status).strip().lower()
    if not text:
        return None
    return _STATUS_ALIASES.get(text, _STATUS_ALIASES.get(text.replace("_", "-"), text))


@lru_cache(maxsize=65_536)
def normalise_phone(phone: str | None, region: str | None) -> str | None:
    """E.164 when ``phone`` parses as a possible number (``region`` = default country), else as given."""
    if phone is None:
        return None
    text = str(phone).strip()
    if not text:
        return None
    try:
        parsed = phonenumbers.parse(text, (region or "").upper() or None)
    except phonenumbers.NumberParseException:
        return text
    if not phonenumbers.is_possible_number(parsed):
        return text
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def _clean(text: str | None) -> str | None:
    if text is None:
        return None
    text = str(text).strip()
    return text or None


def _lower(text: str | None) -> str | None:
    text = _clean(text)
    return text.lower() if text is not None else None


def _local_dates(starts: pd.Series, timezone: str) -> np.ndarray:
    """``starts`` (UTC) as calendar dates in ``timezone``; pandas does the DST arithmetic, vectorised."""
    local_midnights = starts.dt.tz_convert(timezone).dt.tz_localize(None).dt.normalize()
    codes, uniques = pd.factorize(local_midnights)  # a page spans few days: build each date once
    dates = np.array([_py_date(ts) for ts in uniques] + [None], dtype=object)
    return dates[codes]  # code -1 (no start) picks the trailing None


def _py_date(midnight: pd.Timestamp) -> object:
    # A start at 0001-01-01Z west of UTC (or 9999-12-31Z east of it) falls on a day Python has no date
    # for; None, and validation rejects the row (its start is outside any sync window anyway).
    try:
        return midnight.date()
    except (ValueError, OverflowError, NotImplementedError):
        return None


def calls_to_frame(
    calls: Iterable[CallRecord],
    *,
    project_name: str,
    location_id: str,
    timezone: str,
    region: str | None,
    users: Mapping[str, User],
    contacts: Mapping[str, Contact],
    synced_at: datetime,
) -> pd.DataFrame:
    """Map call records to ``all_calls`` rows (plus ``_raw`` and ``_problems``), one row per record."""
    ZoneInfo(timezone)  # an unknown zone fails here, loudly, not as a wrong call_date
    calls = list(calls)
    ids, locations, conversations, contact_ids, user_ids = [], [], [], [], []
    lead_names, phones, directions, statuses, durations, agents, types = [], [], [], [], [], [], []
    from_numbers, to_numbers = [], []
    starts, updates, raws, problems = [], [], [], []
    for call in calls:
        contact = contacts.get(call.contact_id) if call.contact_id else None
        user = users.get(call.user_id) if call.user_id else None
        ids.append(_clean(call.id))
        call_location = _clean(call.location_id)
        locations.append(call_location or location_id)
        conversations.append(_clean(call.conversation_id))
        contact_ids.append(_clean(call.contact_id))
        user_ids.append(_clean(call.user_id))
        lead_names.append(_clean(contact.name) if contact else None)
        phone_region = region or (contact.country if contact else None)
        phones.append(normalise_phone(contact.phone, phone_region) if contact and contact.phone else None)
        directions.append(_lower(call.direction))
        # The call's own numbers, when GHL sends them: parsed like the contact's phone.
        from_numbers.append(normalise_phone(call.from_number, phone_region) if call.from_number else None)
        to_numbers.append(normalise_phone(call.to_number, phone_region) if call.to_number else None)
        statuses.append(normalise_status(call.call_status))
        durations.append(call.duration_seconds)
        agents.append(_clean(user.name) if user else None)
        types.append(_clean(call.message_type))
        starts.append(call.date_added)
        updates.append(call.date_updated)
        raws.append(call.raw)
        found = tuple(call.problems)
        if call_location is not None and call_location != location_id:
            # A message of another location would mean a token/location mix-up; never file it here.
            found += (f"locationId {call_location!r} is not the project's location",)
        problems.append(found)

    call_started_at = pd.Series(pd.to_datetime(starts, utc=True), dtype="datetime64[us, UTC]")
    frame = pd.DataFrame(
        {
            "ghl_id": pd.Series(ids, dtype=object),
            "project_name": pd.Series([project_name] * len(calls), dtype=object),
            "ghl_location_id": pd.Series(locations, dtype=object),
            "ghl_conversation_id": pd.Series(conversations, dtype=object),
            "ghl_contact_id": pd.Series(contact_ids, dtype=object),
            "ghl_user_id": pd.Series(user_ids, dtype=object),
            "lead_name": pd.Series(lead_names, dtype=object),
            "phone_number": pd.Series(phones, dtype=object),
            "direction": pd.Series(directions, dtype=object),
            "from_number": pd.Series(from_numbers, dtype=object),
            "to_number": pd.Series(to_numbers, dtype=object),
            "call_status": pd.Series(statuses, dtype=object),
            "duration_seconds": pd.Series(durations, dtype="Int64"),
            "agent_name": pd.Series(agents, dtype=object),
            "message_type": pd.Series(types, dtype=object),
            "call_started_at": call_started_at,
            "call_date": pd.Series(_local_dates(call_started_at, timezone), dtype=object),
            "ghl_updated_at": pd.Series(pd.to_datetime(updates, utc=True), dtype="datetime64[us, UTC]"),
            "synced_at": pd.Series([pd.Timestamp(synced_at)] * len(calls), dtype="datetime64[us, UTC]"),
            "_raw": pd.Series(raws, dtype=object),
            "_problems": pd.Series(problems, dtype=object),
        }
    )
    return frame


def empty_calls_frame() -> pd.DataFrame:
    """A zero-row frame with the mapping's columns and dtypes."""
    return calls_to_frame(
        [],
        project_name="",
        location_id="",
        timezone="UTC",
        region=None,
        users={},
        contacts={},
        synced_at=datetime(1970, 1, 1, tzinfo=ZoneInfo("UTC")),
    )
