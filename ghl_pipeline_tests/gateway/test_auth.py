"""Token checks over HTTP: who gets in, who gets 401/403, and that nothing reaches Dagster otherwise."""

from __future__ import annotations

import hashlib
import hmac
import logging
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from ghl_pipeline_tests.gateway.conftest import (
    EC_KEY,
    EC_KID,
    HS_SECRET,
    OTHER_RSA_KEY,
    RSA_KEY,
    RSA_KID,
    VALID_BODY,
    bearer,
    make_token,
    public_jwk,
)

RSA_PUBLIC_PEM = RSA_KEY.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
)


def _unsigned(**claims) -> str:
    return jwt.encode(
        {"sub": "u", "aud": "authenticated", "exp": int(time.time()) + 60, **claims}, None, "none"
    )


def _forged_hs256_with_public_key() -> str:
    # The classic algorithm-confusion attack: sign HS256 with the published RSA public key as the secret.
    header = jwt.utils.base64url_encode(b'{"alg":"HS256","typ":"JWT","kid":"rsa-key-1"}')
    body = jwt.utils.base64url_encode(
        f'{{"sub":"u","aud":"authenticated","exp":{int(time.time()) + 60},"iss":"http://supabase.test/auth/v1"}}'.encode()
    )
    signature = hmac.new(RSA_PUBLIC_PEM, header + b"." + body, hashlib.sha256).digest()
    return b".".join([header, body, jwt.utils.base64url_encode(signature)]).decode()


UNAUTHENTICATED = {
    "missing header": {},
    "not bearer": {"Authorization": "Basic dXNlcjpwYXNz"},
    "empty bearer": {"Authorization": "Bearer "},
    "garbage": {"Authorization": "Bearer not.a.jwt"},
    "expired": bearer(make_token(exp=int(time.time()) - 3600)),
    "no exp": bearer(make_token(exp=None)),
    "wrong HS256 secret": bearer(make_token(key="another-projects-secret-0123456789abcdef")),
    "RS256 signed by a key not in the JWKS": bearer(make_token(key=OTHER_RSA_KEY, alg="RS256", kid=RSA_KID)),
    "RS256 with unknown kid": bearer(make_token(key=RSA_KEY, alg="RS256", kid="rotated-away")),
    "RS256 without kid": bearer(make_token(key=RSA_KEY, alg="RS256")),
    "wrong audience": bearer(make_token(aud="anon")),
    "no audience": bearer(make_token(aud=None)),
    "wrong issuer": bearer(make_token(iss="https://other-project.supabase.co/auth/v1")),
    "no sub": bearer(make_token(sub=None)),
    "alg none": bearer(_unsigned()),
    "HS256 forged with the RSA public key": bearer(_forged_hs256_with_public_key()),
    "RS256 header on the EC key": bearer(make_token(key=RSA_KEY, alg="RS256", kid=EC_KID)),
    "ES256 header on the RSA key": bearer(make_token(key=EC_KEY, alg="ES256", kid=RSA_KID)),
    "RS512 (not an accepted algorithm)": bearer(make_token(key=RSA_KEY, alg="RS512", kid=RSA_KID)),
}


@pytest.mark.parametrize("headers", UNAUTHENTICATED.values(), ids=UNAUTHENTICATED.keys())
def test_bad_tokens_get_401_and_launch_nothing(client, fake, headers):
    response = client.post("/sync", json=VALID_BODY, headers=headers)
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["field"] == "authorization"
    assert fake.launches == [] and "ActiveSyncs" not in fake.operations
    assert client.get(f"/sync/{'0' * 8}-0000-4000-8000-000000000000", headers=headers).status_code == 401
    assert "SyncRun" not in fake.operations


def test_expired_token_says_so(client):
    response = client.post("/sync", json=VALID_BODY, headers=bearer(make_token(exp=int(time.time()) - 3600)))
    assert "expired" in response.json()["error"]


@pytest.mark.parametrize(
    "token",
    [
        make_token(),
        make_token(key=RSA_KEY, alg="RS256", kid=RSA_KID),
        make_token(key=EC_KEY, alg="ES256", kid=EC_KID),
    ],
    ids=["HS256 legacy secret", "RS256 via JWKS", "ES256 via JWKS"],
)
def test_valid_tokens_launch(client, fake, token):
    response = client.post("/sync", json=VALID_BODY, headers=bearer(token))
    assert response.status_code == 202, response.text
    assert len(fake.launches) == 1


def test_jwks_is_cached_across_requests(client, fake):
    for _ in range(3):
        token = make_token(key=RSA_KEY, alg="RS256", kid=RSA_KID)
        assert (
            client.get("/sync/00000000-0000-4000-8000-000000000000", headers=bearer(token)).status_code == 404
        )
    assert fake.jwks_requests == 1


