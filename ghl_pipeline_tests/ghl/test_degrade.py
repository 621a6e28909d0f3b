"""The client where GHL's reference is silent or contradicts itself: it degrades loudly, never drops.

Each test turns on one simulator ``Shapes`` option (a way the live API may answer) and checks the
outcome against the simulator's ground truth.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import UTC, datetime

import httpx
import pytest

from ghl_pipeline.ghl.client import CURSOR_SERVER_ERROR_ATTEMPTS, NOT_JSON_403, GHLClient
from ghl_pipeline.ghl.errors import GHLAccessError, GHLBlockedError, GHLError
from ghl_pipeline.ghl.simulator import ALL_SCOPES, CAMPAIGN_CALL_TYPES, Faults, Shapes, SimLocation

START = datetime(2025, 3, 8, tzinfo=UTC)
END = datetime(2025, 3, 12, tzinfo=UTC)
LOC = "smallLoc000000000001"


def _loc(**kwargs) -> SimLocation:
    options = {
        "location_id": LOC,
        "token": "pit-small-secret-token",
        "name": "Small Co",
        "calls_per_day": 300,
    }
    options.update(kwargs)
    return SimLocation(**options)


def _walk(client: GHLClient, start=START, end=END):
    pages = list(client.iter_call_pages(start=start, end=end))
    calls = [call for page in pages for call in page.calls]
    unrecognised = [message for page in pages for message in page.unrecognised]
    return pages, calls, unrecognised


def _ids(records) -> list[str]:
    return sorted(record.id if hasattr(record, "id") else record["id"] for record in records)


# --------------------------------------------------------------------------- call recognition


def test_documented_spellings_of_call_types_are_still_calls(make_sim, make_client):
    # Webhook spelling "CALL", and other case/separator variants of the documented names.
    spellings = {"TYPE_CALL": "CALL", "TYPE_IVR_CALL": "ivr-call", "TYPE_CUSTOM_CALL": "Type_Custom_Call"}
    sim = make_sim([_loc()], shapes=Shapes(message_type_spellings=spellings))
    _, calls, unrecognised = _walk(make_client(sim, sim.locations[0]))

    truth = sim.ground_truth(LOC, START, END)
    assert {m["messageType"] for m in truth} == set(spellings.values())  # the shape is really on
    assert _ids(calls) == _ids(truth) and unrecognised == []
    assert {call.message_type for call in calls} == {"TYPE_CALL", "TYPE_IVR_CALL", "TYPE_CUSTOM_CALL"}


def test_an_unknown_spelling_lands_aside_with_its_reason_and_nothing_is_lost(make_sim, make_client, caplog):
    sim = make_sim([_loc()], shapes=Shapes(message_type_spellings={"TYPE_IVR_CALL": "IVR"}))
    with caplog.at_level(logging.WARNING, logger="ghl_pipeline.ghl.client"):
        _, calls, unrecognised = _walk(make_client(sim, sim.locations[0]))

    truth = sim.ground_truth(LOC, START, END)
    ivr = [m for m in truth if m["type"] == 24]
    assert ivr, "the window has IVR calls"
    assert _ids(unrecognised) == _ids(ivr)
    assert _ids(calls) == _ids(m for m in truth if m["type"] != 24)
    (reason,) = {m.reason for m in unrecognised}
    assert reason == "messageType 'IVR' is not a message type GHL documents (type 24 (TYPE_IVR_CALL))"
    assert all(m.raw["messageType"] == "IVR" for m in unrecognised)  # the raw JSON travels with it
    assert any("not a call type all_calls keeps" in r.message for r in caplog.records)


def test_campaign_calls_and_voicemail_drops_are_kept_aside_not_dropped(make_sim, make_client):
    sim = make_sim([_loc()], shapes=Shapes(campaign_call_rate=0.3))
    pages, calls, unrecognised = _walk(make_client(sim, sim.locations[0]))

    exported = sim.channel_truth(LOC, START, END)
    campaign = [m for m in exported if m["type"] in CAMPAIGN_CALL_TYPES]
    assert {m["type"] for m in campaign} == set(CAMPAIGN_CALL_TYPES)  # 8, 10 and 13 all present
    assert _ids(calls) == _ids(sim.ground_truth(LOC, START, END))
    assert _ids(unrecognised) == _ids(campaign)
    assert all("campaign call or voicemail drop" in m.reason for m in unrecognised)
    # Calls + kept-aside = everything GHL said it exported.
    assert len(calls) + len(unrecognised) == pages[0].total == len(exported)


def test_sms_leaking_into_the_call_export_is_counted_not_silently_filtered(make_sim, make_client):
    sim = make_sim([_loc()], faults=Faults(non_call_in_call_channel_rate=0.3))
    _, calls, unrecognised = _walk(make_client(sim, sim.locations[0]))
    sms = [m for m in sim.channel_truth(LOC, START, END) if m["type"] == 2]
    assert sms and _ids(unrecognised) == _ids(sms)
    assert {m.reason for m in unrecognised} == {"messageType 'TYPE_SMS' (type 2 (TYPE_SMS)) is not a call"}
    assert _ids(calls) == _ids(sim.ground_truth(LOC, START, END))


# --------------------------------------------------------------------------- cursor trouble


@pytest.mark.parametrize("answer", ["422", "400", "500", "503", "empty"])
def test_every_shape_of_dead_cursor_restarts_without_gap_or_duplicate(make_sim, make_client, answer):
    sim = make_sim(
        [_loc(calls_per_day=700)],
        faults=Faults(cursor_expiry_once=True),
        shapes=Shapes(cursor_expired_answer=answer),
    )
    client = make_client(sim, sim.locations[0])
    _, calls, unrecognised = _walk(client)

    ids = [call.id for call in calls]
    assert len(ids) == len(set(ids)), "a call was yielded twice"
    assert sorted(ids) == _ids(sim.ground_truth(LOC, START, END)), "a call is missing"
    assert unrecognised == []
    outcomes = Counter(r.outcome for r in sim.requests)
    # A dead cursor answering 5xx is not retried six times: a restart costs one page.
    assert outcomes["cursor_expired"] == (CURSOR_SERVER_ERROR_ATTEMPTS if answer.startswith("5") else 1)
    restarts = [r for r in sim.requests if r.outcome == "ok" and "cursor" not in r.query]
    assert len(restarts) == 2  # the first page, and the one restart from the last dateAdded seen


@pytest.mark.parametrize("answer", ["400", "503", "empty"])
def test_a_slow_consumer_outlives_every_cursor_and_still_gets_every_call_once(
    make_sim, make_client, clock, answer
):
    sim = make_sim([_loc(calls_per_day=900)], shapes=Shapes(cursor_expired_answer=answer))
    client = make_client(sim, sim.locations[0])
    calls = []
    for page in client.iter_call_pages(start=START, end=END):
        calls.extend(page.calls)
        clock.advance(121)  # longer than the export cursor lives: every cursor dies
    assert sorted(c.id for c in calls) == _ids(sim.ground_truth(LOC, START, END))
    assert len(calls) == len({c.id for c in calls})
    assert Counter(r.outcome for r in sim.requests)["cursor_expired"] >= 2


def test_an_export_that_keeps_announcing_more_than_it_serves_ends_loudly(make_sim, caplog):
    """GHL's total stays above what it serves: the walk restarts, then stops with a warning."""
    sim = make_sim([_loc(calls_per_day=30)])

    def handler(request: httpx.Request) -> httpx.Response:
        answer = sim.handle(
            request.method, request.url.path, query=dict(request.url.params), headers=request.headers
        )
        body = answer.body
        if request.url.path.endswith("/export") and answer.status == 200:
            body = {**body, "total": body["total"] + 5}
        return httpx.Response(answer.status, json=body, headers=answer.headers)

    client = GHLClient(
        token=sim.locations[0].token,
        location_id=LOC,
        project_name="Small Co",
        transport=httpx.MockTransport(handler),
        sleep=lambda s: None,
    )
    with caplog.at_level(logging.WARNING, logger="ghl_pipeline.ghl.client"):
        pages, calls, _ = _walk(client)
    assert sorted(c.id for c in calls) == _ids(sim.ground_truth(LOC, START, END))
    assert pages[0].total == len(calls) + 5  # the shortfall stays visible to the reconciliation
    assert any("ending the window here" in r.message for r in caplog.records)
    assert len(sim.requests) == 4  # the walk, then three restarts that brought nothing new


