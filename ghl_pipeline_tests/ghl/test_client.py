"""The client against the simulator: exact ground truth through faults, fewest requests, typed errors, no leaks."""

from __future__ import annotations

import json
import logging
import math
from collections import Counter
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from ghl_pipeline.ghl.client import GHLClient
from ghl_pipeline.ghl.errors import (
    GHLAccessError,
    GHLAuthError,
    GHLBadRequestError,
    GHLForbiddenError,
    GHLPaginationError,
    GHLRateLimitBudgetError,
    GHLScopeError,
    GHLUnavailableError,
)
from ghl_pipeline.ghl.models import Secret
from ghl_pipeline.ghl.ratelimit import InMemoryRateLimiter
from ghl_pipeline.ghl.simulator import ALL_SCOPES, Faults, SimLocation

START = datetime(2025, 3, 8, tzinfo=UTC)  # spans the US DST change (2025-03-09)
END = datetime(2025, 3, 12, tzinfo=UTC)


def _sync(client: GHLClient, start=START, end=END):
    return [call for page in client.iter_call_pages(start=start, end=end) for call in page.calls]


def _loc(**kwargs) -> SimLocation:
    options = {"location_id": "smallLoc000000000001", "token": "pit-small-secret-token", "name": "Small Co"}
    options.update(kwargs)
    return SimLocation(**options)


# --------------------------------------------------------------------------- done-when


def test_several_days_of_several_locations_through_faults_match_the_ground_truth(make_sim, make_client):
    sim = make_sim(faults=Faults.chaos(), busy_calls_per_day=1500)
    for location in sim.locations:
        client = make_client(sim, location)
        calls = _sync(client)
        truth = sim.ground_truth(location.location_id, START, END)

        ids = [call.id for call in calls]
        assert len(ids) == len(set(ids)), "a call was yielded twice"
        assert set(ids) == {message["id"] for message in truth}, "a call is missing or extra"
        assert all(START <= call.date_added < END for call in calls)

        users = client.list_users()
        contact_ids = {call.contact_id for call in calls if call.contact_id}
        contacts = client.fetch_contacts(contact_ids)
        assert set(contacts) == contact_ids
        assert {call.user_id for call in calls if call.user_id} <= set(users)

        # Every request the client sent reached the simulator's log, and it counted them all.
        log = [r for r in sim.requests if r.location_id == location.location_id]
        assert client.request_count == len(log)

        # The minimum: the export's pages, one users call, the contact pages for the uncached contacts.
        pages = max(1, math.ceil(len(truth) / 500))
        contact_pool = location.contacts
        contact_cost = min(len(contact_ids), math.ceil(contact_pool / 500)) + 1
        minimum = pages + 1 + contact_cost
        # ... plus what the faults forced: every failed answer, and one restart page per expired cursor.
        outcomes = Counter(r.outcome for r in log)
        forced = sum(n for outcome, n in outcomes.items() if outcome != "ok")
        assert outcomes["rate_limited"] == 0, "the limiter let the client run into GHL's burst limit"
        assert client.request_count <= minimum + forced + outcomes["cursor_expired"]

    outcomes = Counter(r.outcome for r in sim.requests)
    assert outcomes["fault:5xx"] / len(sim.requests) >= 0.10
    assert outcomes["fault:429"] >= 1
    assert outcomes["cursor_expired"] >= 1


def test_a_slow_consumer_outlives_the_cursor_and_still_gets_every_call_once(make_sim, make_client, clock):
    sim = make_sim([_loc(calls_per_day=900)])
    client = make_client(sim, sim.locations[0])
    calls = []
    for page in client.iter_call_pages(start=START, end=END):
        calls.extend(page.calls)
        clock.advance(121)  # longer than the export cursor lives
    truth = sim.ground_truth(sim.locations[0].location_id, START, END)
    assert sorted(call.id for call in calls) == sorted(message["id"] for message in truth)
    assert Counter(r.outcome for r in sim.requests)["cursor_expired"] >= 2


