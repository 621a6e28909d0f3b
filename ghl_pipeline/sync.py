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
from ghl_pipeline.calls.validation import unrecognised_rejects, validate_calls
from ghl_pipeline.ghl.client import GHLClient
from ghl_pipeline.ghl.errors import (
    GHLAccessError,
    GHLAuthError,
    GHLBadRequestError,
    GHLError,
    GHLForbiddenError,
    GHLNotFoundError,
    GHLPaginationError,
    GHLRateLimitBudgetError,
    GHLScopeError,
    GHLUnavailableError,
)
from ghl_pipeline.ghl.models import CallPage, CallRecord, Contact, Location, UnrecognisedMessage
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
# When GHL refuses contacts, a cached contact of any age beats no name at all.
ANY_AGE = timedelta(days=3650)

# Enrichments a sync can do without, and the all_calls columns each fills. When GHL refuses one, the
# calls still land (those columns null on new rows; a stored row keeps its value) and the result says
# which and why.
ENRICHMENT_COLUMNS: dict[str, tuple[str, ...]] = {
    "users": ("agent_name",),
    "contacts": ("lead_name", "phone_number"),
    "location": (),
}
# What makes an enrichment unavailable rather than the sync impossible: a missing scope, an endpoint
# refused or removed (``GET /users/`` in API v3), GHL failing for good on it. An invalid token
# (GHLAuthError), the daily budget or a proxy block are not here: the export would fail the same way.
ENRICHMENT_ERRORS: tuple[type[GHLError], ...] = (
    GHLScopeError,
    GHLForbiddenError,
    GHLBadRequestError,
    GHLNotFoundError,
    GHLUnavailableError,
    GHLPaginationError,
)


