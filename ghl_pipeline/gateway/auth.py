"""Supabase access-token verification: signature, expiry, audience, then the allowlists.

The algorithm is never taken on trust from the token. ``HS256`` tokens are checked only against the
legacy shared secret; ``RS256``/``ES256`` tokens only against a JWKS key of the matching key type (RSA
for RS256, EC P-256 for ES256), so a public key can never be used as an HMAC secret and ``none`` is
never accepted. The token itself is never logged, stored or echoed in an error.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import jwt

from ghl_pipeline.gateway.settings import GatewaySettings

log = logging.getLogger(__name__)

HMAC_ALGORITHM = "HS256"
# kty a JWKS key must have for each asymmetric algorithm Supabase signs with.
ASYMMETRIC_ALGORITHMS: Mapping[str, str] = {"RS256": "RSA", "ES256": "EC"}
MAX_TOKEN_LENGTH = 8192  # Supabase tokens are ~1 KB; a megabyte "token" is an attack, not a login
LEEWAY_SECONDS = 30  # clock skew between Supabase Auth and this host


class AuthError(Exception):
    """The request is not authenticated (HTTP 401); the message is safe to show the caller."""


class ForbiddenError(Exception):
    """The token is valid but its user may not sync (HTTP 403)."""


class JwksUnavailableError(Exception):
    """The JWKS endpoint could not be read, so no asymmetric token can be checked (HTTP 503)."""


@dataclass(frozen=True)
class Principal:
    """Who is calling, from a verified token: the Supabase user id (``sub``), email and roles."""

    user_id: str
    email: str | None
    roles: frozenset[str]


class JwksCache:
    """The Supabase project's signing keys, fetched with httpx and cached.

    Keys are refreshed when the cache is older than ``max_age`` or a token names an unknown ``kid`` (key
    rotation), but never more often than ``min_refresh`` apart.
    """

    def __init__(
        self, *, url: str, client: httpx.AsyncClient, max_age: float = 300.0, min_refresh: float = 30.0
    ) -> None:
        self._url = url
        self._client = client
        self._max_age = max_age
        self._min_refresh = min_refresh
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()

    async def key(self, kid: str) -> jwt.PyJWK | None:
        """The key with this ``kid``, or ``None`` when the project has no such key."""
        now = time.monotonic()
        stale = self._fetched_at is None or now - self._fetched_at > self._max_age
        if stale or (kid not in self._keys and now - (self._fetched_at or 0.0) > self._min_refresh):
            async with self._lock:
                # Another request may have refreshed while we waited.
                if self._fetched_at is None or time.monotonic() - self._fetched_at > min(
                    self._min_refresh, self._max_age
                ):
                    await self._refresh()
        return self._keys.get(kid)

    async def _refresh(self) -> None:
        try:
            response = await self._client.get(self._url, headers={"Accept": "application/json"})
            response.raise_for_status()
            document = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            if self._fetched_at is not None:  # keep serving the keys we have; Supabase hiccups
                log.warning(
                    "JWKS refresh from %s failed (%s); keeping cached keys", self._url, type(exc).__name__
                )
                self._fetched_at = time.monotonic()
                return
            raise JwksUnavailableError(f"could not read the signing keys from {self._url}") from exc
        keys: dict[str, jwt.PyJWK] = {}
        for entry in document.get("keys", []) if isinstance(document, dict) else []:
            if not isinstance(entry, dict) or not isinstance(entry.get("kid"), str):
                continue
            if entry.get("use", "sig") != "sig":
                continue
            try:
                keys[entry["kid"]] = jwt.PyJWK.from_dict(entry)
            except jwt.PyJWTError:
                log.warning("ignoring JWKS key %r that PyJWT cannot use", entry["kid"])
        self._keys = keys
        self._fetched_at = time.monotonic()


class TokenVerifier:
    """Checks ``Authorization: Bearer`` tokens against the settings; returns a ``Principal``."""

    def __init__(self, settings: GatewaySettings, *, jwks: JwksCache | None) -> None:
        self._settings = settings
        self._jwks = jwks

    async def principal(self, authorization: str | None) -> Principal:
        """Verify the header's token and apply the allowlists; ``AuthError``/``ForbiddenError`` otherwise."""
        claims = await self.verify(_bearer_token(authorization))
        return self._authorize(claims)

    async def verify(self, token: str) -> dict[str, Any]:
        """The verified claims of ``token`` (signature, ``exp``, ``aud``, ``iss`` when configured)."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise AuthError("the bearer token is not a JWT") from None
        algorithm = header.get("alg")
        if algorithm == HMAC_ALGORITHM:
            if not self._settings.jwt_secret:
                raise AuthError("HS256 tokens are not accepted here")
            key: Any = self._settings.jwt_secret
        elif isinstance(algorithm, str) and algorithm in ASYMMETRIC_ALGORITHMS:
            key = await self._asymmetric_key(header, algorithm)
        else:
            raise AuthError("the token's signing algorithm is not accepted")
        options = {"require": ["exp", "sub", "aud"], "verify_signature": True}
        if self._settings.jwt_issuer:
            options["require"].append("iss")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[algorithm],  # exactly the one this key may sign with
                audience=self._settings.audience,
                issuer=self._settings.jwt_issuer,
                leeway=LEEWAY_SECONDS,
                options=options,
            )
        except jwt.ExpiredSignatureError:
            raise AuthError("the token has expired; sign in again") from None
        except jwt.InvalidAudienceError:
            raise AuthError(f"the token's audience is not {self._settings.audience!r}") from None
        except jwt.InvalidIssuerError:
            raise AuthError("the token was issued by another Supabase project") from None
        except jwt.InvalidSignatureError:
            raise AuthError("the token's signature is invalid") from None
        except jwt.MissingRequiredClaimError as exc:
            raise AuthError(f"the token has no {exc.claim!r} claim") from None
        except (jwt.PyJWTError, ValueError, TypeError):
            raise AuthError("the token is invalid") from None
        if not isinstance(claims.get("sub"), str) or not claims["sub"].strip():
            raise AuthError("the token has no user id")
        return claims

    async def _asymmetric_key(self, header: Mapping[str, Any], algorithm: str) -> Any:
        if self._jwks is None:
            raise AuthError(f"{algorithm} tokens are not accepted here (no JWKS configured)")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid or len(kid) > 256:
            raise AuthError("the token names no signing key (kid)")
        jwk = await self._jwks.key(kid)
        if jwk is None:
            raise AuthError("the token was signed by a key this project does not publish")
        # PyJWK derives its algorithm from the JWK's own `alg`, else from kty/crv (RSA -> RS256,
        # EC P-256 -> ES256): the key decides the algorithm, the token only has to agree.
        if jwk.algorithm_name != algorithm or jwk.key_type != ASYMMETRIC_ALGORITHMS[algorithm]:
            raise AuthError("the token's algorithm does not match its signing key")
        return jwk.key

    def _authorize(self, claims: Mapping[str, Any]) -> Principal:
        email = claims.get("email") if isinstance(claims.get("email"), str) else None
        principal = Principal(
            user_id=claims["sub"], email=email.lower() if email else None, roles=_roles(claims)
        )
        allowed_roles = self._settings.allowed_roles
        if allowed_roles and not principal.roles & allowed_roles:
            log.info("sync refused for user %s: role not allowed", principal.user_id)
            raise ForbiddenError("your role may not sync calls")
        allowed_emails = self._settings.allowed_emails
        if allowed_emails and not _email_allowed(principal.email, allowed_emails):
            log.info("sync refused for user %s: email not allowed", principal.user_id)
            raise ForbiddenError("your account may not sync calls")
        return principal


def _bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise AuthError("missing 'Authorization: Bearer <token>' header")
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise AuthError("the Authorization header must be 'Bearer <token>'")
    if len(token) > MAX_TOKEN_LENGTH or not token.isascii():
        raise AuthError("the bearer token is not a JWT")
    return token


def _roles(claims: Mapping[str, Any]) -> frozenset[str]:
    """Roles from ``role`` and ``app_metadata.role(s)``; never ``user_metadata``, which users can edit."""
    roles: set[str] = set()
    if isinstance(claims.get("role"), str):
        roles.add(claims["role"])
    app_metadata = claims.get("app_metadata")
    if isinstance(app_metadata, dict):
        if isinstance(app_metadata.get("role"), str):
            roles.add(app_metadata["role"])
        listed = app_metadata.get("roles")
        if isinstance(listed, list):
            roles.update(role for role in listed if isinstance(role, str))
    return frozenset(roles)


def _email_allowed(email: str | None, allowed: frozenset[str]) -> bool:
    """Exact addresses, or ``@example.com`` entries that admit a whole domain."""
    if not email:
        return False
    domain = "@" + email.rpartition("@")[2]
    return email in allowed or domain in allowed
