"""Property tests: no body or header a browser (or attacker) can send makes the gateway fail or launch wrongly."""

from __future__ import annotations

import asyncio
import contextlib
import json
import unicodedata
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ghl_pipeline.gateway import create_app
from ghl_pipeline.gateway.auth import AuthError, TokenVerifier
from ghl_pipeline_tests.gateway.conftest import (
    ACTIVE_PROJECTS,
    EC_KEY,
    OTHER_RSA_KEY,
    RSA_KEY,
    RSA_KID,
    VALID_BODY,
    FakeDagster,
    TestClient,
    bearer,
    make_settings,
    make_token,
)

AUTH = bearer(make_token(exp=int(datetime.now(UTC).timestamp()) + 24 * 3600))
TODAY = datetime.now(UTC).date()
PROPERTY_SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@contextlib.contextmanager
def running_gateway(database_url: str) -> Iterator[tuple[TestClient, FakeDagster]]:
    fake = FakeDagster()
    app = create_app(make_settings(database_url=database_url), transport=httpx.ASGITransport(app=fake.app()))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, fake


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
date_like = st.one_of(
    st.dates().map(date.isoformat),
    st.datetimes(timezones=st.timezones()).map(datetime.isoformat),
    st.datetimes().map(datetime.isoformat),  # naive: no offset
    st.text(alphabet="0123456789-T:+Z. ", max_size=30),
    json_values,
)
# Names the test database holds, as a person might type them (padding is trimmed).
known_projects = st.builds(
    lambda pad, name, tail: pad + name + tail,
    st.sampled_from(["", " ", "\t"]),
    st.sampled_from(ACTIVE_PROJECTS),
    st.sampled_from(["", " "]),
)
near_valid_bodies = st.fixed_dictionaries(
    {},
    optional={
        "dateFrom": date_like,
        "dateTo": date_like,
        "projectName": st.none() | known_projects | st.text(max_size=210) | json_values,
        "extra": json_values,
    },
)


def _launched_config_is_valid(config: dict, body: dict) -> bool:
    """An independent check of what reached Dagster against the contract's rules."""
    start, end = config["date_from"], config["date_to"]
    if len(start) == 10:
        a, b = date.fromisoformat(start), date.fromisoformat(end)
        in_range = date(2000, 1, 1) <= a <= b <= TODAY + timedelta(days=1)
        window_ok = (b - a).days < 93
    else:
        a, b = datetime.fromisoformat(start), datetime.fromisoformat(end)
        in_range = a.tzinfo is not None and b.tzinfo is not None and a < b
        window_ok = b - a <= timedelta(days=93)
    project = body.get("projectName")
    project_ok = config["project_name"] == (project.strip() if isinstance(project, str) else None)
    return in_range and window_ok and project_ok and set(body) <= {"dateFrom", "dateTo", "projectName"}


@PROPERTY_SETTINGS
@given(body=json_values | near_valid_bodies)
def test_any_json_body_is_answered_without_error_and_only_valid_ones_launch(body, gateway_db_url):
    with running_gateway(gateway_db_url) as (client, fake):
        response = client.post("/sync", content=json.dumps(body), headers=AUTH)
        assert response.status_code in (202, 400, 413), response.text
        assert response.headers["content-type"] == "application/json"
        if response.status_code == 202:
            assert len(fake.launches) == 1
            config = fake.launches[0]["runConfigData"]["ops"]["sync_calls"]["config"]
            assert _launched_config_is_valid(config, body)
        else:
            assert fake.launches == []
            assert response.json()["field"]


@PROPERTY_SETTINGS
@given(raw=st.binary(max_size=2000))
def test_any_bytes_are_answered_without_error(raw, gateway_db_url):
    with running_gateway(gateway_db_url) as (client, fake):
        response = client.post("/sync", content=raw, headers=AUTH)
        assert response.status_code in (400, 413)
        assert fake.launches == []


@given(
    first=st.dates(min_value=date(2000, 1, 1), max_value=TODAY),
    days=st.integers(min_value=0, max_value=120),
    project=st.none()
    | known_projects
    | st.text(min_size=1, max_size=30).filter(lambda s: s.strip() not in ("", "*")),
)
@PROPERTY_SETTINGS
def test_date_windows_launch_exactly_when_the_contract_allows(first, days, project, gateway_db_url):
    last = first + timedelta(days=days)
    body = {"dateFrom": first.isoformat(), "dateTo": last.isoformat(), "projectName": project}
    printable = project is None or not any(
        unicodedata.category(ch)[0] == "C" or unicodedata.category(ch) in ("Zl", "Zp")
        for ch in project.strip()
    )
    known = project is None or project.strip() in ACTIVE_PROJECTS
    expected_ok = days < 93 and last <= TODAY + timedelta(days=1) and printable and known
    with running_gateway(gateway_db_url) as (client, fake):
        response = client.post("/sync", json=body, headers=AUTH)
    assert (response.status_code == 202) == expected_ok, response.text
    assert len(fake.launches) == int(expected_ok)
    if printable and not known and days < 93 and last <= TODAY + timedelta(days=1):
        assert response.json()["field"] == "projectName"
        assert response.json()["error"].startswith(("Unknown project: ", "Inactive project: "))


# httpx only sends ASCII header text; non-ASCII values are covered by the direct verifier test below.
header_text = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=300)
token_like = st.lists(
    st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", max_size=60),
    min_size=1,
    max_size=4,
).map(".".join)
forged = st.builds(
    lambda key_alg, kid, claims: make_token(key=key_alg[0], alg=key_alg[1], kid=kid, **claims),
    key_alg=st.sampled_from(
        [
            ("not-the-project-secret-0123456789abcdef", "HS256"),
            (OTHER_RSA_KEY, "RS256"),
            (RSA_KEY, "RS384"),
            (EC_KEY, "ES256"),  # the project's EC key, but under a kid that is not its own
        ]
    ),
    kid=st.sampled_from([None, RSA_KID, "unknown", ""]),
    claims=st.fixed_dictionaries(
        {},
        optional={
            "aud": st.sampled_from(["anon", "service_role", None, ["x"]]),
            "exp": st.integers(min_value=0, max_value=int(datetime.now(UTC).timestamp()) - 120),
            "sub": st.sampled_from([None, "", "u"]),
        },
    ),
)


@PROPERTY_SETTINGS
@given(
    authorization=st.one_of(
        header_text,
        token_like.map(lambda t: "Bearer " + t),
        forged.map(lambda t: "Bearer " + t),
        st.sampled_from(["bearer", "Bearer  ", "Token x"]),
    )
)
def test_no_forged_or_junk_authorization_ever_launches(authorization, gateway_db_url):
    headers = {"Authorization": authorization}
    with running_gateway(gateway_db_url) as (client, fake):
        response = client.post("/sync", json=VALID_BODY, headers=headers)
        status = client.get(
            "/sync/3f0c1d7e-8a1b-4c2d-9e3f-000000000000", headers={"Authorization": authorization}
        )
    assert response.status_code == 401, response.text
    assert status.status_code == 401
    assert fake.launches == [] and fake.operations == []


@PROPERTY_SETTINGS
@given(authorization=st.none() | st.text(max_size=300) | forged.map(lambda t: "Bearer " + t))
def test_verifier_refuses_any_text_with_an_auth_error(authorization):
    verifier = TokenVerifier(make_settings(jwks_url=None), jwks=None)
    with pytest.raises(AuthError):
        asyncio.run(verifier.principal(authorization))
