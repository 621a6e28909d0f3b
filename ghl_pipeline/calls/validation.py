"""Validation of an ``all_calls`` frame as a declared pandera schema.

Rows that break a rule go to ``rejects`` (one row per record, every rule it broke, the raw record);
the valid rows of the same page still pass. Duplicate ``ghl_id`` values within a frame are *collapsed*,
not rejected: the export can return the same call twice (pages overlap when GHL updates a call while
we page), and the version with the newest ``ghl_updated_at`` is the truth (on a tie the later one in
page order wins; a missing ``ghl_updated_at`` counts as oldest). That mirrors the upsert's rule.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import pandas as pd
import pandera.pandas as pa

from ghl_pipeline.calls.mapping import ALL_CALLS_COLUMNS
from ghl_pipeline.ghl.models import CALL_MESSAGE_TYPES, UnrecognisedMessage

DIRECTIONS = ("inbound", "outbound")
CALL_STATUSES = ("completed", "no-answer", "busy", "voicemail", "failed", "canceled", "answered", "pending")
MAX_DURATION_SECONDS = 86_400
REJECT_COLUMNS: tuple[str, ...] = ("ghl_id", "project_name", "ghl_location_id", "rule", "detail", "raw")
# The rule of a message the call export returned that is not a call type all_calls keeps.
UNRECOGNISED_RULE = "unrecognised_call_type"

# Postgres text and jsonb refuse NUL and lone UTF-16 surrogates, both of which GHL's JSON can carry as
# \u escapes; such a value would fail the whole batch's COPY, so its row is rejected instead.
UNSTORABLE_TEXT = re.compile("[\x00\ud800-\udfff]")

# Bounds far above anything GHL sends (ids are ~20 chars) yet low enough to stop garbage at the door.
_ID_LENGTH = (1, 128)
_NAME_LENGTH = (1, 512)
_PHONE_LENGTH = (1, 64)


@dataclass(frozen=True)
class ValidationResult:
    """``valid``: rows ready for the upsert (contract columns only); ``rejects``: for ``insert_rejects``."""

    valid: pd.DataFrame
    rejects: pd.DataFrame


def _text(*, required: bool, length: tuple[int, int], extra: list[pa.Check] | None = None) -> pa.Column:
    # dtype=None: text arrives as object or pandas' str dtype; the checks below are what matters.
    return pa.Column(
        None,
        nullable=not required,
        required=True,
        checks=[
            pa.Check.str_length(*length, error="length"),
            pa.Check(lambda s: s.map(_storable), error="storable"),
            *(extra or []),
        ],
    )


def _storable(value: object) -> bool:
    return not isinstance(value, str) or UNSTORABLE_TEXT.search(value) is None


def calls_schema(*, window_start: datetime, window_end: datetime) -> pa.DataFrameSchema:
    """The rules an ``all_calls`` row must meet for a sync of ``[window_start, window_end)``."""
    start, end = pd.Timestamp(window_start), pd.Timestamp(window_end)
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("window_start and window_end must be timezone-aware")
    return pa.DataFrameSchema(
        {
            "ghl_id": _text(required=True, length=_ID_LENGTH),
            "project_name": _text(required=True, length=_NAME_LENGTH),
            "ghl_location_id": _text(required=True, length=_ID_LENGTH),
            "ghl_conversation_id": _text(required=False, length=_ID_LENGTH),
            "ghl_contact_id": _text(required=False, length=_ID_LENGTH),
            "ghl_user_id": _text(required=False, length=_ID_LENGTH),
            "lead_name": _text(required=False, length=_NAME_LENGTH),
            "phone_number": _text(required=False, length=_PHONE_LENGTH),
            "from_number": _text(required=False, length=_PHONE_LENGTH),
            "to_number": _text(required=False, length=_PHONE_LENGTH),
            "direction": _text(
                required=True, length=(1, 16), extra=[pa.Check.isin(DIRECTIONS, error="in_set")]
            ),
            # A call GHL has not given a status yet is still a call the dashboard should count.
            "call_status": _text(
                required=False, length=(1, 32), extra=[pa.Check.isin(CALL_STATUSES, error="in_set")]
            ),
            "duration_seconds": pa.Column(
                "Int64",
                nullable=True,
                checks=pa.Check.in_range(0, MAX_DURATION_SECONDS, error="in_range"),
            ),
            "agent_name": _text(required=False, length=_NAME_LENGTH),
            "message_type": _text(
                required=True,
                length=(1, 32),
                extra=[pa.Check.isin(sorted(CALL_MESSAGE_TYPES), error="in_set")],
            ),
            "call_started_at": pa.Column(
                None,
                nullable=False,
                checks=pa.Check(lambda s: (s >= start) & (s < end), error="in_window"),
            ),
            "call_date": pa.Column(None, nullable=False),
            "ghl_updated_at": pa.Column(None, nullable=True),
            "_problems": pa.Column(
                None,
                nullable=True,
                required=False,
                checks=pa.Check(lambda s: s.map(lambda p: not p), error="parse_problems"),
            ),
        },
        strict=False,
        coerce=False,
    )


def collapse_duplicates(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per ``ghl_id``: the newest ``ghl_updated_at`` (missing = oldest; ties: last in order)."""
    if frame.empty or not frame["ghl_id"].duplicated().any():
        return frame
    order = frame.reset_index(drop=True)
    order["_order"] = range(len(order))
    order = order.sort_values(["ghl_updated_at", "_order"], na_position="first", kind="stable")
    has_id = order["ghl_id"].notna()
    keep = ~order["ghl_id"].duplicated(keep="last") | ~has_id
    return order[keep].sort_values("_order").drop(columns="_order").reset_index(drop=True)