@dataclass
class Counts:
    """What a sync did: records fetched from GHL, and what happened to them in ``all_calls``."""

    fetched: int = 0
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    # Of ``rejected``: messages of the call export that are not a call type all_calls keeps.
    unrecognised: int = 0

    def add(self, other: Counts) -> None:
        """Add ``other`` into these counts."""
        self.fetched += other.fetched
        self.new += other.new
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.rejected += other.rejected
        self.unrecognised += other.unrecognised

    def as_dict(self) -> dict[str, int]:
        """The counts under the names the run summary and metadata use."""
        return {
            "fetched": self.fetched,
            "new_records": self.new,
            "updated_records": self.updated,
            "unchanged_records": self.unchanged,
            "rejected_records": self.rejected,
            "unrecognised_records": self.unrecognised,
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
    # Enrichment GHL would not give, and why: {"users": "GET /users/ refused (400 ...); ..."}.
    enrichment_missing: dict[str, str] = field(default_factory=dict)
    # The windows synced, each with GHL's total for it (several when one run syncs separate spans).
    windows: list[tuple[datetime, datetime, int | None]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ProjectContext:
    """What a sync needs to know about a project's GHL location before it fetches calls."""

    timezone: str
    region: str | None


def resolve_location(
    client: GHLClient, project: Project, missing: dict[str, str] | None = None
) -> ProjectContext:
    """The project's time zone (configured, else the location's, else UTC) and phone region.

    ``GET /locations/{id}`` needs the ``locations.readonly`` scope; a project with a configured time
    zone still syncs when the location cannot be read (noted in ``missing["location"]``). Without
    one the error is raised: every call date would depend on the zone.
    """
    location: Location | None
    try:
        location = client.get_location()
    except ENRICHMENT_ERRORS as exc:  # a bad token (GHLAuthError) stops here
        if not project.timezone:
            raise
        location = None
        if missing is not None:
            missing["location"] = (
                f"GET /locations/{{id}} refused ({_why(exc)}); time zone from the project, "
                "phone region from each contact"
            )
    timezone = project.timezone or (location.timezone if location else None) or "UTC"
    zone_info(timezone)  # a bad zone name fails here, before any call is fetched
    region = location.country.upper() if location and location.country else None
    return ProjectContext(timezone=timezone, region=region)


def _why(exc: GHLError) -> str:
    return f"HTTP {exc.status}: {exc.message}" if exc.status is not None else exc.message


def sync_project(
    *,
    engine: sa.Engine,
    client: GHLClient,
    project: Project,
    span: DayRange | ExactWindow,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> SyncResult:
    """Sync ``project``'s calls in ``span`` into ``all_calls`` and return the counts.

    Enrichment GHL refuses (users, contacts, the location) leaves its columns null and is named in
    ``SyncResult.enrichment_missing``; messages of the call export that are not kept call types land in
    ``all_calls_rejects`` (counted in ``rejected`` and ``unrecognised``).
    """
    missing: dict[str, str] = {}
    context = resolve_location(client, project, missing)
    start, end = span.window(context.timezone)
    result = SyncResult(project.name, context.timezone, start, end, enrichment_missing=missing)
    try:
        users = client.list_users()
    except ENRICHMENT_ERRORS as exc:
        users = {}
        missing["users"] = _why(exc)
    pages = _noting_total(client.iter_call_pages(start=start, end=end), result)
    for chunk, unrecognised in _chunks(pages, CHUNK_CALLS):
        contacts = _contacts_for(engine, client, project.location_id, chunk, missing)
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
        keep = tuple(column for name in missing for column in ENRICHMENT_COLUMNS.get(name, ()))
        _upsert_by_date(engine, checked.valid, result, keep_stored=keep)
        result.totals.fetched += len(chunk)
        result.totals.rejected += len(checked.rejects)
        for call_date, n in _rejects_by_date(frame, checked.rejects).items():
            result.by_date[call_date].rejected += n
        for call_date, n in _fetched_by_date(chunk, context.timezone).items():
            result.by_date[call_date].fetched += n
        if unrecognised:
            _reject_unrecognised(engine, project, unrecognised, context.timezone, result)
    result.requests = client.request_count
    result.windows.append((start, end, result.ghl_total))
    record_sync(
        engine, project_name=project.name, timezone=context.timezone, window_start=start, window_end=end
    )
    if missing:
        log.warning("synced %s without %s: %s", project.name, ", ".join(sorted(missing)), missing)
    if result.totals.unrecognised:
        log.warning(
            "%s: %d message(s) of the call export are not a call type all_calls keeps; in all_calls_rejects"
            " (rule unrecognised_call_type)",
            project.name,
            result.totals.unrecognised,
        )
    log.info(
        "synced %s %s..%s: %s",
        project.name,
        start.isoformat(),
        end.isoformat(),
        result.totals.as_dict(),
    )
    return result


def _reject_unrecognised(
    engine: sa.Engine,
    project: Project,
    messages: list[UnrecognisedMessage],
    timezone: str,
    result: SyncResult,
) -> None:
    """File the export's non-call messages as rejects and count them per local day where dated."""
    insert_rejects(
        engine, unrecognised_rejects(messages, project_name=project.name, location_id=project.location_id)
    )
    zone = zone_info(timezone)
    result.totals.fetched += len(messages)
    result.totals.rejected += len(messages)
    result.totals.unrecognised += len(messages)
    for message in messages:
        if message.date_added is not None:
            day = result.by_date[message.date_added.astimezone(zone).date()]
            day.fetched += 1
            day.rejected += 1
            day.unrecognised += 1


def _noting_total(pages: Iterable[CallPage], result: SyncResult) -> Iterator[CallPage]:
    for page in pages:
        if result.ghl_total is None and page.total is not None:
            result.ghl_total = page.total
        yield page


def _chunks(
    pages: Iterable[CallPage], size: int
) -> Iterator[tuple[list[CallRecord], list[UnrecognisedMessage]]]:
    chunk: list[CallRecord] = []
    unrecognised: list[UnrecognisedMessage] = []
    for page in pages:
        chunk.extend(page.calls)
        unrecognised.extend(page.unrecognised)
        if len(chunk) + len(unrecognised) >= size:
            yield chunk, unrecognised
            chunk, unrecognised = [], []
    if chunk or unrecognised:
        yield chunk, unrecognised


def _contacts_for(
    engine: sa.Engine,
    client: GHLClient,
    location_id: str,
    calls: list[CallRecord],
    enrichment_missing: dict[str, str],
) -> dict[str, Contact]:
    """Contacts of these calls: from the cache that outlives runs, fetching only the unknown or stale.

    When GHL refuses contacts, the cache (even stale) is all there is, and the sync says so.
    """
    wanted = {c.contact_id for c in calls if c.contact_id}
    if "contacts" in enrichment_missing:  # refused earlier in this sync: do not ask again
        return cached_contacts(engine, location_id, wanted, max_age=ANY_AGE)
    known = cached_contacts(engine, location_id, wanted, max_age=CONTACT_MAX_AGE)
    missing = wanted - known.keys()
    if missing:
        try:
            fetched = client.fetch_contacts(missing)
        except ENRICHMENT_ERRORS as exc:
            enrichment_missing["contacts"] = _why(exc)
            stale = cached_contacts(engine, location_id, missing, max_age=ANY_AGE)
            known.update(stale)
            return known
        store_contacts(engine, location_id, fetched.values())
        known.update(fetched)
    return known


def _upsert_by_date(
    engine: sa.Engine, valid: pd.DataFrame, result: SyncResult, *, keep_stored: tuple[str, ...] = ()
) -> None:
    """Upsert per local call date, so each ``date`` partition gets its own exact counts."""
    if valid.empty:
        return
    for call_date, rows in valid.groupby("call_date", sort=True):
        counts = upsert_calls(engine, rows, keep_stored=keep_stored)
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
