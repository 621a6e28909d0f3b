"""The simulator behaves like GHL: its data, its limits, its error bodies, its faults, both transports."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest

from ghl_pipeline.ghl.client import GHLClient
from ghl_pipeline.ghl.errors import GHLUnavailableError
from ghl_pipeline.ghl.parsing import messages_of_page
from ghl_pipeline.ghl.simulator import (
    ALL_SCOPES,
    CURSOR_TTL_S,
    Faults,
    GHLSimulator,
    Shapes,
    SimLocation,
)

LOC = "smallLoc000000000001"
TOKEN = "pit-small-secret-token"
START = datetime(2025, 3, 1, tzinfo=UTC)
END = datetime(2025, 3, 15, tzinfo=UTC)
RATE_HEADERS = {
    "x-ratelimit-limit-daily",
    "x-ratelimit-daily-remaining",
    "x-ratelimit-interval-milliseconds",
    "x-ratelimit-max",
    "x-ratelimit-remaining",
}


@pytest.fixture
def sim(make_sim) -> GHLSimulator:
    return make_sim([SimLocation(location_id=LOC, token=TOKEN, name="Small Co", calls_per_day=60)])


def _http(sim: GHLSimulator, token: str | None = TOKEN, version: str | None = "2021-04-15") -> httpx.Client:
    headers = {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if version:
        headers["Version"] = version
    return httpx.Client(
        base_url="https://services.leadconnectorhq.com", transport=sim.transport(), headers=headers
    )


def _export(http: httpx.Client, **params) -> httpx.Response:
    query = {"locationId": LOC, "channel": "Call", "limit": 500, "sortOrder": "asc"}
    query.update(params)
    return http.get(
        "/conversations/messages/export", params={k: v for k, v in query.items() if v is not None}
    )


# --------------------------------------------------------------------------- data


def test_the_same_seed_gives_the_same_data_and_another_seed_other_data(make_sim):
    location = SimLocation(location_id=LOC, token=TOKEN, name="Small Co")
    first = make_sim([location]).ground_truth(LOC, START, END)
    assert first == make_sim([location]).ground_truth(LOC, START, END)
    assert first != make_sim([location], seed=1).ground_truth(LOC, START, END)


def test_calls_cover_every_type_status_and_quirk(sim):
    calls = sim.ground_truth(LOC, START, END)
    assert {c["messageType"] for c in calls} == {"TYPE_CALL", "TYPE_IVR_CALL", "TYPE_CUSTOM_CALL"}
    statuses = {c["meta"]["call"].get("status", c["status"]) for c in calls}
    assert statuses >= {
        "pending",
        "completed",
        "answered",
        "busy",
        "no-answer",
        "failed",
        "canceled",
        "voicemail",
    }
    inbound = [c for c in calls if c["direction"] == "inbound"]
    assert inbound and all("userId" not in c for c in inbound)
    assert all(c["userId"] for c in calls if c["direction"] == "outbound")
    assert any("duration" not in c["meta"]["call"] for c in calls)
    assert any("status" not in c["meta"]["call"] for c in calls)  # only the top-level status says it
    outbound_voicemail = [
        c for c in calls if c["direction"] == "outbound" and c["meta"]["call"].get("status") == "voicemail"
    ]
    assert outbound_voicemail and all(c["status"] == "completed" for c in outbound_voicemail)
    assert all(c["dateAdded"].endswith("Z") and START.isoformat()[:7] in c["dateAdded"] for c in calls)


def test_calls_sit_just_before_and_after_local_midnight(sim):
    tz = ZoneInfo("America/Chicago")
    local_times = [
        datetime.fromisoformat(c["dateAdded"].replace("Z", "+00:00")).astimezone(tz).time()
        for c in sim.ground_truth(LOC, START, END)
    ]
    assert any(t.hour == 23 and t.minute >= 58 for t in local_times)
    assert any(t.hour == 0 and t.minute <= 1 for t in local_times)


def test_a_dst_day_keeps_its_calls_in_local_business_hours(sim):
    tz = ZoneInfo("America/Chicago")  # 2025-03-09: clocks jump from 02:00 to 03:00
    day_start = datetime(2025, 3, 9, tzinfo=tz)
    day_end = datetime(2025, 3, 10, tzinfo=tz)
    assert day_end.astimezone(UTC) - day_start.astimezone(UTC) == timedelta(hours=23)
    calls = sim.ground_truth(LOC, day_start.astimezone(UTC), day_end.astimezone(UTC))
    hours = Counter(
        datetime.fromisoformat(c["dateAdded"].replace("Z", "+00:00")).astimezone(tz).hour for c in calls
    )
    assert set(hours) - {0, 23} <= set(range(7, 21)) and len(calls) > 40


def test_sms_and_email_share_the_threads_but_not_the_call_channel(sim):
    http = _http(sim)
    everything = _export(http, channel=None).json()["messages"]
    calls = _export(http).json()["messages"]
    sms = _export(http, channel="SMS").json()["messages"]
    assert {m["messageType"] for m in everything} == {
        "TYPE_CALL",
        "TYPE_IVR_CALL",
        "TYPE_CUSTOM_CALL",
        "TYPE_SMS",
    }
    assert {m["messageType"] for m in calls} <= {"TYPE_CALL", "TYPE_IVR_CALL", "TYPE_CUSTOM_CALL"}
    assert sms and {m["conversationId"] for m in sms} & {m["conversationId"] for m in calls}
    assert _export(http, channel="Email").json()["messages"]


def test_contacts_have_missing_names_and_assorted_phone_formats(make_sim):
    sim = make_sim([SimLocation(location_id=LOC, token=TOKEN, name="Small Co", contacts=400)])
    http = _http(sim, version="2021-07-28")
    contacts = http.post("/contacts/search", json={"locationId": LOC, "pageLimit": 500}).json()["contacts"]
    assert len(contacts) == 400
    assert any(c["name"] is None and c["firstName"] is None for c in contacts)
    phones = [c["phone"] for c in contacts]
    assert None in phones
    assert any(p and p.startswith("(") for p in phones)
    assert any(p and p.count(".") == 2 for p in phones)
    assert any(p and p.startswith("+1") for p in phones)
    assert any(p and p.isdigit() and len(p) == 10 for p in phones)
    assert any(p in ("n/a", "12", "call me", "+1 (555) 0") for p in phones)  # garbage, as typed by people


def test_the_busy_demo_location_has_thousands_of_calls_a_day(make_sim):
    sim = make_sim()
    busy = next(loc for loc in sim.locations if loc.name == "Globex Solar")
    assert {loc.timezone for loc in sim.locations} == {"America/Chicago", "Europe/London", "Australia/Sydney"}
    day = sim.ground_truth(
        busy.location_id, datetime(2025, 3, 18, tzinfo=UTC), datetime(2025, 3, 19, tzinfo=UTC)
    )
    assert len(day) >= 2000


def test_future_calls_are_not_visible_yet(sim, clock):
    now = datetime.fromtimestamp(clock.time(), tz=UTC)
    before = sim.ground_truth(LOC, now - timedelta(days=1), now + timedelta(days=1))
    assert before and all(c["dateAdded"] <= now.isoformat().replace("+00:00", "Z") for c in before)
    clock.advance(3 * 3600)
    assert len(sim.ground_truth(LOC, now - timedelta(days=1), now + timedelta(days=1))) > len(before)


def test_update_call_changes_a_call_after_the_fact(sim, clock):
    call = sim.ground_truth(LOC, START, END)[0]
    clock.advance(60)
    served = sim.update_call(call["id"], status="completed", duration=77)
    assert served["meta"]["call"] == {**call["meta"]["call"], "status": "completed", "duration": 77}
    assert served["dateUpdated"] > call["dateUpdated"]
    assert sim.ground_truth(LOC, START, END)[0] == served
    with pytest.raises(KeyError):
        sim.update_call("unknown00000000000001", status="completed")


# --------------------------------------------------------------------------- what GHL enforces


def test_wrong_or_missing_token_gets_the_reference_401(sim):
    for http in (_http(sim, token="pit-nope"), _http(sim, token=None)):
        response = _export(http)
        assert response.status_code == 401
        assert response.json() == {
            "statusCode": 401,
            "message": "Invalid token: access token is invalid",
            "error": "Unauthorized",
        }


def test_a_missing_scope_gets_the_scope_401(make_sim):
    sim = make_sim(
        [SimLocation(location_id=LOC, token=TOKEN, name="Small Co", scopes=ALL_SCOPES - {"users.readonly"})]
    )
    response = _http(sim, version="2021-07-28").get("/users/", params={"locationId": LOC})
    assert response.status_code == 401
    assert response.json() == {"statusCode": 401, "message": "The token is not authorized for this scope."}


def test_a_token_on_another_location_gets_403(make_sim):
    sim = make_sim()
    acme, globex = sim.locations[0], sim.locations[1]
    http = _http(sim, token=acme.token)
    assert _export(http, locationId=globex.location_id).status_code == 403
    response = http.get(f"/locations/{globex.location_id}")
    assert response.status_code == 403
    assert response.json()["message"] == "The token does not have access to this location"


def test_the_version_header_is_required(sim):
    response = _export(_http(sim, version=None))
    assert response.status_code == 400 and response.json()["statusCode"] == 400


@pytest.mark.parametrize("limit", [9, 501, "lots"])
def test_export_page_size_is_limited(sim, limit):
    response = _export(_http(sim), limit=limit)
    assert response.status_code == 422
    assert isinstance(response.json()["message"], list)


def test_every_answer_carries_the_five_rate_limit_headers(sim):
    http = _http(sim)
    for response in (_export(http), _export(http, limit=1), http.get("/nowhere")):
        assert set(response.headers) >= RATE_HEADERS
    assert _export(http).headers["X-RateLimit-Max"] == "100"


def test_the_burst_limit_answers_429(sim, clock):
    http = _http(sim)
    statuses = [_export(http, startDate="2025-03-14").status_code for _ in range(105)]
    assert statuses[:100] == [200] * 100 and statuses[100:] == [429] * 5
    limited = _export(http)
    assert limited.json() == {"statusCode": 429, "message": "Too Many Requests"}
    assert limited.headers["X-RateLimit-Remaining"] == "0"
    clock.advance(10.01)
    assert _export(http).status_code == 200


def test_the_daily_limit_answers_429(make_sim):
    sim = make_sim([SimLocation(location_id=LOC, token=TOKEN, name="Small Co")], daily_limit=3)
    http = _http(sim)
    answers = [_export(http) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a.headers["X-RateLimit-Daily-Remaining"] for a in answers] == ["2", "1", "0", "0"]


def test_an_export_cursor_expires_two_minutes_after_the_last_request(make_sim, clock):
    sim = make_sim([SimLocation(location_id=LOC, token=TOKEN, name="Small Co", calls_per_day=300)])
    http = _http(sim)
    first = _export(http).json()
    clock.advance(CURSOR_TTL_S - 1)
    second = _export(http, cursor=first["nextCursor"]).json()  # still alive, and refreshed
    clock.advance(CURSOR_TTL_S + 1)
    expired = _export(http, cursor=second["nextCursor"])
    assert expired.status_code == 422
    assert "cursor has expired" in expired.json()["message"][0]


def test_export_pages_walk_the_whole_window_once(sim):
    http = _http(sim)
    seen, cursor = [], None
    while True:
        body = _export(http, limit=100, cursor=cursor).json()
        seen.extend(m["id"] for m in body["messages"])
        cursor = body["nextCursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == body["total"]


# --------------------------------------------------------------------------- other endpoints


def test_conversation_messages_come_nested_newest_first(sim):
    http = _http(sim)
    conversation = sim.ground_truth(LOC, START, END)[0]["conversationId"]
    response = http.get(f"/conversations/{conversation}/messages", params={"limit": 2})
    body = response.json()
    assert set(body["messages"]) == {"lastMessageId", "nextPage", "messages"}  # the live, nested form
    messages, last_id, next_page = messages_of_page(body)
    assert len(messages) <= 2 and messages[0]["dateAdded"] >= messages[-1]["dateAdded"]
    if next_page:
        more = http.get(
            f"/conversations/{conversation}/messages", params={"limit": 2, "lastMessageId": last_id}
        )
        assert {m["id"] for m in messages_of_page(more.json())[0]}.isdisjoint(m["id"] for m in messages)


def test_conversation_search_pages_by_start_after_date(sim):
    http = _http(sim)
    first = http.get("/conversations/search", params={"locationId": LOC, "limit": 5}).json()
    assert len(first["conversations"]) == 5 and first["total"] > 5
    after = first["conversations"][-1]["sort"][0]
    second = http.get(
        "/conversations/search", params={"locationId": LOC, "limit": 5, "startAfterDate": after}
    ).json()
    assert all(c["sort"][0] < after for c in second["conversations"])


def test_contact_search_pages_with_search_after(make_sim):
    sim = make_sim([SimLocation(location_id=LOC, token=TOKEN, name="Small Co", contacts=25)])
    http = _http(sim, version="2021-07-28")
    page = http.post("/contacts/search", json={"locationId": LOC, "pageLimit": 10}).json()
    second = http.post(
        "/contacts/search",
        json={"locationId": LOC, "pageLimit": 10, "searchAfter": page["contacts"][-1]["searchAfter"]},
    ).json()
    assert page["total"] == 25 and len(second["contacts"]) == 10
    assert {c["id"] for c in page["contacts"]}.isdisjoint(c["id"] for c in second["contacts"])
    assert http.post("/contacts/search", json={"locationId": LOC, "pageLimit": 501}).status_code == 422
    contact = page["contacts"][0]["id"]
    assert http.get(f"/contacts/{contact}").json()["contact"]["id"] == contact
    assert http.get("/contacts/unknown0000000000001").status_code == 400


def test_locations_can_be_added_and_removed(sim):
    sim.add_location(SimLocation(location_id="newLoc00000000000001", token="pit-new", name="New Co"))
    http = _http(sim, token="pit-new", version="2021-07-28")
    assert http.get("/locations/newLoc00000000000001").json()["location"]["name"] == "New Co"
    sim.remove_location("newLoc00000000000001")
    assert http.get("/locations/newLoc00000000000001").status_code == 401
    assert [loc.location_id for loc in sim.locations] == [LOC]


# --------------------------------------------------------------------------- faults and the log


def test_faults_fail_requests_in_every_configured_way(make_sim):
    faults = Faults(server_error_rate=0.2, rate_limit_burst_rate=0.05, timeout_rate=0.05, drop_rate=0.05)
    sim = make_sim([SimLocation(location_id=LOC, token=TOKEN, name="Small Co")], faults=faults)
    http = _http(sim)
    for _ in range(90):
        with contextlib.suppress(httpx.ReadTimeout, httpx.RemoteProtocolError):
            _export(http, startDate="2025-03-14")
    outcomes = Counter(r.outcome for r in sim.requests)
    assert {"ok", "fault:5xx", "fault:429", "fault:timeout", "fault:drop"} <= set(outcomes)
    assert all(r.status is None for r in sim.requests if r.outcome in ("fault:timeout", "fault:drop"))


def test_slow_answers_take_time(make_sim, clock):
    sim = make_sim(
        [SimLocation(location_id=LOC, token=TOKEN, name="Small Co")],
        faults=Faults(slow_rate=1.0, slow_seconds=7),
    )
    _export(_http(sim))
    assert clock.slept == 7


def test_the_request_log_counts_requests_and_never_holds_the_token(sim):
    http = _http(sim)
    _export(http)
    _http(sim, token="pit-wrong-secret").get("/users/", params={"locationId": LOC})
    log = sim.requests
    assert [(r.method, r.path, r.status, r.location_id) for r in log] == [
        ("GET", "/conversations/messages/export", 200, LOC),
        ("GET", "/users/", 401, None),
    ]
    assert log[0].query["channel"] == "Call"
    assert "secret" not in repr(log)
    assert "secret" not in repr(sim.locations)


# --------------------------------------------------------------------------- real HTTP


def test_the_loopback_server_serves_the_client_and_stops_cleanly():
    sim = GHLSimulator([SimLocation(location_id=LOC, token=TOKEN, name="Small Co", calls_per_day=30)])
    with sim.serve() as server:
        assert server.url.startswith("http://127.0.0.1:")
        with GHLClient(token=TOKEN, location_id=LOC, project_name="Small Co", base_url=server.url) as client:
            today = datetime.now(UTC)
            calls = [
                c for p in client.iter_call_pages(start=today - timedelta(days=3), end=today) for c in p.calls
            ]
            assert {c.id for c in calls} == {
                m["id"] for m in sim.ground_truth(LOC, today - timedelta(days=3), today)
            }
            assert client.fetch_contacts({c.contact_id for c in calls})
            assert client.list_users()
        port = server.port
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/users/", timeout=2)


def test_a_dropped_connection_on_the_server_is_retried_then_reported():
    sim = GHLSimulator(
        [SimLocation(location_id=LOC, token=TOKEN, name="Small Co")], faults=Faults(drop_rate=1.0)
    )
    with sim.serve() as server:
        client = GHLClient(
            token=TOKEN,
            location_id=LOC,
            project_name="Small Co",
            base_url=server.url,
            max_attempts=2,
            sleep=lambda _: None,
        )
        with pytest.raises(GHLUnavailableError, match="connection failed"):
            client.list_users()
    assert len(sim.requests) == 2


def test_the_simulator_serves_another_process():
    code = "from ghl_pipeline.ghl.simulator import serve_forever; serve_forever(port=0)"
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        first_line = process.stdout.readline()
        url = first_line.split("serving on ")[1].split()[0]
        acme = GHLSimulator.demo().locations[0]
        headers = {"Authorization": f"Bearer {acme.token}", "Version": "2021-07-28"}
        response = httpx.get(f"{url}/locations/{acme.location_id}", headers=headers, timeout=5)
        assert response.status_code == 200 and response.json()["location"]["timezone"] == "America/Chicago"
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_the_simulator_imports_nothing_from_the_rest_of_the_package():
    import ast
    from pathlib import Path

    import ghl_pipeline.ghl.simulator as module

    tree = ast.parse(Path(module.__file__).read_text())
    imported = {
        name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for name in (
            [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
        )
    }
    assert not {name for name in imported if name.startswith("ghl_pipeline")}


def test_users_search_needs_the_company_of_the_location(make_sim):
    sim = make_sim([SimLocation(location_id=LOC, token=TOKEN, name="Small Co", users=3)])
    http = _http(sim, version="2021-07-28")
    company = http.get(f"/locations/{LOC}").json()["location"]["companyId"]
    found = http.get("/users/search", params={"companyId": company, "locationId": LOC, "limit": "2"})
    assert found.status_code == 200 and found.json()["count"] == 3 and len(found.json()["users"]) == 2
    assert http.get("/users/search", params={"locationId": LOC}).status_code == 422
    assert http.get("/users/search", params={"companyId": "someoneElse"}).status_code == 403


def test_shapes_refuse_an_unknown_cursor_answer():
    with pytest.raises(ValueError, match="cursor_expired_answer"):
        Shapes(cursor_expired_answer="418")


def test_default_shapes_serve_the_reference_forms(make_sim):
    plain = make_sim([SimLocation(location_id=LOC, token=TOKEN, name="Small Co")])
    shaped = make_sim([SimLocation(location_id=LOC, token=TOKEN, name="Small Co")], shapes=Shapes())
    assert plain.ground_truth(LOC, START, END) == shaped.ground_truth(LOC, START, END)
    assert all(
        "from" not in m and m["messageType"].startswith("TYPE_") for m in plain.ground_truth(LOC, START, END)
    )