# --------------------------------------------------------------------------- the export request


def test_export_request_asks_for_calls_at_the_largest_page_size_in_utc(make_sim, make_client):
    sim = make_sim([_loc(calls_per_day=400)])
    client = make_client(sim, sim.locations[0])
    chicago = datetime(2025, 3, 10, tzinfo=UTC).astimezone(__import__("zoneinfo").ZoneInfo("America/Chicago"))
    _sync(client, start=chicago, end=chicago + timedelta(days=2))
    first, second = sim.requests[0], sim.requests[1]
    assert first.path == "/conversations/messages/export"
    assert first.query == {
        "locationId": "smallLoc000000000001",
        "channel": "Call",
        "limit": "500",
        "sortBy": "createdAt",
        "sortOrder": "asc",
        "startDate": "2025-03-10T00:00:00.000Z",
        "endDate": "2025-03-12T00:00:00.000Z",
    }
    assert second.query["cursor"] and second.query["startDate"] == first.query["startDate"]


def test_headers_carry_the_version_each_service_documents(make_sim):
    sim = make_sim([_loc()])
    seen: list[httpx.Request] = []
    inner = sim.transport()

    def recording(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return inner.handle_request(request)

    client = GHLClient(
        token="pit-small-secret-token",
        location_id="smallLoc000000000001",
        project_name="Small Co",
        transport=httpx.MockTransport(recording),
    )
    _sync(client, start=datetime(2025, 3, 19, tzinfo=UTC), end=datetime(2025, 3, 20, tzinfo=UTC))
    client.list_users()
    client.get_location()
    client.fetch_contacts(["nope0000000000000001"])
    versions = {request.url.path: request.headers["Version"] for request in seen}
    assert versions == {
        "/conversations/messages/export": "2021-04-15",
        "/users/": "2021-07-28",
        "/locations/smallLoc000000000001": "2021-07-28",
        "/contacts/nope0000000000000001": "2021-07-28",
    }
    for request in seen:
        assert request.headers["Authorization"] == "Bearer pit-small-secret-token"
        assert request.headers["Accept"] == "application/json"
        assert request.headers["User-Agent"].startswith("ghl-pipeline/")


def test_pages_are_streamed_not_gathered(make_sim, make_client):
    sim = make_sim([_loc(calls_per_day=600)])
    client = make_client(sim, sim.locations[0])
    pages = client.iter_call_pages(start=START, end=END)
    first = next(pages)
    assert client.request_count == 1
    assert len(first.calls) <= 500 and first.next_cursor
    assert sum(len(page.calls) for page in pages) + len(first.calls) == len(
        sim.ground_truth(sim.locations[0].location_id, START, END)
    )


def test_only_call_like_messages_are_kept_even_if_the_export_sends_others(make_sim, make_client):
    sim = make_sim([_loc(calls_per_day=200)], faults=Faults(non_call_in_call_channel_rate=0.5))
    client = make_client(sim, sim.locations[0])
    calls = _sync(client)
    assert {call.message_type for call in calls} == {"TYPE_CALL", "TYPE_IVR_CALL", "TYPE_CUSTOM_CALL"}
    assert len(calls) == len(sim.ground_truth(sim.locations[0].location_id, START, END))


def test_malformed_records_arrive_with_problems_and_their_raw_json(make_sim, make_client):
    sim = make_sim([_loc(calls_per_day=100)], faults=Faults(malformed_rate=0.2))
    calls = _sync(make_client(sim, sim.locations[0]))
    bad = [call for call in calls if call.problems]
    assert 0.1 < len(bad) / len(calls) < 0.3
    assert all(call.id and call.raw["id"] == call.id for call in bad)
    assert len(calls) == len(sim.ground_truth(sim.locations[0].location_id, START, END))


def test_late_changes_show_up_on_the_next_sync(make_sim, make_client, clock):
    sim = make_sim([_loc(calls_per_day=50)])
    client = make_client(sim, sim.locations[0])
    target = next(c for c in _sync(client) if c.call_status == "no-answer")
    clock.advance(600)
    sim.update_call(target.id, status="completed", duration=93)
    again = {c.id: c for c in _sync(client)}[target.id]
    assert (again.call_status, again.duration_seconds) == ("completed", 93)
    assert again.date_updated == datetime.fromtimestamp(clock.time(), tz=UTC).replace(microsecond=0)


def test_an_empty_window_sends_nothing(make_sim, make_client):
    sim = make_sim([_loc()])
    client = make_client(sim, sim.locations[0])
    assert _sync(client, start=START, end=START) == []
    assert client.request_count == 0
    with pytest.raises(ValueError):
        _sync(client, start=END, end=START)
    with pytest.raises(ValueError):
        _sync(client, start=datetime(2025, 3, 8), end=END)


# --------------------------------------------------------------------------- pagination guards


def _export_transport(pages: list[dict]) -> httpx.MockTransport:
    """Answers export requests with the given pages in order (a broken GHL)."""
    answers = iter(pages)

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=next(answers))

    return httpx.MockTransport(handler)


