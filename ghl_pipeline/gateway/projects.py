"""The gateway's read-only look at ``projects``: refuse a sync of an unknown or inactive project early.

The job checks the project too, but only once its run has started; by then the dashboard has a run
id, a spinner and, seconds later, a failure worded for an operator. Checking here answers the click
at once with a 400 naming ``projectName`` and a suggestion for a typo. Only ``SELECT``s are sent, on
the warehouse engine (``ghl_pipeline.warehouse``); the gateway never creates or changes a table.
"""

from __future__ import annotations

import asyncio
import difflib
import logging

import sqlalchemy as sa

from ghl_pipeline.gateway.body import BodyError
from ghl_pipeline.warehouse.db import get_engine
from ghl_pipeline.warehouse.projects import list_projects

log = logging.getLogger(__name__)


class ProjectsUnavailableError(Exception):
    """The ``projects`` table could not be read (database down, no permission)."""


class ProjectCatalog:
    """Checks a requested project against the ``projects`` table, read fresh on every launch."""

    def __init__(self, database_url: str) -> None:
        self._database_url = database_url

    async def check(self, project_name: str | None) -> None:
        """Raise ``BodyError("projectName", ...)`` unless ``project_name`` (or, for ``None``, any) is active."""
        active, inactive = await asyncio.to_thread(self._read)
        if project_name is None:
            if not active:
                raise BodyError("projectName", "there are no active projects to sync")
            return
        if project_name in active:
            return
        if project_name in inactive:
            raise BodyError(
                "projectName", f"Inactive project: {project_name!r} is switched off, so it is not synced"
            )
        close = difflib.get_close_matches(project_name, sorted(active), n=1, cutoff=0.6)
        if not close:  # a different capitalisation is the commonest slip and difflib scores it low
            by_case = {name.casefold(): name for name in active}
            close = [by_case[project_name.casefold()]] if project_name.casefold() in by_case else []
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise BodyError("projectName", f"Unknown project: {project_name!r}{hint}")

    def _read(self) -> tuple[set[str], set[str]]:
        """Names of the active and of the inactive projects (rows missing a token or location are neither)."""
        try:
            projects = list_projects(get_engine(self._database_url), active_only=False)
        except sa.exc.ProgrammingError:
            return set(), set()  # no projects table yet: nothing can be synced (the job agrees)
        except sa.exc.SQLAlchemyError as exc:
            log.error("could not read projects: %s", type(exc).__name__)
            raise ProjectsUnavailableError(
                "the projects table could not be read; try again shortly"
            ) from None
        active = {p.name for p in projects if p.active}
        return active, {p.name for p in projects if not p.active}
