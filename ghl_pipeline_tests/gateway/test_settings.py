"""GatewaySettings.from_env: documented variables, derived URLs, and refusals of unsafe setups."""

from __future__ import annotations

import pytest

from ghl_pipeline.gateway import GatewayConfigError, GatewaySettings

SECRET = "s" * 40


def test_supabase_url_derives_jwks_and_issuer():
    settings = GatewaySettings.from_env(
        {
            "SUPABASE_URL": "https://abcd.supabase.co/",
            "GATEWAY_ALLOWED_ROLES": "sync_admin, ops",
            "GATEWAY_ALLOWED_EMAILS": "Boss@Example.com,@example.org",
            "GATEWAY_CORS_ORIGINS": "https://dash.example.com/, http://localhost:5173",
            "GATEWAY_MAX_BODY_BYTES": "2048",
        }
    )
    assert settings.jwks_url == "https://abcd.supabase.co/auth/v1/.well-known/jwks.json"
    assert settings.jwt_issuer == "https://abcd.supabase.co/auth/v1"
    assert settings.dagster_graphql_url == "http://127.0.0.1:3000/graphql"
    assert settings.allowed_roles == {"sync_admin", "ops"}
    assert settings.allowed_emails == {"boss@example.com", "@example.org"}
    assert settings.cors_origins == ("https://dash.example.com", "http://localhost:5173")
    assert settings.max_body_bytes == 2048


def test_secret_never_shows_in_repr():
    settings = GatewaySettings.from_env({"SUPABASE_JWT_SECRET": SECRET})
    assert SECRET not in repr(settings)
    assert settings.jwks_url is None and settings.jwt_issuer is None


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({}, "no way to verify tokens"),
        ({"SUPABASE_JWT_SECRET": "tiny-secret-value"}, "32 characters"),
        ({"SUPABASE_JWT_SECRET": SECRET, "GATEWAY_CORS_ORIGINS": "*"}, "not '*'"),
        ({"SUPABASE_JWT_SECRET": SECRET, "GATEWAY_MAX_BODY_BYTES": "lots"}, "GATEWAY_MAX_BODY_BYTES"),
        ({"SUPABASE_JWT_SECRET": SECRET, "GATEWAY_MAX_BODY_BYTES": "10"}, "at least 64"),
    ],
)
def test_unsafe_or_incomplete_environments_are_refused(env, words):
    with pytest.raises(GatewayConfigError, match=words) as info:
        GatewaySettings.from_env(env)
    assert "tiny-secret-value" not in str(info.value)
