"""Sync one project's calls for one window: GHL → mapping → validation → upsert.

This is the pipeline's one unit of work, used by the partitioned asset, the dashboard's job and the
CLI alike. It knows nothing of Dagster: it takes a client and an engine and returns counts.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import pandas as pd
import sqlalchemy as sa

from ghl_pipeline.calls.mapping import calls_to_frame
from ghl_pipeline.calls.validation import validate_calls
from ghl_pipeline.ghl.client import GHLClient
from ghl_pipeline.ghl.errors import (
    GHLAccessError,
    GHLAuthError,
    GHLError,
    GHLPaginationError,
    GHLRateLimitBudgetError,
    GHLScopeError,
)
from ghl_pipeline.ghl.models import CallPage, CallRecord, Contact, Location
from ghl_pipeline.warehouse.contacts import cached_contacts, store_contacts
from ghl_pipeline.warehouse.projects import Project
from ghl_pipeline.warehouse.sync_state import record_sync
from ghl_pipeline.warehouse.upsert import insert_rejects, upsert_calls
from ghl_pipeline.windows import DayRange, ExactWindow, zone_info

log = logging.getLogger(__name__)

# Calls are mapped and upserted in chunks of this many records: big enough that the contact lookup
# and the upsert run in bulk, small enough that a busy month never sits in memory at once.
CHUNK_CALLS = 5_000
# A cached contact older than this is fetched again (names and numbers change, rarely).
CONTACT_MAX_AGE = timedelta(days=7)


@dataclass
class Counts:
    """What a sync did: records fetched from GHL, and what happened to them in ``all_calls``."""

    fetched: int = 0
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0

    def add(self, other: Counts) -> None:
        """Add ``other`` into these counts."""
        self.fetched += other.fetched
        self.new += other.new
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.rejected += other.rejected

    def as_dict(self) -> dict[str, int]:
        """The counts under the names the run summary and metadata use."""
        return {
            "fetched": self.fetched,
            "new_records": self.new,
            "updated_records": self.updated,
            "unchanged_records": self.unchanged,
            "rejected_records": self.rejected,
        }


@dataclass
class SyncResult:
    """The outcome of syncing one project over one window."""

    project_name: str
    timezone: str
    window_start: datetime
    window_end: datetime
    totals: Counts = field(default_factory=Counts)
    # Counts per local call date (the ``date`` partition the rows belong to).
    by_date: dict[date, Counts] = field(default_factory=lambda: defaultdict(Counts))
    requests: int = 0
    # GHL's own count of call messages in the window (the export's ``total``, first page).
    ghl_total: int | None = None


@dataclass(frozen=True, slots=True)
class ProjectContext:
    """What a sync needs to know about a project's GHL location before it fetches calls."""

    timezone: str
    region: str | None


def resolve_location(client: GHLClient, project: Project) -> ProjectContext:
    """The project's time zone (configured, else the location's, else UTC) and phone region.

    ``GET /locations/{id}`` needs the ``locations.readonly`` scope; a token without it still syncs
    when the project has a time zone configured.
    """
    location: Location | None
    try:
        location = client.get_location()
    except GHLScopeError:  # a bad token (GHLAuthError) stops here; only a missing scope is survivable
        if not project.timezone:
            raise
        location = None
    timezone = project.timezone or (location.timezone if location else None) or "UTC"
    zone_info(timezone)  # a bad zone name fails here, before any call is fetched
    region = location.country.upper() if location and location.country else None
    return ProjectContext(timezone=timezone, region=region)


