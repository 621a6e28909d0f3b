"""The one client that talks to GoHighLevel (API v2, ``services.leadconnectorhq.com``).

Written against the reference in ``shared/ghl-api/README.md``; section numbers below point there.
Everything GHL sends is parsed here, once, into the models of ``ghl.models``.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx
import tenacity

from ghl_pipeline.ghl.errors import (
    GHLAccessError,
    GHLAuthError,
    GHLBadRequestError,
    GHLBlockedError,
    GHLError,
    GHLForbiddenError,
    GHLNotFoundError,
    GHLPaginationError,
    GHLRateLimitBudgetError,
    GHLScopeError,
    GHLUnavailableError,
)
from ghl_pipeline.ghl.models import (
    CallPage,
    CallRecord,
    Contact,
    Location,
    Secret,
    UnrecognisedMessage,
    User,
    parse_timestamp,
)
from ghl_pipeline.ghl.parsing import (
    classify_message,
    is_call_message,
    messages_of_page,
    parse_call_record,
    parse_contact,
    parse_location,
    parse_user,
    unrecognised_message,
)
from ghl_pipeline.ghl.ratelimit import InMemoryRateLimiter, RateLimiter, RateLimitHeaders, retry_after_seconds

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://services.leadconnectorhq.com"
USER_AGENT = "ghl-pipeline/0.1 (call sync for a call-center dashboard; python-httpx)"

# The ``Version`` header each service documents (README §1). Conversations (export included) are on
# 2021-04-15; contacts, users and locations on 2021-07-28.
SERVICE_VERSIONS: Mapping[str, str] = {
    "conversations": "2021-04-15",
    "contacts": "2021-07-28",
    "users": "2021-07-28",
    "locations": "2021-07-28",
}

EXPORT_PATH = "/conversations/messages/export"
EXPORT_PAGE_SIZE = 500  # the export's maximum (min 10, max 500; README §4)
CONTACT_SEARCH_PAGE_SIZE = 500  # POST /contacts/search pageLimit maximum (README §7)
USER_SEARCH_PAGE_SIZE = 100  # GET /users/search: default 25, maximum undocumented
# Cursor trouble: 5xx/timeouts a cursor request may take before the walk restarts without it, and
# restarts in a row that bring nothing new before the walk gives up.
CURSOR_SERVER_ERROR_ATTEMPTS = 2
MAX_CURSOR_RESTARTS = 3
# What a 403 without a JSON body means: not GHL's NestJS answer but something in front of it
# (Cloudflare's error 1010 refuses some User-Agents), so not a token or location problem.
NOT_JSON_403 = "GHL refused the request (not JSON: a proxy or firewall?)"

# GHL ids are short alphanumerics. Ids arrive in data (a call's contactId) and go into URL paths, so
# anything else is refused rather than quoted into a different path.
_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


def _valid_id(value: object) -> bool:
    return isinstance(value, str) and bool(_ID_PATTERN.match(value))


def _iso_utc(moment: datetime) -> str:
    """Export ``startDate``/``endDate``: ISO-8601 UTC with milliseconds, like GHL's own timestamps."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def _aware(moment: datetime, name: str) -> datetime:
    if not isinstance(moment, datetime) or moment.tzinfo is None:
        raise ValueError(f"{name} must be a timezone-aware datetime")
    return moment.astimezone(UTC)