def _message(n: int) -> dict:
    return {
        "id": f"msg{n:017d}",
        "type": 1,
        "messageType": "TYPE_CALL",
        "dateAdded": f"2025-03-08T10:00:{n:02d}.000Z",
        "direction": "inbound",
        "meta": {"call": {"duration": 10, "status": "completed"}},
    }


def _client(transport: httpx.BaseTransport, **kwargs) -> GHLClient:
    return GHLClient(
        token="pit-x",
        location_id="loc00000000000000001",
        project_name="Broken GHL",
        transport=transport,
        sleep=lambda _: None,
        **kwargs,
    )


def test_a_repeated_cursor_stops_with_a_clear_error():
    pages = [
        {"messages": [_message(1)], "nextCursor": "c1"},
        {"messages": [_message(2)], "nextCursor": "c1"},
    ]
    with pytest.raises(GHLPaginationError, match="cursor"):
        _sync(_client(_export_transport(pages)))


def test_a_repeated_page_stops_with_a_clear_error():
    pages = [
        {"messages": [_message(1), _message(2)], "nextCursor": "c1"},
        {"messages": [_message(1), _message(2)], "nextCursor": "c2"},
    ]
    with pytest.raises(GHLPaginationError, match="page"):
        _sync(_client(_export_transport(pages)))


def test_the_nested_messages_page_is_not_mistaken_for_an_export_page():
    pages = [{"messages": {"messages": [_message(1)], "nextPage": False}}]
    with pytest.raises(Exception, match="messages list"):
        _sync(_client(_export_transport(pages)))


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("setup", "error"),
    [
        ("wrong token", GHLAuthError),
        ("missing scope", GHLScopeError),
        ("foreign location", GHLForbiddenError),
    ],
)
def test_access_errors_are_typed_name_the_project_and_are_not_retried(make_sim, make_client, setup, error):
    own = _loc(
        scopes=ALL_SCOPES - {"conversations/message.readonly"} if setup == "missing scope" else ALL_SCOPES
    )
    other = _loc(location_id="otherLoc000000000002", token="pit-other-secret", name="Other Co")
    sim = make_sim([own, other])
    if setup == "wrong token":
        client = make_client(sim, own, token="pit-wrong-secret-token")
    elif setup == "foreign location":
        client = make_client(sim, own, location_id=other.location_id, project_name=own.name)
    else:
        client = make_client(sim, own)
    with pytest.raises(error) as caught:
        _sync(client)
    assert isinstance(caught.value, GHLAccessError)
    assert client.request_count == 1 and len(sim.requests) == 1
    message = str(caught.value)
    assert "Small Co" in message and caught.value.project_name == "Small Co"
    assert caught.value.message in message  # GHL's own words
    assert "secret" not in message and "secret" not in repr(caught.value)