def sync_project(
    *,
    engine: sa.Engine,
    client: GHLClient,
    project: Project,
    span: DayRange | ExactWindow,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> SyncResult:
    """Sync ``project``'s calls in ``span`` into ``all_calls`` and return the counts."""
    context = resolve_location(client, project)
    start, end = span.window(context.timezone)
    result = SyncResult(project.name, context.timezone, start, end)
    users = client.list_users()
    for chunk in _chunks(_noting_total(client.iter_call_pages(start=start, end=end), result), CHUNK_CALLS):
        contacts = _contacts_for(engine, client, project.location_id, chunk)
        frame = calls_to_frame(
            chunk,
            project_name=project.name,
            location_id=project.location_id,
            timezone=context.timezone,
            region=context.region,
            users=users,
            contacts=contacts,
            synced_at=now(),
        )
        checked = validate_calls(frame, window_start=start, window_end=end)
        if len(checked.rejects):
            insert_rejects(engine, checked.rejects)
        _upsert_by_date(engine, checked.valid, result)
        result.totals.fetched += len(chunk)
        result.totals.rejected += len(checked.rejects)
        for call_date, n in _rejects_by_date(frame, checked.rejects).items():
            result.by_date[call_date].rejected += n
        for call_date, n in _fetched_by_date(chunk, context.timezone).items():
            result.by_date[call_date].fetched += n
    result.requests = client.request_count
    record_sync(
        engine, project_name=project.name, timezone=context.timezone, window_start=start, window_end=end
    )
    log.info(
        "synced %s %s..%s: %s",
        project.name,
        start.isoformat(),
        end.isoformat(),
        result.totals.as_dict(),
    )
    return result


def _noting_total(pages: Iterable[CallPage], result: SyncResult) -> Iterator[CallPage]:
    for page in pages:
        if result.ghl_total is None and page.total is not None:
            result.ghl_total = page.total
        yield page


def _chunks(pages: Iterable, size: int) -> Iterator[list[CallRecord]]:
    chunk: list[CallRecord] = []
    for page in pages:
        chunk.extend(page.calls)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _contacts_for(
    engine: sa.Engine, client: GHLClient, location_id: str, calls: list[CallRecord]
) -> dict[str, Contact]:
    """Contacts of these calls: from the cache that outlives runs, fetching only the unknown or stale."""
    wanted = {c.contact_id for c in calls if c.contact_id}
    known = cached_contacts(engine, location_id, wanted, max_age=CONTACT_MAX_AGE)
    missing = wanted - known.keys()
    if missing:
        fetched = client.fetch_contacts(missing)
        store_contacts(engine, location_id, fetched.values())
        known.update(fetched)
    return known


def _upsert_by_date(engine: sa.Engine, valid: pd.DataFrame, result: SyncResult) -> None:
    """Upsert per local call date, so each ``date`` partition gets its own exact counts."""
    if valid.empty:
        return
    for call_date, rows in valid.groupby("call_date", sort=True):
        counts = upsert_calls(engine, rows)
        day = _as_date(call_date)
        for target in (result.totals, result.by_date[day]):
            target.new += counts.new
            target.updated += counts.updated
            target.unchanged += counts.unchanged


def _as_date(value: object) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return pd.Timestamp(value).date()


def _fetched_by_date(calls: list[CallRecord], timezone: str) -> dict[date, int]:
    zone = zone_info(timezone)
    out: dict[date, int] = defaultdict(int)
    for call in calls:
        if call.date_added is not None:
            out[call.date_added.astimezone(zone).date()] += 1
    return out


def _rejects_by_date(frame: pd.DataFrame, rejects: pd.DataFrame) -> dict[date, int]:
    """Rejected rows per local call date, where their start time was readable (else only in totals)."""
    if rejects.empty:
        return {}
    dates = frame.loc[frame["ghl_id"].isin(rejects["ghl_id"].dropna()), ["ghl_id", "call_date"]]
    dates = dates.drop_duplicates("ghl_id").dropna()
    return {_as_date(day): int(n) for day, n in dates["call_date"].value_counts().items()}


# --------------------------------------------------------------------------------------------------
# One project's failure is its own (tenant isolation), and a database blip is not a failure.

# A sync is retried whole after a transient database error (a restart, a dropped connection): the
# upsert is idempotent and newest-wins, so redoing a window can only complete it. ~1+2+4+8+16+30 s
# rides out a Postgres restart or a failover without failing a month of work.
DB_RETRY_WAITS = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0)


@dataclass(frozen=True, slots=True)
class ProjectFailure:
    """Why one project could not be synced: a kind the sensors act on and a reason for a person."""

    kind: str  # auth | ghl_unavailable | bad_data | database | error
    reason: str

    def as_dict(self) -> dict[str, str]:
        """The failure as the run summary writes it."""
        return {"kind": self.kind, "reason": self.reason}


def is_transient_db_error(exc: BaseException) -> bool:
    """A database error that a retry can fix: the connection broke, the server restarted or went away."""
    if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError):
        return not _is_permission_error(exc)
    import psycopg2  # the driver our URLs name; raw COPY connections raise its errors unwrapped

    return isinstance(exc, psycopg2.OperationalError | psycopg2.InterfaceError)


def _is_permission_error(exc: BaseException) -> bool:
    import psycopg2.errors

    orig = getattr(exc, "orig", exc)
    return isinstance(orig, psycopg2.errors.InsufficientPrivilege)


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()
    return text[0] if text else type(orig).__name__


def classify_failure(exc: BaseException) -> ProjectFailure:
    """The kind and a one-line reason of a project's failed sync (never a token, never SQL parameters)."""
    if isinstance(exc, GHLError):
        if isinstance(exc, GHLAuthError):
            return ProjectFailure("auth", "GHL token revoked or invalid")
        if isinstance(exc, GHLScopeError):
            return ProjectFailure("auth", f"GHL token lacks a scope: {exc.message}")
        if isinstance(exc, GHLAccessError):
            return ProjectFailure("auth", f"GHL refused access: {exc.message}")
        if isinstance(exc, GHLPaginationError):
            return ProjectFailure("bad_data", f"GHL's export misbehaved: {exc.message}")
        if isinstance(exc, GHLRateLimitBudgetError):
            return ProjectFailure("ghl_unavailable", f"GHL's daily request budget is spent: {exc.message}")
        return ProjectFailure("ghl_unavailable", f"GHL unavailable: {exc.message}")
    if _is_permission_error(exc):
        return ProjectFailure("database", f"database permission denied: {_first_line(exc)}")
    if isinstance(exc, sa.exc.SQLAlchemyError) or is_transient_db_error(exc):
        return ProjectFailure("database", f"database error: {_first_line(exc)}")
    if isinstance(exc, ValueError | KeyError | TypeError):
        return ProjectFailure("bad_data", f"{type(exc).__name__}: {_first_line(exc)}")
    return ProjectFailure("error", f"{type(exc).__name__}: {_first_line(exc)}")


def retrying_db(
    work: Callable[[], SyncResult], *, label: str, sleep: Callable[[float], None] = time.sleep
) -> SyncResult:
    """Run ``work``, again after each transient database error, waiting ``DB_RETRY_WAITS`` in turn."""
    for wait in (*DB_RETRY_WAITS, None):
        try:
            return work()
        except Exception as exc:
            if wait is None or not is_transient_db_error(exc):
                raise
            log.warning(
                "%s: database connection lost (%s); retrying in %.0f s", label, _first_line(exc), wait
            )
            sleep(wait)
    raise AssertionError("unreachable")
