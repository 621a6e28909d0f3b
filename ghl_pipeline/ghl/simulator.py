"""A GoHighLevel API simulator: the real API's shapes, limits and failures, without an account.

It serves deterministic generated data (seeded per location and local day, generated lazily) through
the endpoints the pipeline uses, enforces what GHL enforces (token per location, scopes, the
``Version`` header, page sizes, the 2-minute export cursor, the burst and daily limits with their
``X-RateLimit-*`` headers), injects configurable faults, records every request, and knows its
ground truth. Shapes follow ``shared/ghl-api/README.md`` (the live forms where they differ from the
spec: nested message pages, ``meta.call``, no ``userId`` on inbound calls).

Two ways in: ``transport()`` (an ``httpx.MockTransport``, in-process, for fast tests) and ``serve()``
(a threaded HTTP server on loopback, for the demo and other processes).

Choices the reference leaves open (UNCONFIRMED against the live API, documented here):

- An expired export cursor answers 422 ``{"statusCode":422,"message":["cursor has expired ..."],
  "error":"Unprocessable Entity"}`` (same for a cursor that cannot be decoded).
- A missing ``Version`` header answers 400 ``{"statusCode":400,"message":"Version header is required",
  "error":"Bad Request"}``.
- ``channel=Call`` returns call types 1/24/34 only (``Faults.non_call_in_call_channel_rate`` leaks
  SMS into it, to prove the client filters anyway). No ``channel`` = every type except email.
- Export ``startDate``/``endDate`` filter ``[startDate, endDate)`` on ``dateAdded``.
- 429 bodies are ``{"statusCode":429,"message":"Too Many Requests"}``; ``Retry-After`` only when
  ``Faults.retry_after`` is on.
- ``channel=Call`` also returns campaign calls and voicemail drops (types 8, 10, 13) when
  ``Shapes.campaign_call_rate`` generates them.
- ``GET /users/search`` needs the companyId the location reports and pages by ``skip``/``limit``.

``Shapes`` turns on the other readings where the reference is silent or contradicts itself (other
``messageType`` spellings, ``from``/``to`` on calls, ``GET /users/`` removed as in API v3, flat
message pages, Cloudflare's HTML 403, each way a dead cursor may answer), so tests can prove the
client degrades instead of losing calls.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import logging
import random
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit
from zoneinfo import ZoneInfo

import httpx

log = logging.getLogger(__name__)

ALL_SCOPES: frozenset[str] = frozenset(
    {
        "conversations.readonly",
        "conversations/message.readonly",
        "contacts.readonly",
        "users.readonly",
        "locations.readonly",
    }
)
ACCEPTED_VERSIONS = frozenset({"2021-04-15", "2021-07-28", "v3"})
CURSOR_TTL_S = 120.0  # "a cursor stays valid only 2 minutes after the last request" (README §4)
CALL_TYPES: Mapping[int, str] = {1: "TYPE_CALL", 24: "TYPE_IVR_CALL", 34: "TYPE_CUSTOM_CALL"}
# Campaign calls and voicemail drops (README §3 table); only generated under ``Shapes.campaign_call_rate``.
CAMPAIGN_CALL_TYPES: Mapping[int, str] = {
    8: "TYPE_CAMPAIGN_CALL",
    10: "TYPE_CAMPAIGN_VOICEMAIL",
    13: "TYPE_CAMPAIGN_MANUAL_CALL",
}
_CHANNEL_TYPES: Mapping[str, frozenset[int]] = {
    "Call": frozenset(CALL_TYPES) | frozenset(CAMPAIGN_CALL_TYPES),
    "SMS": frozenset({2}),
    "Email": frozenset({3}),
    "WhatsApp": frozenset({19}),
    "Instagram": frozenset({18}),
    "Facebook": frozenset({11}),
}

# Error bodies exactly as the reference gives them (README §9).
INVALID_TOKEN_BODY = {
    "statusCode": 401,
    "message": "Invalid token: access token is invalid",
    "error": "Unauthorized",
}
SCOPE_BODY = {"statusCode": 401, "message": "The token is not authorized for this scope."}
FOREIGN_LOCATION_BODY = {
    "statusCode": 403,
    "message": "The token does not have access to this location",
    "error": "Forbidden",
}
TOO_MANY_BODY = {"statusCode": 429, "message": "Too Many Requests"}
CURSOR_EXPIRED_MESSAGE = "cursor has expired; an export cursor is valid for 2 minutes after the last request"
# The 400 that endpoints removed in API v3 answer (highlevel-api-docs issue 304; exact text UNCONFIRMED).
NOT_IN_V3_BODY = {
    "statusCode": 400,
    "message": "This endpoint is not available in API version v3",
    "error": "Bad Request",
}
# Cloudflare's answer to a User-Agent it refuses (README §1): HTML, not GHL's JSON.
CLOUDFLARE_1010_HTML = (
    b"<!DOCTYPE html><html><head><title>Access denied | services.leadconnectorhq.com used Cloudflare to "
    b"restrict access</title></head><body><h1>Error 1010</h1><p>The owner of this website has banned your "
    b"access based on your browser's signature.</p></body></html>"
)
CURSOR_EXPIRED_ANSWERS = ("422", "400", "500", "502", "503", "empty")


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class SimLocation:
    """One simulated sub-account (= one project): its token, time zone and how busy it is."""

    location_id: str
    token: str = field(repr=False)
    name: str
    timezone: str = "America/Chicago"
    country: str = "US"
    calls_per_day: int = 40
    # First local day with data; None = 90 days before the simulator's "today".
    start_date: date | None = None
    contacts: int = 150
    users: int = 4
    scopes: frozenset[str] = ALL_SCOPES


@dataclass(frozen=True)
class Faults:
    """Failures to inject; all off by default. Rates are per request (or per record), 0..1."""

    server_error_rate: float = 0.0  # 500/502/503 answers
    rate_limit_burst_rate: float = 0.0  # chance a request starts a run of 429s ...
    rate_limit_burst_length: int = 3  # ... this long
    retry_after: bool = False  # send Retry-After on 429s (GHL does not document one)
    slow_rate: float = 0.0  # answers delayed by slow_seconds (through the simulator's sleep)
    slow_seconds: float = 2.0
    timeout_rate: float = 0.0  # in-process: httpx.ReadTimeout; on the server: connection closed
    drop_rate: float = 0.0  # in-process: httpx.RemoteProtocolError; on the server: connection closed
    malformed_rate: float = 0.0  # share of call records served with a malformed field (fixed per record)
    non_call_in_call_channel_rate: float = 0.0  # share of SMS leaked into channel=Call exports
    revoke_token_after: int | None = None  # a location's token dies after this many of its requests
    cursor_expiry_once: bool = False  # each location's first cursor request finds it expired

    @classmethod
    def chaos(cls) -> Faults:
        """The done-when mix: 15% 5xx, 429 bursts, timeouts, drops, one cursor expiry per location."""
        return cls(
            server_error_rate=0.15,
            rate_limit_burst_rate=0.04,
            rate_limit_burst_length=3,
            timeout_rate=0.03,
            drop_rate=0.03,
            cursor_expiry_once=True,
        )


@dataclass(frozen=True)
class Shapes:
    """How GHL may answer where the reference is silent or contradicts itself; defaults = the reference.

    Each option turns on one shape the official material leaves open, so tests can prove the client
    degrades (keeps the calls, says what went wrong) instead of losing calls or whole syncs.
    """

    # Served ``messageType`` spellings by canonical name, e.g. {"TYPE_CALL": "CALL"} (webhook spelling).
    message_type_spellings: Mapping[str, str] = field(default_factory=dict)
    # Share of calls followed by a campaign call or voicemail drop (types 8, 10, 13) in channel=Call.
    campaign_call_rate: float = 0.0
    # Calls carry top-level ``from``/``to`` numbers (2026 docs; UNCONFIRMED for REST).
    call_numbers: bool = False
    # ``GET /users/`` answers 400 "not available in API version v3" (it is deprecated and gone from v3).
    users_list_removed: bool = False
    # ``GET /conversations/{id}/messages`` answers the 2026 spec's flat page instead of the live nested one.
    flat_message_pages: bool = False
    # Every request answers Cloudflare's HTML 403 (error 1010).
    cloudflare_block: bool = False
    # How a dead export cursor answers: "422" (default), "400", a lasting "500"/"502"/"503", or
    # "empty" (200 with no messages and no cursor while ``total`` still counts the rest).
    cursor_expired_answer: str = "422"

    def __post_init__(self) -> None:
        if self.cursor_expired_answer not in CURSOR_EXPIRED_ANSWERS:
            raise ValueError(f"cursor_expired_answer must be one of {CURSOR_EXPIRED_ANSWERS}")


@dataclass(frozen=True)
class SimRequest:
    """One request as the simulator saw it (never the token)."""

    method: str
    path: str
    query: Mapping[str, str]
    status: int | None  # None: the connection was dropped or timed out
    location_id: str | None
    outcome: str  # "ok", "error", "rate_limited", "cursor_expired", or "fault:<kind>"
    at: float


@dataclass(frozen=True)
class SimResponse:
    """What the simulator answers; ``action`` "drop"/"timeout" means no answer at all."""

    status: int
    body: Any
    headers: Mapping[str, str]
    action: str | None = None

    def content(self) -> bytes:
        """The body as bytes: JSON, or ``bytes`` bodies (an HTML error page) as they are."""
        if isinstance(self.body, bytes):
            return self.body
        return b"" if self.body is None else json.dumps(self.body, separators=(",", ":")).encode()


class ManualClock:
    """A clock tests move by hand: ``time()`` for the simulator, ``sleep()`` advances it instantly."""

    def __init__(self, start: datetime | float) -> None:
        self._now = start.timestamp() if isinstance(start, datetime) else float(start)
        self._lock = threading.Lock()
        self.slept = 0.0

    def time(self) -> float:
        """Seconds since the epoch, as this clock sees them."""
        with self._lock:
            return self._now

    def sleep(self, seconds: float) -> None:
        """Advance the clock instead of sleeping."""
        self.advance(max(0.0, seconds))
        self.slept += max(0.0, seconds)

    def advance(self, seconds: float) -> None:
        """Move the clock forward."""
        with self._lock:
            self._now += seconds


# --------------------------------------------------------------------------- helpers

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _gid(*parts: object) -> str:
    """A deterministic 20-character alphanumeric id, like GHL's."""
    number = int.from_bytes(hashlib.sha256("|".join(map(str, parts)).encode()).digest(), "big")
    chars = []
    for _ in range(20):
        number, rest = divmod(number, 62)
        chars.append(_BASE62[rest])
    return "".join(chars)


