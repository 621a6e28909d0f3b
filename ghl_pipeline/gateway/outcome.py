"""What a finished sync means for a person: the toast text and the list of projects that failed.

The run side writes ``ghl/summary`` (JSON) with per-project counts under ``projects`` and, for each
project that failed, ``failed_projects: {NAME: {"kind": ..., "reason": ...}}``. This module turns that
(plus the run's status and, for a run that failed before writing a summary, the failure's message)
into one line the dashboard can show as is. Nothing here names a Dagster job or op, or shows a
traceback: those mean nothing to the person who clicked the button.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

FAILURE_KINDS = frozenset({"auth", "ghl_unavailable", "bad_data", "database", "refused", "error"})
MAX_REASON = 200
GENERIC_FAILURE = "the sync stopped unexpectedly; an operator can see why in the Dagster UI"

# Words that only make sense inside the pipeline; a reason containing one is replaced, not shown.
_INTERNAL = re.compile(
    r"sync_ghl_calls|sync_calls|health_check|refresh_all_calls|dagster|Traceback|File \"|"
    r"Error occurred while executing|\bop\b|\bstep\b|Steps failed",
    re.IGNORECASE,
)
# "Invalid sync_ghl_calls config: " and similar prefixes the job puts before the user's own sentence.
_CONFIG_PREFIX = re.compile(r"^\s*Invalid [\w.]+ config:\s*", re.IGNORECASE)
# The job's config field names as a person would say them.
_FIELD_PREFIXES = (
    ("date_from/date_to: ", "Dates: "),
    ("date_from: ", "Start date: "),
    ("date_to: ", "End date: "),
    ("project_name: ", "Project: "),
)


@dataclass(frozen=True)
class FailedProject:
    """One project the run could not sync, and why, in words for a person."""

    name: str
    kind: str
    reason: str

    def as_json(self) -> dict[str, str]:
        """The ``failedProjects`` entry of ``GET /sync/{runId}``."""
        return {"name": self.name, "kind": self.kind, "reason": self.reason}


def failed_projects(summary: Mapping[str, Any]) -> tuple[FailedProject, ...]:
    """The summary's ``failed_projects``, sorted by name; malformed entries become kind ``error``."""
    raw = summary.get("failed_projects")
    if not isinstance(raw, Mapping):
        return ()
    failed = []
    for name, detail in raw.items():
        detail = detail if isinstance(detail, Mapping) else {}
        kind = detail.get("kind")
        kind = kind if isinstance(kind, str) and kind in FAILURE_KINDS else "error"
        reason = person_reason(detail.get("reason") if isinstance(detail.get("reason"), str) else None)
        failed.append(FailedProject(name=str(name), kind=kind, reason=reason))
    return tuple(sorted(failed, key=lambda f: f.name))


def person_reason(raw: str | None) -> str:
    """``raw`` as one short line for a person, or a generic sentence when it is internal or empty."""
    text = (raw or "").strip()
    text = text.splitlines()[0].strip() if text else ""
    text = _CONFIG_PREFIX.sub("", text)
    for prefix, spoken in _FIELD_PREFIXES:
        if text.startswith(prefix):
            text = spoken + text[len(prefix) :]
            break
    if not text or _INTERNAL.search(text):
        return GENERIC_FAILURE
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 1] + "…"


def records_phrase(new_records: int | None) -> str:
    """ "Synced 24 new call records", "Synced 1 new call record", or "No new call records" for 0."""
    count = new_records or 0
    if count == 0:
        return "No new call records"
    return f"Synced {count} new call record{'' if count == 1 else 's'}"


def _failures_phrase(failed: Sequence[FailedProject]) -> str:
    return "; ".join(f"{f.name} — {f.reason}" for f in failed)


def outcome(status: str, *, synced_projects: int, failed: Sequence[FailedProject]) -> str | None:
    """``success``, ``partial`` (some projects synced, some failed), ``failed``, or ``None`` while running.

    ``partial`` and ``success`` runs changed the table (the dashboard should re-fetch it); a ``failed``
    run synced nothing anyone asked for.
    """
    if status == "SUCCESS":
        return "partial" if failed else "success"
    if status in ("FAILURE", "CANCELED"):
        # Projects in the summary synced and their rows landed, whatever stopped the rest.
        return "partial" if synced_projects else "failed"
    return None


def toast_message(
    status: str,
    *,
    new_records: int | None,
    synced_projects: int,
    failed: Sequence[FailedProject],
    error: str | None,
) -> str | None:
    """The toast text for a finished run; ``None`` while it is still running.

    - all good: "Synced 24 new call records"
    - partial: "Synced 240 new call records; 1 project failed: Acme Roofing — GHL token revoked"
      (no project named: "Synced 240 new call records; the sync then failed: <reason>")
    - every project failed: "Sync failed for Acme Roofing — GHL token revoked"
    - failed before any project ran: "Sync failed: <reason>"
    """
    kind = outcome(status, synced_projects=synced_projects, failed=failed)
    if kind is None:
        return None
    if kind == "success":
        return records_phrase(new_records)
    if kind == "partial" and not failed:
        # The run stopped after some projects synced, and named no failed project (say, a summary
        # written by an older run side that stopped at the first failure).
        stopped = "was canceled" if status == "CANCELED" else f"then failed: {person_reason(error)}"
        return f"{records_phrase(new_records)}; the sync {stopped}"
    if kind == "partial":
        count = len(failed)
        noun = "project" if count == 1 else "projects"
        return f"{records_phrase(new_records)}; {count} {noun} failed: {_failures_phrase(failed)}"
    if status == "CANCELED":
        return "Sync was canceled before it finished"
    if len(failed) == 1:
        return f"Sync failed for {_failures_phrase(failed)}"
    if failed:
        return f"Sync failed for {len(failed)} projects: {_failures_phrase(failed)}"
    return f"Sync failed: {person_reason(error)}"
