"""Typed errors of the GHL boundary.

Every error names the project (the pipeline runs many) and carries GHL's own message, never the
token. ``GHLAccessError`` groups the failures that no retry can fix (bad/expired token, missing
scope, a location the token cannot see): the pipeline stops that project and tells a human.
"""

from __future__ import annotations


class GHLError(Exception):
    """Base of every error the GHL client raises."""

    def __init__(self, project_name: str | None, status: int | None, message: str) -> None:
        self.project_name = project_name
        self.status = status
        self.message = message
        who = f"project {project_name!r}" if project_name else "GHL"
        code = f"HTTP {status}" if status is not None else "no HTTP status"
        super().__init__(f"{who}: {message} ({code})")

    def __reduce__(self):  # keep picklable (Dagster serialises failures) despite the custom __init__
        return (type(self), (self.project_name, self.status, self.message))


class GHLAccessError(GHLError):
    """The token cannot do this: retrying will not help; a human must fix the token or its scopes."""


class GHLAuthError(GHLAccessError):
    """401: the token is invalid, expired or revoked."""


class GHLScopeError(GHLAccessError):
    """401 "The token is not authorized for this scope.": the token is fine but lacks a scope."""


class GHLForbiddenError(GHLAccessError):
    """403: the token cannot see this location (or this resource)."""


class GHLBlockedError(GHLError):
    """403 without a JSON body: a proxy or firewall in front of GHL (Cloudflare error 1010), not the token."""


class GHLNotFoundError(GHLError):
    """404: the resource does not exist."""


class GHLBadRequestError(GHLError):
    """400/422: GHL rejected the request as malformed; retrying the same request cannot succeed."""


class GHLRateLimitBudgetError(GHLError):
    """The location's daily request budget would run out; refused *before* it does."""


class GHLPaginationError(GHLError):
    """The export repeated a cursor or a page (or never advanced): stopping instead of looping."""


class GHLUnavailableError(GHLError):
    """GHL kept failing (5xx, 429, timeouts, dropped connections) until the retries ran out."""