def test_scope_errors_on_enrichment_are_told_apart(make_sim, make_client):
    sim = make_sim([_loc(scopes=ALL_SCOPES - {"users.readonly", "locations.readonly"})])
    client = make_client(sim, sim.locations[0])
    with pytest.raises(GHLScopeError, match="not authorized for this scope"):
        client.list_users()
    with pytest.raises(GHLScopeError):
        client.get_location()
    assert client.request_count == 2


def test_a_token_revoked_mid_run_stops_the_run(make_sim, make_client):
    sim = make_sim([_loc(calls_per_day=1200)], faults=Faults(revoke_token_after=2))
    client = make_client(sim, sim.locations[0])
    with pytest.raises(GHLAuthError, match="Invalid token"):
        _sync(client)
    assert client.request_count == 3


def test_retries_run_out_into_an_unavailable_error(make_sim, make_client, clock):
    sim = make_sim([_loc()], faults=Faults(server_error_rate=1.0))
    client = make_client(sim, sim.locations[0], max_attempts=4, max_backoff=5.0)
    with pytest.raises(GHLUnavailableError, match="after 4 attempts") as caught:
        client.list_users()
    assert caught.value.status in (500, 502, 503)
    assert client.request_count == 4
    assert 0 < clock.slept <= 3 * 5.5  # exponential backoff, capped


def test_429_honours_retry_after(make_sim, clock):
    sim = make_sim(
        [_loc()], faults=Faults(rate_limit_burst_rate=1.0, rate_limit_burst_length=2, retry_after=True)
    )
    waits: list[float] = []
    client = GHLClient(
        token="pit-small-secret-token",
        location_id="smallLoc000000000001",
        project_name="Small Co",
        transport=sim.transport(),
        limiter=InMemoryRateLimiter(clock=clock.time, sleep=clock.sleep),
        sleep=lambda s: (waits.append(s), clock.sleep(s)),
        max_attempts=3,
    )
    with pytest.raises(GHLUnavailableError, match="429"):
        client.list_users()  # every request starts a new burst at rate 1.0
    assert waits == [10.0, 10.0]


def test_a_bad_request_is_not_retried(make_sim):
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(
            422, json={"statusCode": 422, "message": ["limit must be a number"], "error": "x"}
        )

    client = _client(httpx.MockTransport(handler))
    with pytest.raises(GHLBadRequestError, match="limit must be a number") as caught:
        client.get_location()
    assert caught.value.status == 422 and len(calls) == 1


def test_the_daily_budget_is_refused_before_it_runs_out(make_sim, clock):
    sim = make_sim([_loc(calls_per_day=2000)], daily_limit=1_010)
    client = GHLClient(
        token="pit-small-secret-token",
        location_id="smallLoc000000000001",
        project_name="Small Co",
        transport=sim.transport(),
        limiter=InMemoryRateLimiter(clock=clock.time, sleep=clock.sleep, daily_reserve=1_000),
        sleep=clock.sleep,
    )
    with pytest.raises(GHLRateLimitBudgetError, match="Small Co"):
        _sync(client)
    assert all(r.status == 200 for r in sim.requests)  # refused by us, never by GHL
    assert client.request_count == 10


# --------------------------------------------------------------------------- enrichment


def test_users_are_fetched_once_per_client(make_sim, make_client):
    sim = make_sim([_loc(users=3)])
    client = make_client(sim, sim.locations[0])
    first = client.list_users()
    second = client.list_users()
    assert first == second and len(first) == 3 and all(user.name for user in first.values())
    assert client.request_count == 1


def test_location_is_fetched_once_per_client(make_sim, make_client):
    # A run that syncs several spans of one project resolves its zone once, not once per span.
    sim = make_sim([_loc()])
    client = make_client(sim, sim.locations[0])
    assert client.get_location() == client.get_location()
    assert client.get_location().timezone == sim.locations[0].timezone
    assert client.request_count == 1