# --------------------------------------------------------------------------- enrichment and pages


def test_users_come_from_users_search_where_the_deprecated_list_is_refused(make_sim, make_client):
    sim = make_sim([_loc(users=130)], shapes=Shapes(users_list_removed=True))
    users = make_client(sim, sim.locations[0]).list_users()

    assert len(users) == 130 and all(user.name for user in users.values())
    paths = [(r.path, r.status) for r in sim.requests]
    assert paths[0] == ("/users/", 400)
    searches = [r for r in sim.requests if r.path == "/users/search"]
    assert [r.query["skip"] for r in searches] == ["0", "100"]  # paged
    assert all(r.status == 200 and r.query["companyId"] for r in searches)


@pytest.mark.parametrize(
    ("missing_scope", "expected"),
    [
        (
            "users.readonly",
            "GET /users/ refused (401 The token is not authorized for this scope.); "
            "GET /users/search refused (401 The token is not authorized for this scope.)",
        ),
        (
            "locations.readonly",
            "GET /users/ refused (400 This endpoint is not available in API version v3); /users/search needs "
            "the location's companyId, and the location could not be read (401 The token is not authorized "
            "for this scope.)",
        ),
    ],
)
def test_users_refused_both_ways_say_why_for_each(make_sim, make_client, missing_scope, expected):
    sim = make_sim([_loc(scopes=ALL_SCOPES - {missing_scope})], shapes=Shapes(users_list_removed=True))
    with pytest.raises(GHLError) as caught:
        make_client(sim, sim.locations[0]).list_users()
    assert caught.value.message == expected


