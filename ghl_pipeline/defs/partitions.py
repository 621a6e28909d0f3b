"""The `all_calls` partitions: calendar day × project.

The ``date`` dimension is a day in the *project's own* time zone: ``2025-12-01|Acme Roofing`` holds
Acme's calls that started on its local 2025-12-01. Dagster's daily partitions are defined on UTC with
``end_offset=1`` so that "today" already exists for projects east of UTC (Sydney's today begins while
UTC is still on yesterday).

Project names become partition keys as they are. Dagster joins multi-partition keys with ``|`` and
reads ``,`` and ``...`` as list and range syntax, so a project whose name holds ``|``, ``,``, ``...``,
brackets or control characters cannot be a key: it is refused with an error naming it (the projects
sensor reports it and never adds it) rather than silently renamed into a key nobody recognises.
"""

from __future__ import annotations

from datetime import date

import dagster as dg

from ghl_pipeline.config import partitions_start

PROJECTS_PARTITIONS_NAME = "projects"

project_partitions = dg.DynamicPartitionsDefinition(name=PROJECTS_PARTITIONS_NAME)
date_partitions = dg.DailyPartitionsDefinition(
    start_date=partitions_start().isoformat(), timezone="UTC", end_offset=1
)
all_calls_partitions = dg.MultiPartitionsDefinition({"date": date_partitions, "project": project_partitions})

_FORBIDDEN = ("|", ",", "...", "[", "]")


def partition_key_problem(project_name: str) -> str | None:
    """Why ``project_name`` cannot be a partition key, or ``None`` when it can."""
    if not project_name or project_name != project_name.strip():
        return "it is empty or starts or ends with whitespace"
    for token in _FORBIDDEN:
        if token in project_name:
            return f"it contains {token!r}, which Dagster reads as partition-key syntax"
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in project_name):
        return "it contains control characters"
    return None


def partition_key(day: date, project_name: str) -> dg.MultiPartitionKey:
    """The `all_calls` partition of ``project_name``'s local ``day``."""
    return dg.MultiPartitionKey({"date": day.isoformat(), "project": project_name})


def split_partition_key(key: str) -> tuple[date, str]:
    """``(day, project_name)`` of an `all_calls` partition key."""
    dims = all_calls_partitions.get_partition_key_from_str(key).keys_by_dimension
    return date.fromisoformat(dims["date"]), dims["project"]