def test_unknown_kids_cannot_hammer_the_jwks_endpoint(client, fake):
    for n in range(10):
        token = make_token(key=RSA_KEY, alg="RS256", kid=f"junk-{n}")
        assert client.post("/sync", json=VALID_BODY, headers=bearer(token)).status_code == 401
    assert fake.jwks_requests == 1


def test_rotated_key_is_picked_up_after_the_refresh_interval(gateway_factory, fake):
    client = gateway_factory(jwks_min_refresh_seconds=0.0)
    assert client.post(
        "/sync", json=VALID_BODY, headers=bearer(make_token(key=RSA_KEY, alg="RS256", kid=RSA_KID))
    )
    fake.jwks["keys"].append(public_jwk(OTHER_RSA_KEY, "new"))  # Supabase rotated its signing key
    token = make_token(key=OTHER_RSA_KEY, alg="RS256", kid="new")
    response = client.post("/sync", json={**VALID_BODY, "projectName": "Globex"}, headers=bearer(token))
    assert response.status_code == 202, response.text


def test_jwks_down_is_503_not_401(gateway_factory, fake):
    fake.jwks_status = 500
    client = gateway_factory()
    response = client.post(
        "/sync", json=VALID_BODY, headers=bearer(make_token(key=RSA_KEY, alg="RS256", kid=RSA_KID))
    )
    assert response.status_code == 503
    assert fake.launches == []
    # HS256 tokens do not need the JWKS and still work.
    assert client.post("/sync", json=VALID_BODY, headers=bearer(make_token())).status_code == 202


def test_hs256_refused_when_only_jwks_is_configured(gateway_factory, fake):
    client = gateway_factory(jwt_secret=None)
    assert client.post("/sync", json=VALID_BODY, headers=bearer(make_token())).status_code == 401
    assert fake.launches == []


@pytest.mark.parametrize(
    ("settings", "claims", "status"),
    [
        ({"allowed_roles": frozenset({"sync_admin"})}, {}, 403),
        ({"allowed_roles": frozenset({"sync_admin"})}, {"app_metadata": {"role": "sync_admin"}}, 202),
        (
            {"allowed_roles": frozenset({"sync_admin"})},
            {"app_metadata": {"roles": ["viewer", "sync_admin"]}},
            202,
        ),
        # user_metadata is editable by the user themself; it must never grant a role.
        ({"allowed_roles": frozenset({"sync_admin"})}, {"user_metadata": {"role": "sync_admin"}}, 403),
        ({"allowed_roles": frozenset({"authenticated"})}, {}, 202),
        ({"allowed_emails": frozenset({"boss@example.com"})}, {}, 403),
        ({"allowed_emails": frozenset({"boss@example.com"})}, {"email": "Boss@Example.com"}, 202),
        ({"allowed_emails": frozenset({"@example.com"})}, {}, 202),
        ({"allowed_emails": frozenset({"@example.com"})}, {"email": "x@evil-example.com"}, 403),
        ({"allowed_emails": frozenset({"@example.com"})}, {"email": None}, 403),
        (
            {"allowed_emails": frozenset({"@example.com"}), "allowed_roles": frozenset({"sync_admin"})},
            {},
            403,
        ),
    ],
)
def test_allowlists(gateway_factory, fake, settings, claims, status):
    client = gateway_factory(**settings)
    response = client.post("/sync", json=VALID_BODY, headers=bearer(make_token(**claims)))
    assert response.status_code == status, response.text
    assert len(fake.launches) == (1 if status == 202 else 0)


def test_tokens_never_reach_logs_or_dagster(client, fake, caplog):
    caplog.set_level(logging.DEBUG)
    good = make_token()
    bad = make_token(exp=int(time.time()) - 10)
    client.post("/sync", json=VALID_BODY, headers=bearer(good))
    client.post("/sync", json=VALID_BODY, headers=bearer(bad))
    client.get(f"/sync/{fake.launches and list(fake.runs)[0]}", headers=bearer(good))
    signature_parts = [good.split(".")[2], bad.split(".")[2], HS_SECRET]
    logged = caplog.text + repr(fake.launches) + repr(fake.runs)
    assert not any(part in logged for part in signature_parts)
    tags = {t["key"]: t["value"] for t in fake.launches[0]["executionMetadata"]["tags"]}
    assert tags == {
        "ghl/launched_by": "gateway",
        "ghl/scope": "Acme Roofing",
        "ghl/requested_by": "5f2b6c1e-0000-4000-8000-000000000001",
    }