def _unit(*parts: object) -> float:
    """A deterministic number in [0, 1) from the parts."""
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _iso(moment: datetime) -> str:
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def _parse_date_param(value: str) -> datetime:
    text = value.strip()
    if len(text) == 10:  # YYYY-MM-DD, as some clients send
        return datetime.combine(date.fromisoformat(text), dtime(0), tzinfo=UTC)
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


def _parse_ms(value: str) -> datetime:
    return datetime.fromtimestamp(int(value) / 1000, tz=UTC)


def _unprocessable(*messages: str) -> tuple[int, dict]:
    return 422, {"statusCode": 422, "message": list(messages), "error": "Unprocessable Entity"}


_FIRST_NAMES = [
    "Maria",
    "Dev",
    "Jordan",
    "Sam",
    "Aisha",
    "Liam",
    "Chen",
    "Olivia",
    "Mateo",
    "Priya",
    "Noah",
    "Zoe",
]
_LAST_NAMES = [
    "Lopez",
    "Patel",
    "Reyes",
    "Carter",
    "Khan",
    "Murphy",
    "Wei",
    "Smith",
    "Garcia",
    "Nguyen",
    "Brown",
]
_AREA_CODES = {"US": ["512", "737", "312", "646"], "GB": ["20", "161", "117"], "AU": ["2", "3", "7"]}


def _phone(rng: random.Random, country: str) -> str | None:
    """Phone numbers as people really type them into a CRM, some of them unusable."""
    style = rng.random()
    if country == "GB":
        area, number = rng.choice(_AREA_CODES["GB"]), f"{rng.randint(1000, 9999)} {rng.randint(1000, 9999)}"
        national = f"0{area} {number}"
        international = f"+44{area}{number.replace(' ', '')}"
    elif country == "AU":
        area, number = rng.choice(_AREA_CODES["AU"]), f"{rng.randint(1000, 9999)} {rng.randint(1000, 9999)}"
        national = f"(0{area}) {number}"
        international = f"+61{area}{number.replace(' ', '')}"
    else:
        area, mid, last = rng.choice(_AREA_CODES["US"]), "555", f"{rng.randint(100, 199):04d}"
        if style < 0.2:
            return f"({area}) {mid}-{last}"
        if style < 0.35:
            return f"{area}.{mid}.{last}"
        if style < 0.5:
            return f"{area}{mid}{last}"
        national = f"{area}-{mid}-{last}"
        international = f"+1{area}{mid}{last}"
    if style < 0.5:
        return national
    if style < 0.9:
        return international
    if style < 0.95:
        return None
    return rng.choice(["n/a", "12", "call me", "+1 (555) 0"])


# --------------------------------------------------------------------------- simulator


@dataclass
class _Pit:
    """A point-in-time snapshot behind an export cursor (GHL's cursor embeds a ``pitId``)."""

    location_id: str
    records: list[dict]
    last_used: float


@dataclass
class _LocationState:
    location: SimLocation
    revoked: bool = False
    requests: int = 0
    window: deque[float] = field(default_factory=deque)
    daily: dict[date, int] = field(default_factory=dict)
    start_date: date | None = None  # fixed when the location is added, so data never shifts
    burst_left: int = 0
    cursor_expiry_done: bool = False