def _raw_of(row: pd.Series) -> dict:
    raw = row.get("_raw")
    if isinstance(raw, dict):
        return raw
    if raw is not None and hasattr(raw, "items"):
        return dict(raw.items())
    return {k: v for k, v in row.items() if not str(k).startswith("_")}  # a frame built without _raw


def validate_calls(frame: pd.DataFrame, *, window_start: datetime, window_end: datetime) -> ValidationResult:
    """Split ``frame`` into valid rows and rejects (with the rules each reject broke and its raw record)."""
    frame = collapse_duplicates(frame.reset_index(drop=True))
    schema = calls_schema(window_start=window_start, window_end=window_end)
    broken: dict[int, dict[str, list[str]]] = {}
    try:
        schema.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases
        if cases["index"].isna().any():  # a whole-column failure (missing column, wrong dtype) is our bug
            raise
        for column, check, value, index in cases[["column", "check", "failure_case", "index"]].itertuples(
            index=False
        ):
            # "_problems:parse_problems" reads badly; the record-level rule is just "parse_problems".
            rule = check if column == "_problems" else f"{column}:{check}"
            details = broken.setdefault(int(index), {})
            details.setdefault(rule, []).append(f"{column}={value!r}")

    bad = frame.index.isin(list(broken))
    valid = frame.loc[~bad, list(ALL_CALLS_COLUMNS)].reset_index(drop=True)
    rejects = pd.DataFrame(
        [
            {
                "ghl_id": _none(frame.at[i, "ghl_id"]),
                "project_name": _none(frame.at[i, "project_name"]),
                "ghl_location_id": _none(frame.at[i, "ghl_location_id"]),
                "rule": ";".join(sorted(rules)),
                "detail": "; ".join(d for rule in sorted(rules) for d in rules[rule]),
                "raw": _raw_of(frame.loc[i]),
            }
            for i, rules in sorted(broken.items())
        ],
        columns=list(REJECT_COLUMNS),
        dtype=object,
    )
    return ValidationResult(valid=valid, rejects=rejects)


def _none(value: object) -> object:
    return None if value is None or (not isinstance(value, list | tuple | dict) and pd.isna(value)) else value


def unrecognised_rejects(
    messages: Iterable[UnrecognisedMessage], *, project_name: str, location_id: str
) -> pd.DataFrame:
    """Reject rows (``UNRECOGNISED_RULE``, the reason, the raw JSON) for messages that are not kept calls."""
    rows = []
    for message in messages:
        raw_location = message.raw.get("locationId")
        rows.append(
            {
                "ghl_id": message.id,
                "project_name": project_name,
                "ghl_location_id": raw_location
                if isinstance(raw_location, str) and raw_location
                else location_id,
                "rule": UNRECOGNISED_RULE,
                "detail": message.reason,
                "raw": dict(message.raw),
            }
        )
    return pd.DataFrame(rows, columns=list(REJECT_COLUMNS), dtype=object)