def test_flat_message_pages_read_exactly_like_nested_ones(make_sim, make_client):
    # Few contacts: each conversation holds over 100 calls, so its thread takes several pages.
    shapes = Shapes(flat_message_pages=True)
    sim = make_sim([_loc(calls_per_day=120, contacts=3, start_date=START.date())], shapes=shapes)
    client = make_client(sim, sim.locations[0])
    truth = sim.ground_truth(LOC, START, END)
    conversation = Counter(m["conversationId"] for m in truth).most_common(1)[0][0]
    calls = list(client.iter_conversation_calls(conversation))

    everything = sim.ground_truth(
        LOC, datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 3, 20, 12, tzinfo=UTC)
    )
    expected = [m for m in everything if m["conversationId"] == conversation]
    assert len(expected) > 100
    assert sorted(c.id for c in calls) == _ids(expected)
    thread_pages = [r for r in sim.requests if r.path.endswith("/messages")]
    assert len(thread_pages) >= 2 and "lastMessageId" in thread_pages[1].query


def test_a_cloudflare_html_403_is_a_proxy_not_a_token_problem(make_sim, make_client):
    sim = make_sim([_loc()], shapes=Shapes(cloudflare_block=True))
    client = make_client(sim, sim.locations[0])
    with pytest.raises(GHLBlockedError) as caught:
        _walk(client)
    assert caught.value.message == NOT_JSON_403
    assert not isinstance(caught.value, GHLAccessError)  # never tagged "auth" nor blamed on the token
    assert len(sim.requests) == 1  # not retried


def test_from_and_to_numbers_are_read_when_ghl_sends_them(make_sim, make_client):
    sim = make_sim([_loc()], shapes=Shapes(call_numbers=True))
    _, calls, _ = _walk(make_client(sim, sim.locations[0]))
    truth = {m["id"]: m for m in sim.ground_truth(LOC, START, END)}
    assert sum(1 for m in truth.values() if "from" in m and "to" in m) > len(truth) // 2
    for call in calls:
        assert (call.from_number, call.to_number) == (truth[call.id].get("from"), truth[call.id].get("to"))