class GHLSimulator:
    """The GHL API, simulated; see the module docstring."""

    def __init__(
        self,
        locations: Sequence[SimLocation] | None = None,
        *,
        faults: Faults | None = None,
        shapes: Shapes | None = None,
        seed: int = 0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        burst_max: int = 100,
        burst_interval_s: float = 10.0,
        daily_limit: int = 200_000,
    ) -> None:
        self.faults = faults or Faults()
        self.shapes = shapes or Shapes()
        self.seed = seed
        self.clock = clock
        self._sleep = sleep
        self.burst_max = burst_max
        self.burst_interval_s = burst_interval_s
        self.daily_limit = daily_limit
        self._lock = threading.RLock()
        self._states: dict[str, _LocationState] = {}
        self._tokens: dict[str, str] = {}
        self._fault_rng = random.Random(f"{seed}|faults")
        self._trace_rng = random.Random(f"{seed}|trace")
        self._days: OrderedDict[tuple[str, date], list[dict]] = OrderedDict()
        self._index: dict[str, tuple[str, date]] = {}
        self._updates: dict[str, dict[str, Any]] = {}
        self._contacts: dict[str, list[dict]] = {}
        self._users: dict[str, list[dict]] = {}
        self._pits: dict[str, _Pit] = {}
        self._dead_pits: dict[str, int] = {}  # expired snapshot -> its total (for the "empty" answer)
        self._threads_cache: dict[str, tuple[tuple[str, int], dict[str, list[dict]]]] = {}
        self._requests: list[SimRequest] = []
        for location in locations or ():
            self.add_location(location)

    # ------------------------------------------------------------- set-up

    @classmethod
    def demo(
        cls,
        *,
        faults: Faults | None = None,
        seed: int = 0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        busy_calls_per_day: int = 3000,
        **kwargs: Any,
    ) -> GHLSimulator:
        """Three demo projects in three time zones, one of them busy, with readable fake tokens."""
        locations = [
            SimLocation(
                location_id="acmeRoofingDemoLoc01",
                token="pit-demo-acme-roofing",
                name="Acme Roofing",
                timezone="America/Chicago",
                country="US",
                calls_per_day=60,
                contacts=300,
                users=5,
            ),
            SimLocation(
                location_id="globexSolarDemoLoc02",
                token="pit-demo-globex-solar",
                name="Globex Solar",
                timezone="Europe/London",
                country="GB",
                calls_per_day=busy_calls_per_day,
                contacts=max(300, busy_calls_per_day),
                users=12,
            ),
            SimLocation(
                location_id="initechHvacDemoLoc03",
                token="pit-demo-initech-hvac",
                name="Initech HVAC",
                timezone="Australia/Sydney",
                country="AU",
                calls_per_day=25,
                contacts=120,
                users=3,
            ),
        ]
        return cls(locations, faults=faults, seed=seed, clock=clock, sleep=sleep, **kwargs)

    @property
    def locations(self) -> list[SimLocation]:
        """The simulated locations, in the order they were added."""
        with self._lock:
            return [state.location for state in self._states.values()]

    def add_location(self, location: SimLocation) -> None:
        """Add (or replace) a location; its token works from now on."""
        with self._lock:
            old = self._states.get(location.location_id)
            if old is not None:
                self._tokens.pop(old.location.token, None)
            if location.token in self._tokens and self._tokens[location.token] != location.location_id:
                raise ValueError("two locations cannot share a token")
            start = location.start_date or self._now().astimezone(
                ZoneInfo(location.timezone)
            ).date() - timedelta(days=90)
            self._states[location.location_id] = _LocationState(location, start_date=start)
            self._tokens[location.token] = location.location_id
            self._contacts.pop(location.location_id, None)
            self._users.pop(location.location_id, None)
            for key in [key for key in self._days if key[0] == location.location_id]:
                del self._days[key]

    def remove_location(self, location_id: str) -> None:
        """Remove a location: its token stops working (401), as if the sub-account were deleted."""
        with self._lock:
            state = self._states.pop(location_id)
            self._tokens.pop(state.location.token, None)

    def revoke_token(self, location_id: str) -> None:
        """Revoke a location's token now: its next request gets 401."""
        with self._lock:
            self._states[location_id].revoked = True

    @property
    def requests(self) -> list[SimRequest]:
        """Every request received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        """Forget the request log (not the rate-limit windows)."""
        with self._lock:
            self._requests.clear()

    # ------------------------------------------------------------- data

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), tz=UTC)

    def _start_date(self, location: SimLocation) -> date:
        state = self._states.get(location.location_id)
        if state is not None and state.start_date is not None:
            return state.start_date
        return location.start_date or self._now().astimezone(ZoneInfo(location.timezone)).date() - timedelta(
            days=90
        )

    def _users_of(self, location: SimLocation) -> list[dict]:
        users = self._users.get(location.location_id)
        if users is None:
            rng = random.Random(f"{self.seed}|users|{location.location_id}")
            users = []
            for n in range(location.users):
                first, last = rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES)
                user_id = _gid("user", self.seed, location.location_id, n)
                domain = location.name.lower().replace(" ", "-") + ".example"
                users.append(
                    {
                        "id": user_id,
                        "name": f"{first} {last}",
                        "firstName": first,
                        "lastName": last,
                        "email": f"{first.lower()}.{last.lower()}{n}@{domain}",
                        "phone": _phone(rng, location.country) or "",
                        "extension": "",
                        "permissions": {"phoneCallEnabled": True, "conversationsEnabled": True},
                        "roles": {
                            "type": "account",
                            "role": "admin" if n == 0 else "user",
                            "locationIds": [location.location_id],
                            "restrictSubAccount": False,
                        },
                        "deleted": False,
                    }
                )
            self._users[location.location_id] = users
        return users

    def _contacts_of(self, location: SimLocation) -> list[dict]:
        contacts = self._contacts.get(location.location_id)
        if contacts is None:
            rng = random.Random(f"{self.seed}|contacts|{location.location_id}")
            base = datetime.combine(self._start_date(location), dtime(0), tzinfo=UTC) - timedelta(days=365)
            contacts = []
            for n in range(max(1, location.contacts)):
                contact_id = _gid("contact", self.seed, location.location_id, n)
                first = rng.choice(_FIRST_NAMES) if rng.random() > 0.1 else None
                last = rng.choice(_LAST_NAMES) if rng.random() > 0.15 else None
                if rng.random() < 0.05:  # no name at all: the dashboard shows the phone instead
                    first = last = None
                added = base + timedelta(seconds=rng.randint(0, 365 * 86400))
                name = " ".join(part for part in (first, last) if part) or None
                contacts.append(
                    {
                        "id": contact_id,
                        "name": name,
                        "locationId": location.location_id,
                        "firstName": first,
                        "lastName": last,
                        "email": f"{(first or 'lead').lower()}{n}@example.com"
                        if rng.random() > 0.3
                        else None,
                        "phone": _phone(rng, location.country),
                        "country": location.country if rng.random() > 0.1 else None,
                        "timezone": location.timezone,
                        "type": "lead",
                        "source": rng.choice(["facebook form", "website", "referral", None]),
                        "tags": [],
                        "dnd": False,
                        "dateAdded": _iso(added),
                        "dateUpdated": _iso(added + timedelta(days=rng.randint(0, 30))),
                    }
                )
            contacts.sort(key=lambda c: (c["dateAdded"], c["id"]))
            self._contacts[location.location_id] = contacts
        return contacts

    def _day_messages(self, location: SimLocation, day: date) -> list[dict]:
        """Every message of one local day of one location (all channels), sorted by (dateAdded, id)."""
        key = (location.location_id, day)
        cached = self._days.get(key)
        if cached is not None:
            self._days.move_to_end(key)
            return cached
        messages = self._generate_day(location, day) if day >= self._start_date(location) else []
        for message in messages:
            self._index[message["id"]] = key
        self._days[key] = messages
        while len(self._days) > 400:  # two months of several locations stay cached; older days regenerate
            self._days.popitem(last=False)
        return messages

    def _generate_day(self, location: SimLocation, day: date) -> list[dict]:
        rng = random.Random(f"{self.seed}|day|{location.location_id}|{day.isoformat()}")
        tz = ZoneInfo(location.timezone)
        midnight = datetime.combine(day, dtime(0), tzinfo=tz).astimezone(UTC)
        next_midnight = datetime.combine(day + timedelta(days=1), dtime(0), tzinfo=tz).astimezone(UTC)
        # Business hours in local time: on a DST day the UTC span is an hour shorter or longer.
        opens = datetime.combine(day, dtime(7), tzinfo=tz).astimezone(UTC)
        closes = datetime.combine(day, dtime(21), tzinfo=tz).astimezone(UTC)
        users = self._users_of(location)
        contacts = self._contacts_of(location)
        count = max(0, round(location.calls_per_day * rng.uniform(0.8, 1.2)))

        moments = [
            opens + timedelta(milliseconds=rng.randrange(int((closes - opens).total_seconds() * 1000)))
            for _ in range(count)
        ]
        if count:
            # Calls in the last and first minutes of the local day: the ones a UTC-day bug misfiles.
            moments.append(next_midnight - timedelta(milliseconds=rng.randint(1, 90_000)))
            moments.append(midnight + timedelta(milliseconds=rng.randint(0, 90_000)))
        messages = []
        for n, moment in enumerate(moments):
            contact = rng.choice(contacts)
            messages.append(self._make_call(location, rng, n, day, moment, contact, users))
        # SMS and email in the same threads as the calls: the export must not mistake them for calls.
        for n in range(count // 2):
            moment = opens + timedelta(
                milliseconds=rng.randrange(int((closes - opens).total_seconds() * 1000))
            )
            messages.append(self._make_text(location, rng, n, day, moment, rng.choice(contacts), users))
        rate = self.shapes.campaign_call_rate
        if rate:
            # Campaign calls and voicemail drops after some calls (no rng draw: the rest stays the same).
            for call in [m for m in messages if m["type"] in CALL_TYPES]:
                if _unit(self.seed, "campaign", call["id"]) < rate:
                    messages.append(self._make_campaign_call(call))
        messages.sort(key=lambda m: (m["dateAdded"], m["id"]))
        return messages

    def _make_campaign_call(self, call: dict) -> dict:
        number = sorted(CAMPAIGN_CALL_TYPES)[int(_unit(self.seed, "campaign-kind", call["id"]) * 3)]
        moment = datetime.fromisoformat(call["dateAdded"].replace("Z", "+00:00")) + timedelta(seconds=7)
        return {
            "id": _gid("message", self.seed, call["id"], "campaign"),
            "direction": "outbound",
            "status": "completed",
            "type": number,
            "locationId": call["locationId"],
            "body": "",
            "contactId": call["contactId"],
            "conversationId": call["conversationId"],
            "dateAdded": _iso(moment),
            "dateUpdated": _iso(moment + timedelta(seconds=30)),
            "meta": {"call": {"duration": 30, "status": "completed"}},
            "source": "campaign",
            "messageType": CAMPAIGN_CALL_TYPES[number],
        }

    def _location_number(self, location: SimLocation) -> str:
        """The sub-account's own phone number (LC Phone), in E.164."""
        digits = f"{int(_unit(self.seed, 'lc-phone', location.location_id) * 10_000):04d}"
        prefix = {"GB": "+44207946", "AU": "+6125550"}.get(location.country, "+1512555")
        return prefix + digits

    def _conversation_id(self, location: SimLocation, contact_id: str) -> str:
        return _gid("conversation", self.seed, location.location_id, contact_id)

    def _make_call(self, location, rng, n, day, moment, contact, users) -> dict:
        kind = rng.random()
        number = 1 if kind < 0.78 else 24 if kind < 0.9 else 34
        direction = "inbound" if number == 24 or rng.random() < 0.5 else "outbound"
        if direction == "inbound":
            statuses = (
                ["completed"] * 11 + ["voicemail"] * 4 + ["no-answer"] * 2 + ["answered", "busy", "failed"]
            )
            statuses += ["canceled", "pending"]
        else:
            statuses = ["completed"] * 10 + ["no-answer"] * 4 + ["voicemail"] * 2 + ["busy", "busy", "failed"]
            statuses += ["canceled", "answered"]
        status = rng.choice(statuses)
        call_meta: dict[str, Any] = {}
        if status in ("completed", "answered"):
            call_meta["duration"] = rng.randint(5, 1800)
        elif status == "voicemail":
            call_meta["duration"] = rng.randint(5, 120)
        elif status != "pending" and rng.random() < 0.4:
            call_meta["duration"] = 0  # unanswered calls: sometimes 0, usually no duration at all
        top_status = status
        if status == "voicemail" and direction == "outbound":
            top_status = "completed"  # outbound call reaching voicemail: "completed" on top (README §3)
        if rng.random() > 0.05:
            call_meta["status"] = status  # else only the top-level status says it
        ended = moment + timedelta(seconds=call_meta.get("duration", 0) + rng.randint(1, 30))
        message: dict[str, Any] = {
            "id": _gid("message", self.seed, location.location_id, day.isoformat(), "call", n),
            "direction": direction,
            "status": top_status,
            "type": number,
            "locationId": location.location_id,
            "body": "",
            "contactId": contact["id"],
            "conversationId": self._conversation_id(location, contact["id"]),
            "dateAdded": _iso(moment),
            "dateUpdated": _iso(ended),
            "meta": {"call": call_meta},
            "messageType": CALL_TYPES[number],
        }
        if rng.random() < 0.5:
            message["attachments"] = []  # the key is often absent on calls
        if direction == "outbound":
            message["userId"] = rng.choice(users)["id"] if users else None  # inbound/IVR: no userId
            message["source"] = "app"
        if number == 1:
            message["altId"] = "CA" + hashlib.md5(message["id"].encode()).hexdigest()
        if self.shapes.call_numbers:
            # The caller's and the callee's numbers, as typed into the CRM on the contact's side.
            ours, theirs = self._location_number(location), contact.get("phone")
            caller, callee = (theirs, ours) if direction == "inbound" else (ours, theirs)
            if caller:
                message["from"] = caller
            if callee:
                message["to"] = callee
        return message

    def _make_text(self, location, rng, n, day, moment, contact, users) -> dict:
        number = 2 if rng.random() < 0.7 else 3
        direction = rng.choice(["inbound", "outbound"])
        message = {
            "id": _gid("message", self.seed, location.location_id, day.isoformat(), "text", n),
            "direction": direction,
            "status": rng.choice(["delivered", "read", "sent"]),
            "type": number,
            "locationId": location.location_id,
            "body": "Can you come by Tuesday?" if number == 2 else "Your quote is attached.",
            "contentType": "text/plain",
            "attachments": [],
            "contactId": contact["id"],
            "conversationId": self._conversation_id(location, contact["id"]),
            "dateAdded": _iso(moment),
            "dateUpdated": _iso(moment + timedelta(seconds=rng.randint(0, 5))),
            "messageType": "TYPE_SMS" if number == 2 else "TYPE_EMAIL",
        }
        if direction == "outbound" and users:
            message["userId"] = rng.choice(users)["id"]
        return message

    def _served(self, message: dict) -> dict:
        """The message as GHL would send it now: later updates applied, malformed if chosen to be."""
        served = copy.deepcopy(message)
        update = self._updates.get(message["id"])
        if update:
            for key, value in update.items():
                if key == "meta.call":
                    served.setdefault("meta", {}).setdefault("call", {}).update(value)
                else:
                    served[key] = value
        spelling = self.shapes.message_type_spellings.get(served.get("messageType"))
        if spelling is not None:
            served["messageType"] = spelling
        rate = self.faults.malformed_rate
        if rate and served.get("type") in CALL_TYPES and _unit(self.seed, "malformed", message["id"]) < rate:
            # id, dateAdded and type stay intact: a real bad record still has its identity.
            choice = int(_unit(self.seed, "malformed-kind", message["id"]) * 5)
            if choice == 0:
                served["meta"] = {"call": {"duration": "3m12s", "status": "completed"}}
            elif choice == 1:
                served["dateUpdated"] = "yesterday"
            elif choice == 2:
                served["direction"] = 7
            elif choice == 3:
                served["meta"] = "n/a"
            else:
                served["contactId"] = {"id": served.get("contactId")}
        return served

    def _messages(self, location: SimLocation, start: datetime, end: datetime) -> list[dict]:
        """Messages (true form, updates applied) created in [start, end) and already visible now."""
        now = self._now()
        end = min(end, now + timedelta(milliseconds=1))
        if end <= start:
            return []
        tz = ZoneInfo(location.timezone)
        first = max(start.astimezone(tz).date(), self._start_date(location))
        last = (end - timedelta(milliseconds=1)).astimezone(tz).date()
        start_s, end_s = _iso(start), _iso(end)
        found = []
        day = first
        while day <= last:
            for message in self._day_messages(location, day):
                if start_s <= message["dateAdded"] < end_s:
                    found.append(message)
            day += timedelta(days=1)
        return found

    # ------------------------------------------------------------- test hooks

    def ground_truth(self, location_id: str, start: datetime, end: datetime) -> list[dict]:
        """The call messages (types 1/24/34) created in ``[start, end)``, as the export serves them."""
        with self._lock:
            location = self._states[location_id].location
            calls = [m for m in self._messages(location, start, end) if m["type"] in CALL_TYPES]
            return [self._served(m) for m in calls]

    def channel_truth(self, location_id: str, start: datetime, end: datetime) -> list[dict]:
        """Every message ``channel=Call`` exports for ``[start, end)`` (calls, campaign calls, leaked SMS)."""
        with self._lock:
            location = self._states[location_id].location
            found = [m for m in self._messages(location, start, end) if self._in_channel(m, "Call")]
            return [self._served(m) for m in found]

    def _in_channel(self, message: dict, channel: str | None) -> bool:
        if channel is None:
            return message["type"] != 3
        if message["type"] in _CHANNEL_TYPES[channel]:
            return True
        leak = self.faults.non_call_in_call_channel_rate if channel == "Call" else 0.0
        return bool(leak) and message["type"] == 2 and _unit(self.seed, "leak", message["id"]) < leak

    def update_call(
        self,
        message_id: str,
        *,
        status: str | None = None,
        duration: int | None = None,
        user_id: str | None = None,
        updated_at: datetime | None = None,
    ) -> dict:
        """Change a call after the fact (late data), bumping its ``dateUpdated``; returns it as served."""
        with self._lock:
            if message_id not in self._index:
                raise KeyError(f"unknown message id {message_id!r} (ask ground_truth for its day first)")
            update = self._updates.setdefault(message_id, {})
            call = dict(update.get("meta.call", {}))
            if status is not None:
                update["status"] = status
                call["status"] = status
            if duration is not None:
                call["duration"] = duration
            if call:
                update["meta.call"] = call
            if user_id is not None:
                update["userId"] = user_id
            update["dateUpdated"] = _iso(updated_at or self._now())
            location_id, day = self._index[message_id]
            state = self._states[location_id]
            message = next(m for m in self._day_messages(state.location, day) if m["id"] == message_id)
            return self._served(message)

    # ------------------------------------------------------------- HTTP surface

    def transport(self) -> httpx.MockTransport:
        """An in-process transport for ``httpx`` (and so for ``GHLClient(transport=...)``)."""

        def handler(request: httpx.Request) -> httpx.Response:
            query = {key: value for key, value in request.url.params.multi_items()}
            response = self.handle(
                request.method, request.url.path, query=query, headers=request.headers, body=request.read()
            )
            if response.action == "timeout":
                raise httpx.ReadTimeout("simulated read timeout", request=request)
            if response.action == "drop":
                raise httpx.RemoteProtocolError(
                    "Server disconnected without sending a response.", request=request
                )
            return httpx.Response(response.status, headers=response.headers, content=response.content())

        return httpx.MockTransport(handler)

    def serve(self, host: str = "127.0.0.1", port: int = 0) -> SimServer:
        """Serve over real HTTP on loopback in a background thread; ``.url``, ``.stop()``."""
        return SimServer(self, host=host, port=port)

    def handle(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str],
        headers: Mapping[str, str],
        body: bytes = b"",
    ) -> SimResponse:
        """Answer one request (both transports end here)."""
        delay = 0.0
        with self._lock:
            if self.shapes.cloudflare_block:
                response, location_id, outcome = (
                    SimResponse(403, CLOUDFLARE_1010_HTML, {"Content-Type": "text/html; charset=UTF-8"}),
                    None,
                    "fault:cloudflare",
                )
            else:
                response, location_id, outcome = self._handle_locked(
                    method.upper(), path, query, headers, body
                )
            if (
                response.action is None
                and self.faults.slow_rate
                and self._fault_rng.random() < self.faults.slow_rate
            ):
                delay = self.faults.slow_seconds
            self._requests.append(
                SimRequest(
                    method=method.upper(),
                    path=path,
                    query=dict(query),
                    status=None if response.action else response.status,
                    location_id=location_id,
                    outcome=outcome,
                    at=self.clock(),
                )
            )
        if delay:
            self._sleep(delay)
        return response

    def _handle_locked(self, method, path, query, headers, body) -> tuple[SimResponse, str | None, str]:
        lower = {key.lower(): value for key, value in headers.items()}
        auth = lower.get("authorization", "")
        token = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
        location_id = self._tokens.get(token)
        if location_id is None:
            return SimResponse(401, INVALID_TOKEN_BODY, self._json_headers()), None, "error"
        state = self._states[location_id]
        state.requests += 1
        revoke_after = self.faults.revoke_token_after
        if revoke_after is not None and state.requests > revoke_after:
            state.revoked = True
        if state.revoked:
            return SimResponse(401, INVALID_TOKEN_BODY, self._json_headers()), location_id, "error"

        # Limits: the daily budget, then the sliding burst window; 429s do not count against either.
        now = self.clock()
        today = self._now().date()
        while state.window and state.window[0] <= now - self.burst_interval_s:
            state.window.popleft()
        if state.daily.get(today, 0) >= self.daily_limit or len(state.window) >= self.burst_max:
            wait = state.window[0] + self.burst_interval_s - now if state.window else self.burst_interval_s
            return self._too_many(state, today, wait), location_id, "rate_limited"
        state.window.append(now)
        state.daily[today] = state.daily.get(today, 0) + 1

        faults, rng = self.faults, self._fault_rng
        if state.burst_left > 0:
            state.burst_left -= 1
            return self._too_many(state, today, self.burst_interval_s), location_id, "fault:429"
        if faults.rate_limit_burst_rate and rng.random() < faults.rate_limit_burst_rate:
            state.burst_left = max(0, faults.rate_limit_burst_length - 1)
            return self._too_many(state, today, self.burst_interval_s), location_id, "fault:429"
        if faults.server_error_rate and rng.random() < faults.server_error_rate:
            status = rng.choice([500, 502, 503])
            messages = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}
            error_body = {"statusCode": status, "message": messages[status]}
            return SimResponse(status, error_body, self._headers(state, today)), location_id, "fault:5xx"
        if faults.timeout_rate and rng.random() < faults.timeout_rate:
            return SimResponse(0, None, {}, action="timeout"), location_id, "fault:timeout"
        if faults.drop_rate and rng.random() < faults.drop_rate:
            return SimResponse(0, None, {}, action="drop"), location_id, "fault:drop"

        if not lower.get("version"):
            # Version is a required header on every endpoint; the exact rejection is UNCONFIRMED.
            error_body = {"statusCode": 400, "message": "Version header is required", "error": "Bad Request"}
            return SimResponse(400, error_body, self._headers(state, today)), location_id, "error"
        if lower["version"] not in ACCEPTED_VERSIONS:
            error_body = {"statusCode": 400, "message": "Invalid Version header", "error": "Bad Request"}
            return SimResponse(400, error_body, self._headers(state, today)), location_id, "error"

        status, payload, outcome = self._route(state, method, path, query, body)
        if isinstance(payload, dict) and status == 200:
            payload = {**payload, "traceId": self._trace_id()}
        return SimResponse(status, payload, self._headers(state, today)), location_id, outcome

    def _trace_id(self) -> str:
        value = self._trace_rng.getrandbits(128)
        text = f"{value:032x}"
        return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"

    def _json_headers(self) -> dict[str, str]:
        return {"Content-Type": "application/json"}

    def _headers(self, state: _LocationState, today: date) -> dict[str, str]:
        """The five X-RateLimit-* headers GHL sends on every response (README §9)."""
        return {
            "Content-Type": "application/json",
            "X-RateLimit-Limit-Daily": str(self.daily_limit),
            "X-RateLimit-Daily-Remaining": str(max(0, self.daily_limit - state.daily.get(today, 0))),
            "X-RateLimit-Interval-Milliseconds": str(int(self.burst_interval_s * 1000)),
            "X-RateLimit-Max": str(self.burst_max),
            "X-RateLimit-Remaining": str(max(0, self.burst_max - len(state.window))),
        }

    def _too_many(self, state: _LocationState, today: date, wait: float) -> SimResponse:
        headers = self._headers(state, today)
        headers["X-RateLimit-Remaining"] = "0"
        if self.faults.retry_after:
            headers["Retry-After"] = str(max(1, round(wait)))
        return SimResponse(429, TOO_MANY_BODY, headers)

    def _route(self, state, method, path, query, body) -> tuple[int, Any, str]:
        parts = [unquote(part) for part in path.strip("/").split("/")]
        location = state.location
        if method == "GET" and parts == ["conversations", "messages", "export"]:
            return self._with_scope(
                location, "conversations/message.readonly", lambda: self._export(state, query)
            )
        if method == "GET" and parts == ["conversations", "search"]:
            return self._with_scope(
                location, "conversations.readonly", lambda: self._search_conversations(location, query)
            )
        if method == "GET" and len(parts) == 3 and parts[0] == "conversations" and parts[2] == "messages":
            return self._with_scope(
                location,
                "conversations/message.readonly",
                lambda: self._conversation_messages(location, parts[1], query),
            )
        if method == "GET" and len(parts) == 2 and parts[0] == "contacts" and parts[1] not in ("", "search"):
            return self._with_scope(
                location, "contacts.readonly", lambda: self._get_contact(location, parts[1])
            )
        if method == "POST" and parts == ["contacts", "search"]:
            return self._with_scope(
                location, "contacts.readonly", lambda: self._search_contacts(location, body)
            )
        if method == "GET" and parts in (["users"], ["users", ""]):
            return self._with_scope(location, "users.readonly", lambda: self._list_users(location, query))
        if method == "GET" and parts == ["users", "search"]:
            return self._with_scope(location, "users.readonly", lambda: self._search_users(location, query))
        if method == "GET" and len(parts) == 2 and parts[0] == "locations":
            return self._with_scope(
                location, "locations.readonly", lambda: self._get_location(location, parts[1])
            )
        return 404, {"statusCode": 404, "message": f"Cannot {method} {path}", "error": "Not Found"}, "error"

    def _with_scope(
        self, location: SimLocation, scope: str, answer: Callable[[], tuple]
    ) -> tuple[int, Any, str]:
        if scope not in location.scopes:
            return 401, SCOPE_BODY, "error"
        status, payload, *rest = answer()
        return status, payload, rest[0] if rest else ("ok" if status == 200 else "error")

    def _check_location_param(self, location: SimLocation, query: Mapping[str, str]) -> tuple | None:
        requested = query.get("locationId")
        if not requested:
            return _unprocessable("locationId should not be empty")
        if requested != location.location_id:
            return 403, FOREIGN_LOCATION_BODY
        return None

    # ---- export

    def _export(self, state: _LocationState, query: Mapping[str, str]) -> tuple:
        location = state.location
        problem = self._check_location_param(location, query)
        if problem:
            return problem
        try:
            limit = int(query.get("limit", "100"))
        except ValueError:
            return _unprocessable("limit must be a number conforming to the specified constraints")
        if not 10 <= limit <= 500:
            return _unprocessable(
                "limit must not be less than 10" if limit < 10 else "limit must not be greater than 500"
            )
        channel = query.get("channel")
        if channel is not None and channel not in _CHANNEL_TYPES:
            return _unprocessable(f"channel must be one of the following values: {', '.join(_CHANNEL_TYPES)}")
        sort_by = query.get("sortBy", "createdAt")
        sort_order = query.get("sortOrder", "desc")
        if sort_by not in ("createdAt", "updatedAt") or sort_order not in ("asc", "desc"):
            return _unprocessable("sortBy must be createdAt or updatedAt; sortOrder must be asc or desc")
        now = self.clock()
        for stale in [key for key, pit in self._pits.items() if now - pit.last_used > CURSOR_TTL_S]:
            # Abandoned walks; their cursors now read as expired.
            self._dead_pits[stale] = len(self._pits.pop(stale).records)

        cursor = query.get("cursor")
        if cursor:
            try:
                decoded = json.loads(base64.urlsafe_b64decode(cursor.encode()))
                pit_id, offset = str(decoded["pitId"]), int(decoded["offset"])
            except (ValueError, KeyError, TypeError):
                return (*_unprocessable("cursor is invalid"), "error")
            pit = self._pits.get(pit_id)
            forced = self.faults.cursor_expiry_once and not state.cursor_expiry_done
            if (
                pit is None
                or pit.location_id != location.location_id
                or now - pit.last_used > CURSOR_TTL_S
                or forced
            ):
                if forced:
                    state.cursor_expiry_done = True
                dead = self._pits.pop(pit_id, None)
                if dead is not None:
                    self._dead_pits[pit_id] = len(dead.records)
                return self._cursor_expired(pit_id)
            records = pit.records
        else:
            try:
                start = _parse_date_param(query["startDate"]) if query.get("startDate") else None
                end = _parse_date_param(query["endDate"]) if query.get("endDate") else None
            except ValueError:
                return _unprocessable("startDate and endDate must be valid dates")
            start = start or datetime.combine(self._start_date(location), dtime(0), tzinfo=UTC) - timedelta(
                days=1
            )
            end = end or self._now() + timedelta(milliseconds=1)
            records = []
            for message in self._messages(location, start, end):
                keep = self._in_channel(message, channel)
                if keep and query.get("contactId") not in (None, message["contactId"]):
                    keep = False
                if keep and query.get("conversationId") not in (None, message["conversationId"]):
                    keep = False
                if keep:
                    records.append(message)
            field_name = "dateAdded" if sort_by == "createdAt" else "dateUpdated"
            records.sort(
                key=lambda m: (self._served_sort_value(m, field_name), m["id"]), reverse=sort_order == "desc"
            )
            pit_id, offset = _gid("pit", self.seed, now, len(self._pits), self._trace_rng.random()), 0
            pit = self._pits[pit_id] = _Pit(location.location_id, records, now)

        pit.last_used = now
        page = records[offset : offset + limit]
        next_offset = offset + len(page)
        next_cursor = None
        if next_offset < len(records):
            last = page[-1]
            token = {
                "pitId": pit_id,
                "lastSort": [
                    int(datetime.fromisoformat(last["dateAdded"].replace("Z", "+00:00")).timestamp() * 1000)
                ],
                "lastId": last["id"],
                "offset": next_offset,
            }
            next_cursor = base64.urlsafe_b64encode(json.dumps(token).encode()).decode()
        else:
            self._pits.pop(pit_id, None)
        return 200, {
            "messages": [self._served(m) for m in page],
            "nextCursor": next_cursor,
            "total": len(records),
        }

    def _cursor_expired(self, pit_id: str) -> tuple:
        """A dead cursor's answer, in the shape ``Shapes.cursor_expired_answer`` chose (GHL documents none)."""
        answer = self.shapes.cursor_expired_answer
        if answer == "422":
            return (*_unprocessable(CURSOR_EXPIRED_MESSAGE), "cursor_expired")
        if answer == "400":
            return (
                400,
                {"statusCode": 400, "message": CURSOR_EXPIRED_MESSAGE, "error": "Bad Request"},
                "cursor_expired",
            )
        if answer == "empty":
            # 200 and nothing more, while the total still counts what the walk has not seen.
            total = self._dead_pits.get(pit_id, 0)
            return 200, {"messages": [], "nextCursor": None, "total": total}, "cursor_expired"
        status = int(answer)
        messages = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}
        return status, {"statusCode": status, "message": messages[status]}, "cursor_expired"

    def _served_sort_value(self, message: dict, field_name: str) -> str:
        update = self._updates.get(message["id"])
        if update and field_name in update:
            return update[field_name]
        return message[field_name]

    # ---- conversations

    def _threads(self, location: SimLocation) -> dict[str, list[dict]]:
        """Every visible message by conversation, oldest first; cached per location and clock second."""
        key = (location.location_id, int(self.clock()))
        cached = self._threads_cache.get(location.location_id)
        if cached is not None and cached[0] == key:
            return cached[1]
        start = datetime.combine(self._start_date(location), dtime(0), tzinfo=UTC) - timedelta(days=1)
        threads: dict[str, list[dict]] = {}
        for message in self._messages(location, start, self._now() + timedelta(milliseconds=1)):
            threads.setdefault(message["conversationId"], []).append(message)
        self._threads_cache[location.location_id] = (key, threads)
        return threads

    def _search_conversations(self, location: SimLocation, query: Mapping[str, str]) -> tuple:
        problem = self._check_location_param(location, query)
        if problem:
            return problem
        try:
            limit = int(query.get("limit", "20"))
            start_after = int(float(query["startAfterDate"])) if query.get("startAfterDate") else None
        except ValueError:
            return _unprocessable("limit and startAfterDate must be numbers")
        if not 1 <= limit <= 100:
            return _unprocessable("limit must not be greater than 100")
        threads = self._threads(location)
        contacts = {c["id"]: c for c in self._contacts_of(location)}
        conversations = []
        for conversation_id, messages in threads.items():
            last, first = messages[-1], messages[0]
            contact = contacts.get(last["contactId"], {})
            last_ms = int(_parse_date_param(last["dateAdded"]).timestamp() * 1000)
            conversations.append(
                {
                    "id": conversation_id,
                    "locationId": location.location_id,
                    "contactId": last["contactId"],
                    "dateAdded": int(_parse_date_param(first["dateAdded"]).timestamp() * 1000),
                    "dateUpdated": last_ms,
                    "lastMessageDate": last_ms,
                    "lastMessageType": last["messageType"],
                    "lastMessageBody": last.get("body", ""),
                    "lastMessageDirection": last["direction"],
                    "unreadCount": 0,
                    "inbox": True,
                    "fullName": contact.get("name"),
                    "contactName": contact.get("name"),
                    "email": contact.get("email"),
                    "phone": contact.get("phone"),
                    "type": "TYPE_PHONE",
                    "tags": [],
                    "messageTypes": sorted({m["type"] for m in messages}),
                    "sort": [last_ms],
                }
            )
        if query.get("contactId"):
            conversations = [c for c in conversations if c["contactId"] == query["contactId"]]
        if query.get("lastMessageType"):
            conversations = [c for c in conversations if c["lastMessageType"] == query["lastMessageType"]]
        descending = query.get("sort", "desc") != "asc"
        conversations.sort(key=lambda c: (c["sort"][0], c["id"]), reverse=descending)
        total = len(conversations)
        if start_after is not None:
            conversations = [
                c
                for c in conversations
                if (c["sort"][0] < start_after if descending else c["sort"][0] > start_after)
            ]
        return 200, {"conversations": conversations[:limit], "total": total}

    def _conversation_messages(
        self, location: SimLocation, conversation_id: str, query: Mapping[str, str]
    ) -> tuple:
        try:
            limit = int(query.get("limit", "20"))
        except ValueError:
            return _unprocessable("limit must be a number")
        if not 1 <= limit <= 100:
            return _unprocessable("limit must not be greater than 100")
        messages = list(self._threads(location).get(conversation_id, []))
        if not messages:
            return 400, {"statusCode": 400, "message": "Conversation not found"}
        if query.get("type"):
            wanted = {part.strip() for part in query["type"].split(",")}
            messages = [m for m in messages if m["messageType"] in wanted]
        messages.reverse()  # newest first
        last_id = query.get("lastMessageId")
        if last_id:
            ids = [m["id"] for m in messages]
            messages = messages[ids.index(last_id) + 1 :] if last_id in ids else []
        page = messages[:limit]
        if self.shapes.flat_message_pages:  # the 2026 spec's form
            return 200, {
                "lastMessageId": page[-1]["id"] if page else None,
                "nextPage": len(messages) > limit,
                "messages": [self._served(m) for m in page],
            }
        # The live API nests the page under "messages" (README §3), unlike the 2026 spec.
        return 200, {
            "messages": {
                "lastMessageId": page[-1]["id"] if page else None,
                "nextPage": len(messages) > limit,
                "messages": [self._served(m) for m in page],
            }
        }

    # ---- contacts, users, locations

    def _get_contact(self, location: SimLocation, contact_id: str) -> tuple:
        for contact in self._contacts_of(location):
            if contact["id"] == contact_id:
                return 200, {"contact": copy.deepcopy(contact)}
        return 400, {"statusCode": 400, "message": "Contact not found"}

    def _search_contacts(self, location: SimLocation, body: bytes) -> tuple:
        try:
            request = json.loads(body or b"{}")
        except ValueError:
            return 400, {"statusCode": 400, "message": "Unexpected token in JSON", "error": "Bad Request"}
        if not isinstance(request, dict):
            return _unprocessable("body must be an object")
        if request.get("locationId") != location.location_id:
            return (
                (403, FOREIGN_LOCATION_BODY)
                if request.get("locationId")
                else _unprocessable("locationId is required")
            )
        page_limit = request.get("pageLimit")
        if not isinstance(page_limit, int) or not 1 <= page_limit <= 500:
            return _unprocessable("pageLimit must be an integer between 1 and 500")
        contacts = self._contacts_of(location)
        search_after = request.get("searchAfter")
        if search_after is not None:
            if not (isinstance(search_after, list) and len(search_after) == 2):
                return _unprocessable("searchAfter must be [number, string]")
            after_key = (search_after[0], str(search_after[1]))
            contacts = [c for c in contacts if (self._contact_ms(c), c["id"]) > after_key]
        page = []
        for contact in contacts[:page_limit]:
            hit = copy.deepcopy(contact)
            hit["searchAfter"] = [self._contact_ms(contact), contact["id"]]
            page.append(hit)
        return 200, {"contacts": page, "total": len(self._contacts_of(location))}

    @staticmethod
    def _contact_ms(contact: dict) -> int:
        return int(_parse_date_param(contact["dateAdded"]).timestamp() * 1000)

    def _list_users(self, location: SimLocation, query: Mapping[str, str]) -> tuple:
        if self.shapes.users_list_removed:
            return 400, NOT_IN_V3_BODY
        problem = self._check_location_param(location, query)
        if problem:
            return problem
        return 200, {"users": copy.deepcopy(self._users_of(location))}

    def _company_id(self) -> str:
        return _gid("company", self.seed)

    def _search_users(self, location: SimLocation, query: Mapping[str, str]) -> tuple:
        """``GET /users/search``: needs ``companyId`` (the agency's); ``skip``/``limit`` pages; ``count``."""
        company = query.get("companyId")
        if not company:
            return _unprocessable("companyId should not be empty")
        if company != self._company_id():
            return 403, FOREIGN_LOCATION_BODY
        if query.get("locationId") not in (None, location.location_id):
            return 403, FOREIGN_LOCATION_BODY
        try:
            skip, limit = int(query.get("skip", "0")), int(query.get("limit", "25"))
        except ValueError:
            return _unprocessable("skip and limit must be numbers")
        if skip < 0 or not 1 <= limit <= 100:
            return _unprocessable("limit must be between 1 and 100")
        users = self._users_of(location)
        return 200, {"users": copy.deepcopy(users[skip : skip + limit]), "count": len(users)}

    def _get_location(self, location: SimLocation, location_id: str) -> tuple:
        if location_id != location.location_id:
            return 403, FOREIGN_LOCATION_BODY
        return 200, {
            "location": {
                "id": location.location_id,
                "companyId": self._company_id(),
                "name": location.name,
                "timezone": location.timezone,
                "country": location.country,
                "email": f"office@{location.name.lower().replace(' ', '-')}.example",
            }
        }


