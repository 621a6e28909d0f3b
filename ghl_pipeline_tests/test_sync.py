"""One sync against the simulator and a real Postgres where GHL degrades: calls still land, nothing vanishes."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
import sqlalchemy as sa

from ghl_pipeline.calls.mapping import normalise_phone
from ghl_pipeline.calls.validation import UNRECOGNISED_RULE
from ghl_pipeline.ghl.client import GHLClient
from ghl_pipeline.ghl.models import Secret
from ghl_pipeline.ghl.ratelimit import InMemoryRateLimiter
from ghl_pipeline.ghl.simulator import ALL_SCOPES, Faults, GHLSimulator, ManualClock, Shapes, SimLocation
from ghl_pipeline.sync import sync_project
from ghl_pipeline.warehouse.projects import Project
from ghl_pipeline.windows import DayRange

NOW = datetime(2025, 3, 20, 12, 0, tzinfo=UTC)
DAYS = DayRange(date(2025, 3, 8), date(2025, 3, 10))
TOKEN = "pit-sync-test-0f3a9c-secret"
LOC = "syncLoc0000000000001"
PROJECT = Project(
    name="Acme", location_id=LOC, api_key=Secret(TOKEN), active=True, timezone="America/Chicago"
)


def _location(**kwargs) -> SimLocation:
    options = {"location_id": LOC, "token": TOKEN, "name": "Acme", "calls_per_day": 80, "contacts": 40}
    options.update(kwargs)
    return SimLocation(**options)


def _sync(engine, location: SimLocation, *, shapes: Shapes | None = None, faults: Faults | None = None):
    clock = ManualClock(NOW)
    sim = GHLSimulator([location], shapes=shapes, faults=faults, seed=3, clock=clock.time, sleep=clock.sleep)
    client = GHLClient(
        token=TOKEN,
        location_id=LOC,
        project_name=PROJECT.name,
        transport=sim.transport(),
        limiter=InMemoryRateLimiter(clock=clock.time, sleep=clock.sleep),
        sleep=clock.sleep,
    )
    with client:
        result = sync_project(engine=engine, client=client, project=PROJECT, span=DAYS, now=lambda: NOW)
    return sim, result


def _rows(engine, columns: str) -> dict[str, tuple]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text(f"SELECT ghl_id, {columns} FROM all_calls")).all()
    return {row[0]: tuple(row[1:]) for row in rows}


def _truth(sim: GHLSimulator, result) -> list[dict]:
    return sim.ground_truth(LOC, result.window_start, result.window_end)


def test_users_refused_calls_land_with_agent_names_null_and_the_result_says_why(engine):
    sim, result = _sync(
        engine, _location(scopes=ALL_SCOPES - {"users.readonly"}), shapes=Shapes(users_list_removed=True)
    )
    rows = _rows(engine, "agent_name, ghl_user_id")
    truth = _truth(sim, result)
    assert set(rows) == {m["id"] for m in truth}
    assert any(user_id for _, user_id in rows.values())  # outbound calls do carry a user ...
    assert {name for name, _ in rows.values()} == {None}  # ... whose name GHL would not give
    assert result.enrichment_missing == {
        "users": "HTTP 401: GET /users/ refused (401 The token is not authorized for this scope.); "
        "GET /users/search refused (401 The token is not authorized for this scope.)"
    }
    assert result.totals.new == len(truth) and result.totals.rejected == 0


def test_users_from_users_search_where_the_list_is_gone(engine):
    _, result = _sync(engine, _location(), shapes=Shapes(users_list_removed=True))
    rows = _rows(engine, "agent_name, ghl_user_id")
    assert result.enrichment_missing == {}
    assert all(name for name, user_id in rows.values() if user_id)


def test_a_sync_without_users_keeps_the_agent_names_already_stored(engine):
    _sync(engine, _location())
    named = _rows(engine, "agent_name")
    assert sum(1 for (name,) in named.values() if name) > 10

    _, again = _sync(engine, _location(scopes=ALL_SCOPES - {"users.readonly"}))
    assert "users" in again.enrichment_missing
    assert _rows(engine, "agent_name") == named
    assert again.totals.updated == 0 and again.totals.unchanged == len(named)  # no row rewritten


def test_contacts_and_location_refused_calls_still_land(engine):
    sim, result = _sync(engine, _location(scopes=ALL_SCOPES - {"contacts.readonly", "locations.readonly"}))
    rows = _rows(engine, "lead_name, phone_number, call_date")
    assert set(rows) == {m["id"] for m in _truth(sim, result)}
    assert {(lead, phone) for lead, phone, _ in rows.values()} == {(None, None)}
    assert set(result.enrichment_missing) == {"contacts", "location"}
    assert "not authorized for this scope" in result.enrichment_missing["contacts"]
    assert "time zone from the project" in result.enrichment_missing["location"]
    # The configured zone still files every call on its local day.
    assert {day for *_, day in rows.values()} == {date(2025, 3, 8), date(2025, 3, 9), date(2025, 3, 10)}


def test_the_location_refused_without_a_configured_zone_still_stops_the_sync(engine):
    from dataclasses import replace

    from ghl_pipeline.ghl.errors import GHLScopeError

    clock = ManualClock(NOW)
    sim = GHLSimulator([_location(scopes=ALL_SCOPES - {"locations.readonly"})], clock=clock.time)
    client = GHLClient(token=TOKEN, location_id=LOC, project_name="Acme", transport=sim.transport())
    with pytest.raises(GHLScopeError):  # every call date would hang on a guessed zone
        sync_project(engine=engine, client=client, project=replace(PROJECT, timezone=None), span=DAYS)


def test_messages_that_are_not_kept_calls_land_in_rejects_counted_and_reconciled(engine):
    shapes = Shapes(campaign_call_rate=0.2, message_type_spellings={"TYPE_CUSTOM_CALL": "PHONE_CALL"})
    sim, result = _sync(engine, _location(), shapes=shapes, faults=Faults(non_call_in_call_channel_rate=0.2))
    exported = {m["id"]: m for m in sim.channel_truth(LOC, result.window_start, result.window_end)}
    kept = {m["id"] for m in _truth(sim, result) if m["type"] != 34}
    aside = set(exported) - kept
    assert {exported[i]["type"] for i in aside} >= {2, 8, 10, 13, 34}  # SMS, campaign, unknown spelling

    with engine.connect() as conn:
        rejects = conn.execute(
            sa.text("SELECT ghl_id, rule, detail, raw FROM all_calls_rejects WHERE project_name = 'Acme'")
        ).all()
    assert {r.ghl_id for r in rejects} == aside
    assert {r.rule for r in rejects} == {UNRECOGNISED_RULE}
    assert all(r.detail and r.raw == exported[r.ghl_id] for r in rejects)  # reason and raw JSON kept
    assert set(_rows(engine, "message_type")) == kept

    assert result.totals.unrecognised == result.totals.rejected == len(aside)
    assert sum(counts.unrecognised for counts in result.by_date.values()) == len(aside)
    assert result.totals.new + result.totals.rejected == result.ghl_total == len(exported)


def test_from_and_to_numbers_are_stored_in_e164_when_they_parse(engine):
    sim, result = _sync(engine, _location(), shapes=Shapes(call_numbers=True))
    truth = {m["id"]: m for m in _truth(sim, result)}
    rows = _rows(engine, "from_number, to_number")
    assert set(rows) == set(truth)
    for ghl_id, (from_number, to_number) in rows.items():
        sent = truth[ghl_id]
        for stored, key in ((from_number, "from"), (to_number, "to")):
            assert stored == (normalise_phone(sent[key], "US") if key in sent else None)
    assert any(
        value and value.startswith("+1") and value != truth[i].get("from") for i, (value, _) in rows.items()
    )