def test_few_contacts_are_fetched_one_by_one(make_sim, make_client):
    sim = make_sim([_loc()])
    client = make_client(sim, sim.locations[0])
    ids = {c.contact_id for c in _sync(client)}
    wanted = sorted(ids)[:3]
    before = client.request_count
    contacts = client.fetch_contacts(wanted + ["gone0000000000000001"])
    assert sorted(contacts) == wanted
    assert client.request_count - before == 4
    assert [r.path for r in sim.requests[-4:]] == [
        f"/contacts/{i}" for i in sorted([*wanted, "gone0000000000000001"])
    ]


def test_many_contacts_come_from_search_pages(make_sim, make_client):
    sim = make_sim([_loc(calls_per_day=700, contacts=1200)])
    client = make_client(sim, sim.locations[0])
    ids = {c.contact_id for c in _sync(client)}
    assert len(ids) > 500
    before = client.request_count
    contacts = client.fetch_contacts(ids)
    assert set(contacts) == ids
    assert client.request_count - before == 3  # 1200 contacts, 500 a page
    searches = [r for r in sim.requests if r.path == "/contacts/search"]
    assert len(searches) == 3


def test_contact_ids_from_data_never_become_other_paths(make_sim, make_client):
    sim = make_sim([_loc()])
    client = make_client(sim, sim.locations[0])
    assert client.fetch_contacts(["../users/", "a/b", "x?locationId=evil", "", "ok00000000000000001"]) == {}
    assert [r.path for r in sim.requests] == ["/contacts/ok00000000000000001"]


def test_get_location_reads_the_time_zone(make_sim, make_client):
    sim = make_sim()
    sydney = sim.locations[2]
    location = make_client(sim, sydney).get_location()
    assert (location.id, location.timezone, location.country) == (
        sydney.location_id,
        "Australia/Sydney",
        "AU",
    )


# --------------------------------------------------------------------------- secrets


def test_the_token_never_shows_in_reprs_errors_or_logs(make_sim, make_client, caplog):
    caplog.set_level(logging.DEBUG)
    location = _loc(calls_per_day=800)
    sim = make_sim([location], faults=Faults.chaos())
    client = make_client(sim, location, token=Secret(location.token))
    _sync(client)
    client.list_users()
    bad = make_client(sim, location, token="pit-small-secret-token-but-wrong")
    with pytest.raises(GHLAuthError) as caught:
        bad.list_users()
    texts = [
        caplog.text,
        repr(client),
        repr(location),
        repr(sim.locations),
        str(caught.value),
        repr(caught.value),
        json.dumps([r.__dict__ for r in sim.requests], default=str),
    ]
    assert "Retrying" in caplog.text or "retrying" in caplog.text  # the faults were logged ...
    for text in texts:
        assert "secret" not in text  # ... without the token


def test_a_conversations_calls_are_read_from_the_nested_pages(make_sim, make_client):
    sim = make_sim([_loc(calls_per_day=60, contacts=20)])
    client = make_client(sim, sim.locations[0])
    truth = sim.ground_truth(sim.locations[0].location_id, START, END)
    conversation = truth[0]["conversationId"]
    calls = list(client.iter_conversation_calls(conversation))
    in_window = {c.id for c in calls if START <= c.date_added < END}
    assert in_window == {m["id"] for m in truth if m["conversationId"] == conversation}
    assert client.request_count > 1  # more than one page of 100
    assert [c.date_added for c in calls] == sorted((c.date_added for c in calls), reverse=True)
    with pytest.raises(ValueError):
        list(client.iter_conversation_calls("../users"))


def test_errors_survive_pickling_for_dagster():
    import pickle

    error = GHLScopeError("Acme Roofing", 401, "The token is not authorized for this scope.")
    again = pickle.loads(pickle.dumps(error))
    assert (type(again), again.project_name, again.status, str(again)) == (
        type(error),
        "Acme Roofing",
        401,
        str(error),
    )