# --------------------------------------------------------------------------- real HTTP


class SimServer:
    """The simulator on a loopback port, served by a thread; a context manager."""

    def __init__(self, simulator: GHLSimulator, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.simulator = simulator
        self._httpd = ThreadingHTTPServer((host, port), _make_handler(simulator))
        self._httpd.daemon_threads = True
        self.host, self.port = self._httpd.server_address[:2]
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="ghl-simulator", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        """Base URL to give the client (``base_url=``) or ``GHL_API_BASE_URL``."""
        return f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        """Stop serving and free the port."""
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> SimServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _make_handler(simulator: GHLSimulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "ghl-simulator"

        def _answer(self) -> None:
            split = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            query = dict(parse_qsl(split.query, keep_blank_values=True))
            response = simulator.handle(
                self.command, split.path, query=query, headers=dict(self.headers), body=body
            )
            if response.action is not None:
                # A dropped connection or a timeout: close without an answer.
                self.close_connection = True
                return
            content = response.content()
            self.send_response(response.status)
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

        do_GET = _answer
        do_POST = _answer

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
            log.debug("simulator: " + format, *args)  # the request line only; never headers

    return Handler


def serve_forever(
    port: int = 8765, *, host: str = "127.0.0.1", simulator: GHLSimulator | None = None
) -> None:
    """Serve the demo simulator (or ``simulator``) on ``host:port`` until interrupted (``ghl-pipeline simulator``)."""
    simulator = simulator or GHLSimulator.demo()
    server = simulator.serve(host=host, port=port)
    print(f"GHL simulator serving on {server.url} (Ctrl-C to stop)", flush=True)
    print("Point the pipeline at it with GHL_API_BASE_URL=" + server.url, flush=True)
    for location in simulator.locations:
        # These are the simulator's own fake tokens, printed so a developer can register the projects.
        print(
            f"  {location.name}: location_id={location.location_id} token={location.token} tz={location.timezone}",
            flush=True,
        )
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