class _Retryable(Exception):
    """One failed attempt that another attempt may fix (429, 5xx, timeout, dropped connection)."""

    def __init__(self, reason: str, *, status: int | None = None, wait: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.wait = wait


class GHLClient:
    """GHL API v2 for one location (= one project): calls, users, contacts, the location itself.

    Synchronous, thread-unsafe (one per project and run), and a context manager.
    """

    def __init__(
        self,
        *,
        token: Secret | str,
        location_id: str,
        project_name: str,
        base_url: str = DEFAULT_BASE_URL,
        transport: httpx.BaseTransport | None = None,
        limiter: RateLimiter | None = None,
        timeout: float = 30.0,
        max_attempts: int = 6,
        max_backoff: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
        contact_search_threshold: int = 10,
    ) -> None:
        if not _valid_id(location_id):
            raise ValueError(f"not a GHL location id: {location_id!r}")
        if max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        self._token = token if isinstance(token, Secret) else Secret(token)
        self.location_id = location_id
        self.project_name = project_name
        self._limiter: RateLimiter = limiter if limiter is not None else InMemoryRateLimiter()
        self._max_attempts = max_attempts
        self._max_backoff = max_backoff
        self._sleep = sleep
        self._contact_search_threshold = contact_search_threshold
        self._request_count = 0
        self._users: dict[str, User] | None = None
        self._location: Location | None = None
        self._location_error: GHLError | None = None
        self._contact_total: int | None = None  # learnt from a contact search; prices the next one
        self._http = httpx.Client(
            base_url=base_url,
            transport=transport,
            timeout=httpx.Timeout(timeout),
            headers={
                # httpx masks Authorization in its Headers repr; the token appears nowhere else.
                "Authorization": f"Bearer {self._token.reveal()}",
                "Accept": "application/json",
                # Cloudflare in front of GHL has been seen refusing Python's default User-Agent (README §1).
                "User-Agent": USER_AGENT,
            },
        )

    def __repr__(self) -> str:
        return f"GHLClient(project_name={self.project_name!r}, location_id={self.location_id!r})"

    def __enter__(self) -> GHLClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._http.close()

    @property
    def request_count(self) -> int:
        """HTTP requests sent so far, retries included."""
        return self._request_count

    # ------------------------------------------------------------------ calls

    def iter_call_pages(self, *, start: datetime, end: datetime) -> Iterator[CallPage]:
        """Stream the location's call messages created in ``[start, end)``, page by page (oldest first).

        Uses ``GET /conversations/messages/export`` (``channel=Call``, 500 per page, ``nextCursor``).
        Messages that are not a call type ``all_calls`` keeps come back in ``CallPage.unrecognised``
        with the reason, never dropped. Cursor trouble of any shape (a 4xx, 5xx that outlast a few
        attempts, an empty or last page while ``total`` says more are due) restarts the walk from the
        last ``dateAdded`` seen and drops the messages already yielded, so nothing is missed or yielded
        twice. A repeated cursor or page raises ``GHLPaginationError``.
        """
        start_utc = _aware(start, "start")
        end_utc = _aware(end, "end")
        if end_utc < start_utc:
            raise ValueError("end must not be before start")
        if end_utc == start_utc:
            return

        seen_ids: set[str] = set()
        seen_cursors: set[str] = set()
        cursor: str | None = None
        resume_from = start_utc
        last_added: datetime | None = None
        restarted = False
        restarts_without_progress = 0
        empty_pages = 0
        # What the current query (since the last restart) promised and delivered: GHL's ``total`` counts
        # every message from ``resume_from`` on, so a walk that ends short of it lost a page.
        query_total: int | None = None
        query_served = 0
        while True:
            params = {
                "locationId": self.location_id,
                "channel": "Call",
                "limit": EXPORT_PAGE_SIZE,
                "sortBy": "createdAt",
                "sortOrder": "asc",
                "startDate": _iso_utc(resume_from),
                "endDate": _iso_utc(end_utc),
            }
            if cursor is not None:
                params["cursor"] = cursor
            trouble: str | None = None
            status: int | None = None
            page: CallPage | None = None
            next_cursor: str | None = None
            try:
                body = self._request(
                    "GET",
                    EXPORT_PATH,
                    service="conversations",
                    params=params,
                    # A dead cursor may answer 5xx for ever (GHL documents no error for it); a restart
                    # costs one page, so a cursor request gets few attempts before the walk restarts.
                    server_error_attempts=CURSOR_SERVER_ERROR_ATTEMPTS if cursor is not None else None,
                )
            except (GHLBadRequestError, GHLNotFoundError, GHLUnavailableError) as exc:
                if cursor is None:
                    raise
                # An expired cursor (2 minutes after the last request, README §4; GHL's answer for it
                # is undocumented, so any 4xx or lasting 5xx on a cursor request counts).
                trouble, status = f"export cursor failed: {exc.message}", exc.status
            else:
                messages, next_cursor, total = self._export_page(body)
                if cursor is None:
                    query_total, query_served = total, 0
                query_served += len(messages)
                page, last_added = self._page(messages, seen_ids, total, next_cursor, last_added)
                if query_total is not None and query_served < query_total and not next_cursor:
                    # A 200 that ends the walk (an empty page, or no cursor) while GHL's own total says
                    # more are due: the cursor lost its place. Never end a window early without a word.
                    trouble, status = (
                        f"the export ended after {query_served} of the {query_total} messages it announced",
                        200,
                    )
                elif query_total is not None and query_served < query_total and not messages:
                    trouble, status = (
                        f"the export sent an empty page after {query_served} of {query_total} messages",
                        200,
                    )

            fresh = len(page.calls) + len(page.unrecognised) if page is not None else 0
            if trouble is not None:
                if page is not None and fresh:
                    yield CallPage(
                        calls=page.calls, total=page.total, next_cursor=None, unrecognised=page.unrecognised
                    )
                restarts_without_progress = 0 if fresh else restarts_without_progress + 1
                if restarts_without_progress >= MAX_CURSOR_RESTARTS:
                    if status == 200:
                        # GHL keeps announcing more than it serves. Stop here, loudly: the
                        # reconciliation check compares what landed with GHL's total and fails.
                        log.warning(
                            "project %r: %s, even after %d restarts; ending the window here",
                            self.project_name,
                            trouble,
                            MAX_CURSOR_RESTARTS,
                        )
                        return
                    raise GHLPaginationError(
                        self.project_name, status, f"{trouble}; the export keeps failing without progress"
                    )
                log.warning(
                    "project %r: %s; restarting from %s",
                    self.project_name,
                    trouble,
                    _iso_utc(last_added or resume_from),
                )
                resume_from = last_added or resume_from
                cursor = None
                restarted = True
                continue

            assert page is not None
            if messages and not fresh and not restarted:
                raise GHLPaginationError(
                    self.project_name, 200, "the export returned a page it had already returned"
                )
            if fresh:
                restarts_without_progress = 0
            restarted = False
            empty_pages = 0 if messages else empty_pages + 1
            if empty_pages > 3:
                raise GHLPaginationError(
                    self.project_name, 200, "the export keeps returning empty pages with a cursor"
                )

            yield page

            if not next_cursor:
                return
            if next_cursor in seen_cursors:
                raise GHLPaginationError(
                    self.project_name, 200, "the export returned a cursor it had already returned"
                )
            seen_cursors.add(next_cursor)
            cursor = next_cursor

    def _page(
        self,
        messages: list[Any],
        seen_ids: set[str],
        total: int | None,
        next_cursor: str | None,
        last_added: datetime | None,
    ) -> tuple[CallPage, datetime | None]:
        """One export page's new messages (calls, unrecognised) and the latest ``dateAdded`` seen so far."""
        calls: list[CallRecord] = []
        unrecognised: list[UnrecognisedMessage] = []
        for raw in messages:
            raw_id = raw.get("id") if isinstance(raw, Mapping) else None
            if isinstance(raw_id, str):
                if raw_id in seen_ids:
                    continue  # overlap after a restart (or a server repeat): never yield twice
                seen_ids.add(raw_id)
            if not isinstance(raw, Mapping):
                unrecognised.append(unrecognised_message(raw, "not an object"))
                continue
            try:
                added = parse_timestamp(raw.get("dateAdded"))
            except ValueError:
                added = None
            if added is not None and (last_added is None or added > last_added):
                last_added = added
            call_type, reason = classify_message(raw)
            if call_type is not None:
                calls.append(parse_call_record(raw))
            else:
                unrecognised.append(unrecognised_message(raw, reason or "not a call"))
        if unrecognised:
            log.warning(
                "project %r: %d message(s) of the call export are not a call type all_calls keeps "
                "(kept as rejects); first: %s",
                self.project_name,
                len(unrecognised),
                unrecognised[0].reason,
            )
        page = CallPage(
            calls=tuple(calls), total=total, next_cursor=next_cursor, unrecognised=tuple(unrecognised)
        )
        return page, last_added

    def iter_conversation_calls(self, conversation_id: str) -> Iterator[CallRecord]:
        """One conversation's call messages, newest first (``GET /conversations/{id}/messages``).

        For re-reading a single thread; the export is the way to enumerate calls (it has a date filter).
        """
        if not _valid_id(conversation_id):
            raise ValueError(f"not a GHL conversation id: {conversation_id!r}")
        path = f"/conversations/{quote(conversation_id, safe='')}/messages"
        last_message_id: str | None = None
        seen: set[str] = set()
        while True:
            params: dict[str, Any] = {"limit": 100}
            if last_message_id:
                params["lastMessageId"] = last_message_id
            body = self._request("GET", path, service="conversations", params=params)
            # Live pages are nested ({"messages": {"messages": [...], "nextPage", "lastMessageId"}}).
            messages, last_message_id, next_page = messages_of_page(body)
            for raw in messages:
                if is_call_message(raw):
                    yield parse_call_record(raw)
            if not next_page or not last_message_id:
                return
            if last_message_id in seen:
                raise GHLPaginationError(self.project_name, 200, "the conversation's messages repeat a page")
            seen.add(last_message_id)

    def _export_page(self, body: Any) -> tuple[list[Any], str | None, int | None]:
        if not isinstance(body, Mapping) or not isinstance(body.get("messages"), list):
            raise GHLError(self.project_name, 200, "the export answered without a messages list")
        next_cursor = body.get("nextCursor")
        if next_cursor is not None and not isinstance(next_cursor, str):
            # Read as "no more pages", a cursor of the wrong type would end the walk early and lose
            # calls without a word.
            raise GHLError(
                self.project_name,
                200,
                f"the export's nextCursor is not a string: {type(next_cursor).__name__}",
            )
        total = body.get("total")
        return (
            body["messages"],
            next_cursor if isinstance(next_cursor, str) and next_cursor else None,
            total if isinstance(total, int) and not isinstance(total, bool) else None,
        )

    # ------------------------------------------------------------- enrichment

    def list_users(self) -> dict[str, User]:
        """The location's users by id (agent names), fetched once per client.

        ``GET /users/`` is deprecated and gone from API v3 (answers 400 "not available in API version
        v3" there); when it is refused, ``GET /users/search`` (which needs the location's companyId)
        is tried. Raises the first error, naming both refusals, when neither can be read.
        """
        if self._users is None:
            try:
                body = self._request(
                    "GET", "/users/", service="users", params={"locationId": self.location_id}
                )
                raw_users = body.get("users") if isinstance(body, Mapping) else None
                users = [parse_user(raw) for raw in (raw_users if isinstance(raw_users, list) else [])]
            except (GHLBadRequestError, GHLNotFoundError, GHLScopeError, GHLForbiddenError) as listed:
                users = self._search_users(listed)
            self._users = {user.id: user for user in users if user is not None}
        return dict(self._users)

    def _search_users(self, listed: GHLError) -> list[User | None]:
        """``GET /users/search?companyId=..&locationId=..``, paged by ``skip``; after ``/users/`` was refused."""
        first = f"GET /users/ refused ({listed.status} {listed.message})"
        try:
            company_id = self.get_location().company_id
        except GHLError as exc:
            raise type(listed)(
                self.project_name,
                listed.status,
                f"{first}; /users/search needs the location's companyId, "
                f"and the location could not be read ({exc.status} {exc.message})",
            ) from None
        if not company_id or not _valid_id(company_id):
            raise type(listed)(
                self.project_name,
                listed.status,
                f"{first}; /users/search needs a companyId, and the location has none",
            )
        users: list[User | None] = []
        skip = 0
        while True:
            params = {
                "companyId": company_id,
                "locationId": self.location_id,
                "skip": str(skip),
                "limit": str(USER_SEARCH_PAGE_SIZE),
            }
            try:
                body = self._request("GET", "/users/search", service="users", params=params)
            except GHLError as exc:
                raise type(exc)(
                    self.project_name,
                    exc.status,
                    f"{first}; GET /users/search refused ({exc.status} {exc.message})",
                ) from None
            raw_users = body.get("users") if isinstance(body, Mapping) else None
            raw_users = raw_users if isinstance(raw_users, list) else []
            users.extend(parse_user(raw) for raw in raw_users)
            count = body.get("count") if isinstance(body, Mapping) else None
            skip += len(raw_users)
            if len(raw_users) < USER_SEARCH_PAGE_SIZE:
                return users
            if isinstance(count, int) and not isinstance(count, bool) and skip >= count:
                return users

    def get_location(self) -> Location:
        """The location's name, IANA time zone, country and companyId, read once per client (``GET /locations/{id}``).

        A refusal is remembered too: the users fallback and the sync ask for the location, and one
        refused request per client is enough.
        """
        if self._location_error is not None:
            raise type(self._location_error)(
                self.project_name, self._location_error.status, self._location_error.message
            )
        if self._location is None:
            path = f"/locations/{quote(self.location_id, safe='')}"
            try:
                body = self._request("GET", path, service="locations")
            except (GHLAccessError, GHLBadRequestError, GHLNotFoundError) as exc:
                self._location_error = exc
                raise
            self._location = parse_location(
                body if isinstance(body, Mapping) else {}, location_id=self.location_id
            )
        return self._location

    def fetch_contacts(self, ids: Collection[str]) -> dict[str, Contact]:
        """The contacts with these ids, by id, in the fewest requests; unknown or invalid ids are left out.

        Few ids: one ``GET /contacts/{id}`` each. Many: pages of ``POST /contacts/search`` (500 a page),
        switching to single GETs as soon as the pages still to read outnumber the contacts still missing.
        """
        wanted: set[str] = set()
        for contact_id in ids:
            if _valid_id(contact_id):
                wanted.add(contact_id)
            elif contact_id:
                log.warning(
                    "project %r: skipping malformed contact id %r", self.project_name, str(contact_id)[:40]
                )
        found: dict[str, Contact] = {}
        complete = False
        if len(wanted) > self._contact_search_threshold and self._search_is_cheaper(len(wanted)):
            found, complete = self._search_contacts(wanted)
        if not complete:
            for contact_id in sorted(wanted - found.keys()):
                contact = self._get_contact(contact_id)
                if contact is not None:
                    found[contact.id] = contact
        return found

    def _search_is_cheaper(self, missing: int) -> bool:
        if self._contact_total is None:
            return True
        return math.ceil(self._contact_total / CONTACT_SEARCH_PAGE_SIZE) < missing

    def _search_contacts(self, wanted: set[str]) -> tuple[dict[str, Contact], bool]:
        """Page the location's contacts; ``(found, complete)``: complete means every contact was seen."""
        found: dict[str, Contact] = {}
        search_after: list[Any] | None = None
        seen_keys: set[str] = set()
        fetched = 0
        while True:
            query: dict[str, Any] = {
                "locationId": self.location_id,
                "pageLimit": CONTACT_SEARCH_PAGE_SIZE,
                "sort": [{"field": "dateAdded", "direction": "asc"}],
            }
            if search_after is not None:
                # The key must be ``searchAfter`` (not ``startAfter``) or later pages come back empty.
                query["searchAfter"] = search_after
            body = self._request("POST", "/contacts/search", service="contacts", json_body=query)
            contacts = body.get("contacts") if isinstance(body, Mapping) else None
            contacts = contacts if isinstance(contacts, list) else []
            total = body.get("total") if isinstance(body, Mapping) else None
            if isinstance(total, int) and not isinstance(total, bool):
                self._contact_total = total
            for raw in contacts:
                contact = parse_contact(raw)
                if contact is not None and contact.id in wanted:
                    found[contact.id] = contact
            fetched += len(contacts)
            missing = len(wanted) - len(found)
            if len(contacts) < CONTACT_SEARCH_PAGE_SIZE:
                return found, True
            if not missing:
                return found, False
            last = contacts[-1].get("searchAfter") if isinstance(contacts[-1], Mapping) else None
            if not isinstance(last, list) or not last:
                return found, False
            key = repr(last)
            if key in seen_keys:
                raise GHLPaginationError(
                    self.project_name, 200, "contact search returned a searchAfter it had returned"
                )
            seen_keys.add(key)
            if self._contact_total is not None:
                pages_left = math.ceil(max(0, self._contact_total - fetched) / CONTACT_SEARCH_PAGE_SIZE)
                if pages_left >= missing:
                    return found, False  # single GETs for the rest are no dearer
            search_after = last

    def _get_contact(self, contact_id: str) -> Contact | None:
        try:
            body = self._request("GET", f"/contacts/{quote(contact_id, safe='')}", service="contacts")
        except (GHLBadRequestError, GHLNotFoundError) as exc:
            # A deleted contact answers 400 "Contact not found" (README §7); the call row still lands.
            log.info("project %r: contact %s not found (%s)", self.project_name, contact_id, exc.message)
            return None
        raw = body.get("contact") if isinstance(body, Mapping) else None
        return parse_contact(raw) if isinstance(raw, Mapping) else None

    # ---------------------------------------------------------------- transport

    def _request(
        self,
        method: str,
        path: str,
        *,
        service: str,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        server_error_attempts: int | None = None,
    ) -> Any:
        """One logical request with retries; returns the decoded JSON body or raises a typed GHLError.

        ``server_error_attempts`` caps the 5xx/timeout/connection failures (429s keep the full budget).
        """
        headers = {"Version": SERVICE_VERSIONS[service]}
        server_errors = [0]

        def give_up_early(exc: _Retryable) -> None:
            if exc.status == 429 or server_error_attempts is None:
                return
            server_errors[0] += 1
            if server_errors[0] >= server_error_attempts:
                raise GHLUnavailableError(
                    self.project_name,
                    exc.status,
                    f"{method} {path} failed {server_errors[0]} times: {exc.reason}",
                )

        def attempt() -> Any:
            try:
                self._limiter.acquire(self.location_id)
            except GHLRateLimitBudgetError as exc:
                raise GHLRateLimitBudgetError(self.project_name, None, exc.message) from None
            self._request_count += 1
            try:
                response = self._http.request(method, path, params=params, json=json_body, headers=headers)
            except httpx.TimeoutException as exc:
                raise _Retryable(f"timed out ({type(exc).__name__})") from None
            except httpx.TransportError as exc:  # refused/dropped connection, broken HTTP
                raise _Retryable(f"connection failed ({type(exc).__name__})") from None
            status = response.status_code
            self._limiter.observe(self.location_id, status=status, headers=response.headers)
            if status == 429:
                raise _Retryable("429 Too Many Requests", status=429, wait=self._rate_limit_wait(response))
            if status >= 500:
                raise _Retryable(f"HTTP {status}: {self._message(response)}", status=status)
            if status >= 400:
                raise self._error(response)
            try:
                return response.json()
            except (ValueError, RecursionError):  # RecursionError: JSON nested deeper than the parser goes
                raise _Retryable("the answer was not JSON", status=status) from None

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self._max_attempts),
            wait=self._wait,
            retry=tenacity.retry_if_exception_type(_Retryable),
            sleep=self._sleep,
            before_sleep=lambda state: self._log_retry(method, path, state),
            reraise=True,
        )

        def attempt_capped() -> Any:
            try:
                return attempt()
            except _Retryable as exc:
                give_up_early(exc)
                raise

        try:
            return retrying(attempt_capped)
        except _Retryable as exc:
            raise GHLUnavailableError(
                self.project_name,
                exc.status,
                f"{method} {path} still failing after {self._max_attempts} attempts: {exc.reason}",
            ) from None

    def _wait(self, state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _Retryable) and exc.wait is not None:
            return min(exc.wait, self._max_backoff)
        # Exponential backoff with jitter, capped: 0.5, 1, 2, 4 ... (+ up to 0.5 s) seconds.
        backoff = tenacity.wait_exponential_jitter(initial=0.5, max=self._max_backoff, jitter=0.5)
        return backoff(state)

    def _rate_limit_wait(self, response: httpx.Response) -> float:
        """After a 429: a sane ``Retry-After`` (undocumented by GHL), else one full burst window."""
        interval_ms = RateLimitHeaders.parse(response.headers).interval_ms
        return retry_after_seconds(response.headers, default_s=interval_ms / 1000 if interval_ms else 10.0)

    def _log_retry(self, method: str, path: str, state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.warning(
            "project %r: GHL %s %s: %s; attempt %d of %d, retrying in %.1fs",
            self.project_name,
            method,
            path,
            exc.reason if isinstance(exc, _Retryable) else exc,
            state.attempt_number,
            self._max_attempts,
            state.next_action.sleep if state.next_action else 0.0,
        )

    def _message(self, response: httpx.Response) -> str:
        """GHL's own message (NestJS ``{statusCode, message, error}``; 422 sends a list), token-free."""
        try:
            body = response.json()
        except (ValueError, RecursionError):
            body = None
        message: Any = None
        if isinstance(body, Mapping):
            message = body.get("message") or body.get("error")
        if isinstance(message, list):
            message = "; ".join(str(part) for part in message)
        if not isinstance(message, str) or not message.strip():
            message = response.reason_phrase or f"HTTP {response.status_code}"
        message = message.strip()[:500]
        return message.replace(self._token.reveal(), "***")

    @staticmethod
    def _is_json(response: httpx.Response) -> bool:
        try:
            response.json()
        except (ValueError, RecursionError):
            return False
        return True

    def _error(self, response: httpx.Response) -> GHLError:
        status = response.status_code
        message = self._message(response)
        if status == 401:
            # A missing scope is a 401 too (not a 403), told apart only by its message (README §9).
            if "not authorized for this scope" in message.lower():
                return GHLScopeError(self.project_name, status, message)
            return GHLAuthError(self.project_name, status, message)
        if status == 403:
            if not self._is_json(response):
                # GHL's own 403s are JSON; an HTML one is Cloudflare (error 1010) or another proxy.
                return GHLBlockedError(self.project_name, status, NOT_JSON_403)
            return GHLForbiddenError(self.project_name, status, message)
        if status == 404:
            return GHLNotFoundError(self.project_name, status, message)
        return GHLBadRequestError(self.project_name, status, message)
