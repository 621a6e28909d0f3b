"""Validation of the dashboard's ``POST /sync`` body into a typed request.

The body arrives from a browser, so nothing in it reaches Dagster unless it passed these rules, and the
run config is rebuilt from the parsed values (never from the raw JSON). The date rules are the job
config's (CONTRACT §4): dates or datetimes-with-offset, not a mix, ``dateTo`` not before ``dateFrom``,
a window of at most 93 days.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from ghl_pipeline import windows

MAX_PROJECT_NAME_LENGTH = 200
# GHL started in 2018; anything before 2000 is a typo or an attack, not a sync anyone means.
EARLIEST_DATE = date(2000, 1, 1)
ALL_PROJECTS_SCOPE = "*"

# ASCII digits only: Python's \d also matches other scripts' digits, which fromisoformat rejects or,
# worse, accepts in places we did not test.
_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", re.ASCII)
_DATETIME_RE = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?(Z|[+-][0-9]{2}:[0-9]{2})",
    re.ASCII,
)
_FIELDS = ("dateFrom", "dateTo", "projectName")
# Control, format (zero-width, bidi overrides), surrogate, private-use, unassigned, line/paragraph separators.
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


class BodyError(ValueError):
    """The request body broke a rule; ``field`` names the offending field (or ``body``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class SyncRequest:
    """A validated sync request; ``date_from``/``date_to`` are canonical ISO strings for the job config."""

    date_from: str
    date_to: str
    project_name: str | None

    @property
    def scope(self) -> str:
        """The project this run covers, or ``*`` for every active project (the ``ghl/scope`` tag)."""
        return self.project_name if self.project_name is not None else ALL_PROJECTS_SCOPE

    def run_config(self) -> dict[str, Any]:
        """The ``sync_ghl_calls`` run config, built only from validated fields."""
        config = {"date_from": self.date_from, "date_to": self.date_to, "project_name": self.project_name}
        return {"ops": {"sync_calls": {"config": config}}}


def decode_json_object(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object; ``BodyError`` for non-UTF-8, non-JSON, duplicate keys or non-objects."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BodyError("body", "must be UTF-8 encoded JSON") from None
    try:
        value = json.loads(text, object_pairs_hook=_reject_duplicate_keys, parse_constant=_reject_constant)
    except BodyError:
        raise
    except (ValueError, RecursionError):
        raise BodyError("body", 'must be a JSON object like {"dateFrom": "2025-12-01", ...}') from None
    if not isinstance(value, dict):
        raise BodyError("body", "must be a JSON object, not " + type(value).__name__)
    return value


def parse_sync_request(body: dict[str, Any], *, today: date | None = None) -> SyncRequest:
    """Check the body's fields against the sync rules; raise ``BodyError`` naming the first bad field.

    The date rules are the job's own (``ghl_pipeline.windows``), applied here so a bad click is refused
    before anything is launched; the gateway adds only what a browser should not send (unknown fields,
    non-strings, dates after tomorrow, invisible characters in a project name).
    """
    unknown = sorted(str(key) for key in body if key not in _FIELDS)
    if unknown:
        names = ", ".join(repr(_clip(name)) for name in unknown[:5])
        raise BodyError(
            _clip(unknown[0]) or "body", f"unknown field(s) {names}; allowed: dateFrom, dateTo, projectName"
        )
    latest = (today or datetime.now(UTC).date()) + timedelta(days=1)  # +1: zones ahead of UTC
    date_from = _moment_text(body, "dateFrom")
    date_to = _moment_text(body, "dateTo")
    project_name = _parse_project(body)
    try:
        checked = windows.parse_sync_request(date_from, date_to, project_name)
    except windows.SyncConfigError as exc:
        field, _, message = str(exc).partition(": ")
        raise BodyError(_BODY_FIELD.get(field, "dateTo"), message) from None
    first = checked.span.first if isinstance(checked.span, windows.DayRange) else checked.span.start.date()
    last = checked.span.last if isinstance(checked.span, windows.DayRange) else checked.span.end.date()
    for name, day in (("dateFrom", first), ("dateTo", last)):
        if day < EARLIEST_DATE or day > latest:
            raise BodyError(name, f"must be between {EARLIEST_DATE.isoformat()} and {latest.isoformat()}")
    return SyncRequest(
        date_from=_canonical(date_from), date_to=_canonical(date_to), project_name=project_name
    )


def _canonical(text: str) -> str:
    """``YYYY-MM-DD``, or the datetime with an explicit offset (``Z`` spelled ``+00:00``)."""
    if _DATE_RE.fullmatch(text):
        return text
    return datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text).isoformat()


# The job's field names → the dashboard's.
_BODY_FIELD = {
    "date_from": "dateFrom",
    "date_to": "dateTo",
    "date_from/date_to": "dateTo",
    "project_name": "projectName",
}


def _moment_text(body: dict[str, Any], name: str) -> str:
    if name not in body or body[name] is None:
        raise BodyError(name, "is required (YYYY-MM-DD or an ISO-8601 datetime with offset)")
    value = body[name]
    if not isinstance(value, str):
        raise BodyError(name, f"must be a string, not {_json_type(value)}")
    text = value.strip()
    if not (_DATE_RE.fullmatch(text) or _DATETIME_RE.fullmatch(text)):
        raise BodyError(
            name, "must be YYYY-MM-DD or an ISO-8601 datetime with offset like 2025-12-01T00:00:00+00:00"
        )
    return text


def _parse_project(body: dict[str, Any]) -> str | None:
    value = body.get("projectName")
    if value is None:
        return None
    if not isinstance(value, str):
        raise BodyError("projectName", f"must be a string or null, not {_json_type(value)}")
    name = value.strip()
    if not name:
        raise BodyError("projectName", "must not be empty; omit it or send null to sync every project")
    if len(name) > MAX_PROJECT_NAME_LENGTH:
        raise BodyError("projectName", f"must be at most {MAX_PROJECT_NAME_LENGTH} characters")
    if name == ALL_PROJECTS_SCOPE:
        raise BodyError("projectName", "'*' is not a project name; omit projectName to sync every project")
    if any(unicodedata.category(ch) in _FORBIDDEN_CATEGORIES for ch in name):
        raise BodyError("projectName", "must not contain control, invisible or line-break characters")
    return name


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Two "dateFrom"s would mean different things to different JSON parsers; refuse rather than guess.
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise BodyError(_clip(key) or "body", "appears twice in the body")
        result[key] = value
    return result


def _reject_constant(name: str) -> Any:
    raise BodyError("body", f"{name} is not valid JSON")


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _clip(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit] + "…"
