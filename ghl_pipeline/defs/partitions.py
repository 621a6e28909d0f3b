"""The `all_calls` partitions: calendar day × project.

The ``date`` dimension is a day in the *project's own* time zone: ``2025-12-01|Acme Roofing`` holds
Acme's calls that started on its local 2025-12-01. The daily partitions are defined in UTC+14 (the
zone furthest ahead: Kiritimati), so the newest ``date`` partition is always the local today of the
zone furthest ahead, and therefore contains the local today of every zone from UTC−12 to UTC+14 at
every hour. Nothing else reads the partitions' own time windows: each project's day is turned into
a window in the project's zone by ``windows.DayRange``. Sensors and schedules never request a day
that has not begun in the project's zone.

Project names become keys through a reversible encoding (CONTRACT §3). Dagster joins multi-partition
keys with ``|`` and reads ``,``, ``[ ]`` and ``...`` as list and range syntax, and refuses control
characters, so exactly those characters (and ``%``, the escape itself, plus leading and trailing
spaces, which a person cannot see in the UI) are written as ``%XX``. Everything else stays as typed:
``Smith & Sons, LLC`` is the key ``Smith & Sons%2C LLC``, a name a person still recognises.
"""

from __future__ import annotations

import re
from datetime import date

import dagster as dg

from ghl_pipeline.config import partitions_start

PROJECTS_PARTITIONS_NAME = "projects"
# The zone furthest ahead of UTC: its today is the newest local day anywhere.
NEWEST_ZONE = "Etc/GMT-14"  # POSIX sign convention: Etc/GMT-14 is UTC+14

project_partitions = dg.DynamicPartitionsDefinition(name=PROJECTS_PARTITIONS_NAME)
date_partitions = dg.DailyPartitionsDefinition(
    start_date=partitions_start().isoformat(), timezone=NEWEST_ZONE, end_offset=1
)
all_calls_partitions = dg.MultiPartitionsDefinition({"date": date_partitions, "project": project_partitions})

# One character that must be escaped: the escape itself, Dagster's key syntax, control characters.
_ESCAPED_CHAR = re.compile(r"[%|,\[\]\x00-\x1f\x7f]")
_DOTS = re.compile(r"\.{3,}")  # "..." is range syntax; a run of three or more dots is escaped whole
_EDGE_SPACES = re.compile(r"^ +| +$")
_ESCAPE = re.compile(r"%([0-9A-F]{2})")


def _escape(match: re.Match[str]) -> str:
    return "".join(f"%{ord(ch):02X}" for ch in match.group(0))


def project_key(project_name: str) -> str:
    """The ``project`` partition key of ``project_name``: reversible, and free of Dagster's key syntax.

    Raises ``ValueError`` for the one name no key can carry: the empty string.
    """
    if not project_name:
        raise ValueError("an empty project name cannot be a partition key")
    key = _ESCAPED_CHAR.sub(_escape, project_name)
    key = _DOTS.sub(_escape, key)
    return _EDGE_SPACES.sub(_escape, key)


def project_name_of(key: str) -> str:
    """The project name a ``project`` partition key stands for (inverse of :func:`project_key`)."""
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), key)


def partition_key(day: date, project_name: str) -> dg.MultiPartitionKey:
    """The `all_calls` partition of ``project_name``'s local ``day``."""
    return dg.MultiPartitionKey({"date": day.isoformat(), "project": project_key(project_name)})


def split_partition_key(key: str) -> tuple[date, str]:
    """``(day, project_name)`` of an `all_calls` partition key (the project name decoded)."""
    dims = all_calls_partitions.get_partition_key_from_str(key).keys_by_dimension
    return date.fromisoformat(dims["date"]), project_name_of(dims["project"])


def registered_project_names(instance: dg.DagsterInstance) -> list[str]:
    """Names of the projects that have a ``project`` partition, in the partitions' insertion order."""
    return [project_name_of(k) for k in instance.get_dynamic_partitions(PROJECTS_PARTITIONS_NAME)]
