"""What a sync covers: calendar days in each project's zone, or an exact UTC window.

The dashboard sends its filter's dates (``YYYY-MM-DD``, inclusive, read in each project's own time
zone) or ISO-8601 datetimes with an offset (the half-open window ``[date_from, date_to)``). This module
checks that input once, before anything is fetched or written, and turns it into UTC windows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ghl_pipeline.config import MAX_SYNC_DAYS

_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")  # ASCII digits only; used with fullmatch
# Far enough back for any real call log, and nowhere near the year-1/9999 edges Python chokes on.
_EARLIEST = date(2000, 1, 1)
_LATEST = date(2100, 1, 1)
_MAX_PROJECT_NAME = 200


class SyncConfigError(ValueError):
    """Bad sync input; the message names the field and the rule it broke."""


@dataclass(frozen=True, slots=True)
class DayRange:
    """Inclusive calendar days, read in each project's own time zone."""

    first: date
    last: date

    def days(self) -> list[date]:
        """Every day of the range, in order."""
        return [self.first + timedelta(days=i) for i in range((self.last - self.first).days + 1)]

    def window(self, timezone: str) -> tuple[datetime, datetime]:
        """The UTC half-open window these local days span in ``timezone`` (DST-aware)."""
        return local_days_window(self.first, self.last, timezone)


@dataclass(frozen=True, slots=True)
class ExactWindow:
    """A half-open UTC window ``[start, end)`` given as datetimes."""

    start: datetime
    end: datetime

    def window(self, timezone: str) -> tuple[datetime, datetime]:  # noqa: ARG002 - same shape as DayRange
        """The window itself: datetimes don't depend on the project's zone."""
        return self.start, self.end

    def days(self, timezone: str) -> list[date]:
        """The local days of ``timezone`` that lie entirely inside the window."""
        zone = zone_info(timezone)
        first = self.start.astimezone(zone).date()
        last = self.end.astimezone(zone).date()
        covered = []
        day = first
        while day <= last:
            start, end = local_days_window(day, day, timezone)
            if start >= self.start and end <= self.end:
                covered.append(day)
            day += timedelta(days=1)
        return covered


@dataclass(frozen=True, slots=True)
class SyncRequest:
    """A checked request to sync: what span, and one project or every active one."""

    span: DayRange | ExactWindow
    project_name: str | None


def zone_info(name: str) -> ZoneInfo:
    """``ZoneInfo(name)`` with an error that names the zone."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise SyncConfigError(f"timezone: {name!r} is not an IANA time zone") from exc


def local_days_window(first: date, last: date, timezone: str) -> tuple[datetime, datetime]:
    """UTC bounds of local days ``first..last`` in ``timezone``: midnight to midnight, DST included."""
    zone = zone_info(timezone)
    start = datetime.combine(first, time.min, tzinfo=zone).astimezone(UTC)
    end = datetime.combine(last + timedelta(days=1), time.min, tzinfo=zone).astimezone(UTC)
    return start, end


def _parse_one(field: str, value: object) -> date | datetime:
    if not isinstance(value, str) or not value.strip():
        raise SyncConfigError(f"{field}: required, a YYYY-MM-DD date or an ISO-8601 datetime with offset")
    text = value.strip()
    if len(text) > 40:
        raise SyncConfigError(f"{field}: too long to be a date ({len(text)} characters)")
    if _DATE_RE.fullmatch(text):
        try:
            parsed: date | datetime = date.fromisoformat(text)
        except ValueError as exc:
            raise SyncConfigError(f"{field}: {text!r} is not a real calendar date") from exc
        day = parsed
    else:
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError as exc:
            raise SyncConfigError(
                f"{field}: {text!r} is neither YYYY-MM-DD nor an ISO-8601 datetime with offset"
            ) from exc
        if parsed.tzinfo is None or parsed.utcoffset() is None:
            raise SyncConfigError(f"{field}: datetime {text!r} needs a UTC offset, e.g. +00:00 or Z")
        day = parsed.date()
    if not (_EARLIEST <= day < _LATEST):
        raise SyncConfigError(f"{field}: {text!r} is outside {_EARLIEST.isoformat()}..{_LATEST.year - 1}")
    return parsed


def parse_sync_request(date_from: object, date_to: object, project_name: object = None) -> SyncRequest:
    """Check the dashboard's input (CONTRACT §4) and return what to sync, or raise ``SyncConfigError``."""
    start = _parse_one("date_from", date_from)
    end = _parse_one("date_to", date_to)
    if isinstance(start, datetime) != isinstance(end, datetime):
        raise SyncConfigError(
            "date_from/date_to: both must be dates (YYYY-MM-DD) or both datetimes with offset, not a mix"
        )
    span: DayRange | ExactWindow
    if isinstance(start, datetime) and isinstance(end, datetime):
        start_utc, end_utc = start.astimezone(UTC), end.astimezone(UTC)
        if end_utc <= start_utc:
            raise SyncConfigError("date_to: must be after date_from (datetimes are a half-open window)")
        if end_utc - start_utc > timedelta(days=MAX_SYNC_DAYS):
            raise SyncConfigError(f"date_from/date_to: the window is longer than {MAX_SYNC_DAYS} days")
        span = ExactWindow(start_utc, end_utc)
    else:
        assert isinstance(start, date) and isinstance(end, date)
        if end < start:
            raise SyncConfigError("date_to: must not be before date_from")
        if (end - start).days + 1 > MAX_SYNC_DAYS:
            raise SyncConfigError(f"date_from/date_to: the range is longer than {MAX_SYNC_DAYS} days")
        span = DayRange(start, end)
    return SyncRequest(span=span, project_name=_parse_project_name(project_name))


def _parse_project_name(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise SyncConfigError("project_name: must be a string or null")
    name = value.strip()
    if not name:
        return None
    if len(name) > _MAX_PROJECT_NAME:
        raise SyncConfigError(f"project_name: longer than {_MAX_PROJECT_NAME} characters")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        raise SyncConfigError("project_name: must not contain control characters")
    return name
