"""Gateway configuration, read once from the environment where the app is assembled."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

DEFAULT_DAGSTER_GRAPHQL_URL = "http://127.0.0.1:3000/graphql"
DEFAULT_MAX_BODY_BYTES = 8192
MAX_WAIT_SECONDS = 30.0
SUPABASE_AUDIENCE = "authenticated"


class GatewayConfigError(ValueError):
    """The gateway's environment is incomplete or contradictory (names the variable)."""


@dataclass(frozen=True)
class GatewaySettings:
    """Everything the gateway needs: where Dagster is, how to check tokens, who may sync.

    ``jwt_secret`` never shows in ``repr``; a token is never stored here.
    """

    dagster_graphql_url: str = DEFAULT_DAGSTER_GRAPHQL_URL
    jwks_url: str | None = None
    jwt_secret: str | None = field(default=None, repr=False)
    jwt_issuer: str | None = None
    audience: str = SUPABASE_AUDIENCE
    allowed_roles: frozenset[str] = frozenset()
    allowed_emails: frozenset[str] = frozenset()
    cors_origins: tuple[str, ...] = ()
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    # The warehouse holding ``projects`` (read-only); None = the pipeline's own default (DATABASE_URL,
    # else the embedded Postgres). The password in it never shows in ``repr``.
    database_url: str | None = field(default=None, repr=False)
    # How often a long poll (``GET /sync/{runId}?wait=N``) asks Dagster while it waits: the toast can
    # lag the run's end by at most this much plus one GraphQL round trip.
    status_poll_seconds: float = 0.1
    dagster_timeout_seconds: float = 15.0
    jwks_cache_seconds: float = 300.0
    # An unknown ``kid`` makes us refetch the JWKS (Supabase rotates keys), but at most this often, so
    # junk tokens cannot turn the gateway into a JWKS request amplifier.
    jwks_min_refresh_seconds: float = 30.0

    def __post_init__(self) -> None:
        if not self.jwks_url and not self.jwt_secret:
            raise GatewayConfigError(
                "no way to verify tokens: set SUPABASE_URL (or SUPABASE_JWKS_URL) for asymmetric keys, "
                "or SUPABASE_JWT_SECRET for the legacy HS256 secret"
            )
        if self.jwt_secret is not None and len(self.jwt_secret) < 32:
            raise GatewayConfigError(
                "SUPABASE_JWT_SECRET is shorter than 32 characters; that is not a Supabase secret"
            )
        if self.max_body_bytes < 64:
            raise GatewayConfigError("GATEWAY_MAX_BODY_BYTES must be at least 64")
        if not 0.01 <= self.status_poll_seconds <= 5:
            raise GatewayConfigError("the status poll interval must be between 0.01 and 5 seconds")
        if "*" in self.cors_origins:
            # A wildcard would let any site drive the sync button with a stolen-by-XSS-elsewhere token.
            raise GatewayConfigError("GATEWAY_CORS_ORIGINS must list the dashboard origins, not '*'")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> GatewaySettings:
        """Settings from ``GATEWAY_*`` and ``SUPABASE_*`` variables (see gateway/README.md)."""
        env = os.environ if environ is None else environ
        supabase_url = _text(env, "SUPABASE_URL")
        supabase_url = supabase_url.rstrip("/") if supabase_url else None
        jwks_url = _text(env, "SUPABASE_JWKS_URL")
        if jwks_url is None and supabase_url:
            jwks_url = f"{supabase_url}/auth/v1/.well-known/jwks.json"
        issuer = _text(env, "GATEWAY_JWT_ISSUER")
        if issuer is None and supabase_url:
            issuer = f"{supabase_url}/auth/v1"  # what Supabase Auth writes into `iss`
        return cls(
            dagster_graphql_url=_text(env, "GATEWAY_DAGSTER_GRAPHQL_URL") or DEFAULT_DAGSTER_GRAPHQL_URL,
            jwks_url=jwks_url,
            jwt_secret=_text(env, "SUPABASE_JWT_SECRET"),
            jwt_issuer=issuer,
            allowed_roles=frozenset(_csv(env, "GATEWAY_ALLOWED_ROLES")),
            allowed_emails=frozenset(e.lower() for e in _csv(env, "GATEWAY_ALLOWED_EMAILS")),
            cors_origins=tuple(o.rstrip("/") for o in _csv(env, "GATEWAY_CORS_ORIGINS")),
            max_body_bytes=_int(env, "GATEWAY_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES),
            database_url=_text(env, "DATABASE_URL"),
        )


def _text(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


def _csv(env: Mapping[str, str], name: str) -> list[str]:
    return [part.strip() for part in env.get(name, "").split(",") if part.strip()]


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = _text(env, name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise GatewayConfigError(f"{name} must be an integer number of bytes, got {raw!r}") from None
