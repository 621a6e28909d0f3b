"""Bulk upsert of an ``all_calls`` frame: COPY into a temp table, then one ``INSERT ... ON CONFLICT``.

Rules (CONTRACT §3):
- ``ghl_id`` is the key; a call is never duplicated.
- An older version never overwrites a newer one: a row is replaced only when the incoming
  ``ghl_updated_at`` is not older than the stored one. A missing ``ghl_updated_at`` counts as the oldest
  possible version (``-infinity``): an unstamped version never replaces a stamped one, and any version
  replaces a row that has no stamp (e.g. rows of an older feed).
- A row whose content is identical is left alone (counted ``unchanged``; its ``synced_at`` keeps the
  time it was last written), so re-syncing a window costs reads, not writes.
- Rows are merged in ``ghl_id`` order so two syncs writing overlapping calls take row locks in the same
  order: they queue instead of deadlocking, and the second sees the first's committed row before its
  ``WHERE`` decides (READ COMMITTED re-checks the latest version), so no update is lost.
- Each batch is one transaction. Values travel only as COPY data and bound parameters.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Collection, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from ghl_pipeline.calls.mapping import ALL_CALLS_COLUMNS
from ghl_pipeline.calls.validation import UNSTORABLE_TEXT

# Columns copied into the staging table: every contract column but synced_at (a bound parameter).
STAGE_COLUMNS: tuple[str, ...] = tuple(c for c in ALL_CALLS_COLUMNS if c != "synced_at")
_STAGE_TYPES = {
    # Byte order: the cheapest sort, and the lock order every writer shares (see the module docstring).
    "ghl_id": 'text COLLATE "C"',
    "duration_seconds": "integer",
    "call_started_at": "timestamptz",
    "call_date": "date",
    "ghl_updated_at": "timestamptz",
}
_STAGE = "_ghl_all_calls_stage"
# ON COMMIT DELETE ROWS: the staging table lives as long as the pooled connection, so a sync with many
# batches does not create and drop a catalog entry per batch.
_CREATE_STAGE = (
    f"CREATE TEMP TABLE IF NOT EXISTS {_STAGE} ("
    + ", ".join(f"{c} {_STAGE_TYPES.get(c, 'text')}" for c in STAGE_COLUMNS)
    + ") ON COMMIT DELETE ROWS"
)
_UPDATED = [c for c in STAGE_COLUMNS if c != "ghl_id"]


@lru_cache(maxsize=16)
def _merge_sql(keep_stored: frozenset[str] = frozenset()) -> str:
    """The merge statement; columns in ``keep_stored`` keep the stored value where the new one is null.

    That is for a sync that could not read an enrichment (GHL refused the users, say): its calls land
    with those fields null, but a call already stored with its agent's name keeps the name.
    """

    def incoming(c: str) -> str:
        return f"coalesce(EXCLUDED.{c}, all_calls.{c})" if c in keep_stored else f"EXCLUDED.{c}"

    return f"""
WITH written AS (
    INSERT INTO all_calls ({", ".join(STAGE_COLUMNS)}, synced_at)
    SELECT {", ".join(STAGE_COLUMNS)}, %(synced_at)s FROM {_STAGE} ORDER BY ghl_id
    ON CONFLICT (ghl_id) DO UPDATE SET
        {", ".join(f"{c} = {incoming(c)}" for c in _UPDATED)}, synced_at = EXCLUDED.synced_at
    WHERE coalesce(EXCLUDED.ghl_updated_at, '-infinity') >= coalesce(all_calls.ghl_updated_at, '-infinity')
      AND ({", ".join(f"all_calls.{c}" for c in _UPDATED)})
          IS DISTINCT FROM ({", ".join(incoming(c) for c in _UPDATED)})
    RETURNING (xmax = 0) AS inserted
)
SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM written
"""


# Measured with benchmarks/bench_upsert.py (2 cores): while this thread serialises one batch, two
# connections COPY and merge the previous ones. 50k-row batches shorten the start (nothing to merge
# yet) and the tail (the last merge alone) against 100k; a third connection only adds contention.
DEFAULT_BATCH_ROWS = 50_000
DEFAULT_PARALLEL = 2


@dataclass(frozen=True)
class UpsertCounts:
    """How many distinct calls were new, replaced by a newer or different version, or left as they were."""

    new: int
    updated: int
    unchanged: int

    def __add__(self, other: UpsertCounts) -> UpsertCounts:
        return UpsertCounts(
            self.new + other.new, self.updated + other.updated, self.unchanged + other.unchanged
        )


# --- COPY text serialisation -------------------------------------------------------------------------
# COPY's text format: tab-separated, \N for NULL, backslash escapes for \\, \t, \n, \r. Each column is
# turned into a list of strings with numpy/C-level operations, then rows are joined in one pass.

_NULL = "\\N"
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _text_column(values: pd.Series) -> list[str]:
    data = values.to_numpy(dtype=object)
    missing = pd.isna(data)
    present = data[~missing] if missing.any() else data
    try:
        probe = "".join(present)  # C-speed: one pass over every byte, no per-value Python
    except TypeError:  # not all str (e.g. numbers in a text column): convert them first
        data = np.array([None if m else str(v) for v, m in zip(data, missing, strict=True)], dtype=object)
        probe = "".join(data[~missing])
    if any(ch in probe for ch in "\\\t\n\r"):
        data = np.array(
            [None if m else v.translate(_ESCAPES) for v, m in zip(data, missing, strict=True)], dtype=object
        )
    if missing.any():
        data = data.copy()
        data[missing] = _NULL
    return data.tolist()


def _with_nulls(text: np.ndarray, missing: np.ndarray) -> list[str]:
    out = text.astype(object)  # object before masking: np.where on fixed-width str arrays is slow
    if missing.any():
        out[missing] = _NULL
    return out.tolist()


def _int_column(values: pd.Series) -> list[str]:
    series = pd.Series(values).astype("Int64")
    numbers = series.to_numpy(dtype="int64", na_value=0).astype(str)
    return _with_nulls(numbers, series.isna().to_numpy())


def _timestamp_column(values: pd.Series) -> list[str]:
    stamps = pd.to_datetime(values, utc=True)
    raw = stamps.to_numpy(dtype="datetime64[us]")  # UTC wall time; the session's TimeZone is UTC
    return _with_nulls(np.datetime_as_string(raw, unit="us"), np.isnat(raw))


def _date_column(values: pd.Series) -> list[str]:
    codes, uniques = pd.factorize(values)  # few distinct days: format each once
    labels = np.array([pd.Timestamp(u).strftime("%Y-%m-%d") for u in uniques] + [_NULL], dtype=object)
    return labels[codes].tolist()


_SERIALISERS = {
    "duration_seconds": _int_column,
    "call_started_at": _timestamp_column,
    "ghl_updated_at": _timestamp_column,
    "call_date": _date_column,
}


# Rows are serialised a chunk at a time: a chunk's per-column string lists are the serialiser's
# largest temporary, so chunking bounds its memory whatever the batch size.
_CHUNK_ROWS = 20_000


def copy_text(frame: pd.DataFrame, columns: Sequence[str] = STAGE_COLUMNS, *, sort: bool = False) -> str:
    """``frame[columns]`` as COPY text-format data (timestamps in UTC without offset).

    ``sort`` orders the lines by their text, i.e. by the first column.
    """
    if frame.empty:
        return ""
    lines: list[str] = []
    for start in range(0, len(frame), _CHUNK_ROWS):
        chunk = frame.iloc[start : start + _CHUNK_ROWS]
        cols = [_SERIALISERS.get(c, _text_column)(chunk[c]) for c in columns]
        lines.extend(map("\t".join, zip(*cols, strict=True)))
        del cols
    if sort:
        lines.sort()
    return "\n".join(lines) + "\n"


# --- upsert ------------------------------------------------------------------------------------------


def prepare_calls(frame: pd.DataFrame) -> pd.DataFrame:
    """Contract columns only, one row per ``ghl_id`` (the newest ``ghl_updated_at``; missing = oldest)."""
    missing = [c for c in STAGE_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"frame lacks all_calls columns: {missing}")
    if frame["ghl_id"].isna().any():
        raise ValueError("frame has rows without ghl_id; validate_calls rejects those")
    data = frame[list(STAGE_COLUMNS)]
    if data["ghl_id"].duplicated().any():
        data = data.sort_values("ghl_updated_at", na_position="first", kind="stable")
        data = data.drop_duplicates("ghl_id", keep="last")
    # No frame sort here: reordering a frame of Python strings scatters them in memory and doubles the
    # serialisation time; each batch's COPY lines are sorted instead (see copy_text).
    return data.reset_index(drop=True)


def _merge_payload(
    engine: sa.Engine,
    payload: bytes,
    rows: int,
    synced_at: datetime,
    keep_stored: frozenset[str] = frozenset(),
) -> UpsertCounts:
    """COPY one batch's serialised rows into the staging table and merge them; one transaction."""
    with engine.begin() as conn:
        raw = conn.connection.driver_connection
        with raw.cursor() as cur:
            # Session-local, this transaction only: the COPY text carries UTC wall times, a big sort
            # stays in memory, and losing the last ms of commits on a crash is harmless here (a
            # re-sync rewrites them) while not waiting for the WAL flush is not.
            cur.execute("SET LOCAL TimeZone = 'UTC'")
            cur.execute("SET LOCAL work_mem = '256MB'")
            cur.execute("SET LOCAL synchronous_commit = off")
            cur.execute(_CREATE_STAGE)
            # One read of the whole buffer: psycopg2 then sends it with the GIL released. Read in
            # the default 8 KiB chunks, the COPY would take the GIL thousands of times while the
            # main thread serialises the next batch, and wait on Python instead of Postgres.
            cur.copy_expert(
                f"COPY {_STAGE} ({', '.join(STAGE_COLUMNS)}) FROM STDIN",
                io.BytesIO(payload),
                size=len(payload),
            )
            cur.execute(_merge_sql(keep_stored), {"synced_at": synced_at})
            new, updated = cur.fetchone()
    return UpsertCounts(new=new, updated=updated, unchanged=rows - new - updated)


def _payload(batch: pd.DataFrame) -> bytes:
    # Lines sorted by ghl_id: Postgres' sort (the lock order) then finds them in order in one pass.
    return copy_text(batch, sort=True).encode()


def _default_synced_at(frame: pd.DataFrame) -> datetime:
    if "synced_at" in frame.columns and frame["synced_at"].notna().any():
        return pd.Timestamp(frame["synced_at"].max()).to_pydatetime()
    return datetime.now(UTC)


def upsert_calls(
    engine: sa.Engine,
    frame: pd.DataFrame,
    *,
    synced_at: datetime | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    parallel: int = DEFAULT_PARALLEL,
    keep_stored: Collection[str] = (),
) -> UpsertCounts:
    """Insert new calls and replace older versions in ``all_calls``; returns the counts.

    ``frame`` has the contract's columns (extra ones are ignored); ``synced_at`` defaults to the frame's
    ``synced_at`` (else now). Large frames are split into batches of ``batch_rows`` (one transaction
    each, disjoint sets of ``ghl_id``); ``parallel`` > 1 merges batches over that many connections.
    Columns in ``keep_stored`` never overwrite a stored value with null (an enrichment GHL refused).
    """
    keep = frozenset(keep_stored)
    unknown = keep - set(_UPDATED)
    if unknown:
        raise ValueError(f"keep_stored names columns all_calls does not update: {sorted(unknown)}")
    data = prepare_calls(frame)
    if data.empty:
        return UpsertCounts(0, 0, 0)
    stamp = synced_at or _default_synced_at(frame)
    n_batches = max(1, math.ceil(len(data) / batch_rows))
    bounds = np.linspace(0, len(data), n_batches + 1).astype(int)
    # The frame holds each ghl_id once, so batches are disjoint key sets: parallel batches never wait
    # on each other's rows, and each takes its locks in ghl_id order, as every other writer does.
    batches = [data.iloc[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    if parallel <= 1 or len(batches) == 1:
        results = [_merge_payload(engine, _payload(b), len(b), stamp, keep) for b in batches]
    else:
        results = _pipelined(engine, batches, stamp, parallel, keep)
    total = UpsertCounts(0, 0, 0)
    for r in results:
        total = total + r
    return total


def _pipelined(
    engine: sa.Engine,
    batches: list[pd.DataFrame],
    synced_at: datetime,
    parallel: int,
    keep_stored: frozenset[str] = frozenset(),
) -> list[UpsertCounts]:
    """Serialise batches in this thread while ``parallel`` connections COPY and merge earlier ones.

    Serialisation is Python (one core, the GIL); COPY and merge are Postgres. One producer keeps
    every connection busy instead of all workers serialising at once and then all waiting on the
    server; at most ``parallel`` + 1 payloads exist at a time. The first failure stops the producer
    and is raised once the batches already sent have finished (each is its own transaction).
    """
    results: list[UpsertCounts] = []
    with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="upsert") as pool:
        running: set[Future[UpsertCounts]] = set()
        try:
            for batch in batches:
                payload = _payload(batch)
                while len(running) >= parallel:
                    done, running = wait(running, return_when=FIRST_COMPLETED)
                    results.extend(f.result() for f in done)
                running.add(pool.submit(_merge_payload, engine, payload, len(batch), synced_at, keep_stored))
                del payload
        finally:
            done, _ = wait(running)
        results.extend(f.result() for f in done)
    return results


# --- rejects -----------------------------------------------------------------------------------------

_INSERT_REJECTS = """
INSERT INTO all_calls_rejects (ghl_id, project_name, ghl_location_id, rule, detail, raw, rejected_at)
SELECT r.ghl_id, r.project_name, r.ghl_location_id, r.rule, r.detail, r.raw, coalesce(r.rejected_at, now())
FROM jsonb_to_recordset(CAST(:rows AS jsonb))
    AS r(ghl_id text, project_name text, ghl_location_id text, rule text, detail text, raw jsonb,
         rejected_at timestamptz)
ON CONFLICT ON CONSTRAINT all_calls_rejects_record_key DO NOTHING
"""


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | pd.Timestamp):
        return value.isoformat()
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return str(value)


def _plain(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if value is pd.NA or value is pd.NaT:
        return None
    return value


def _storable(value: Any) -> Any:
    """``value`` with NUL and lone surrogates replaced by U+FFFD: jsonb refuses both, and a rejected
    record is better kept slightly altered than not kept at all."""
    if isinstance(value, str):
        return UNSTORABLE_TEXT.sub("\ufffd", value)
    if isinstance(value, dict):
        return {_storable(k): _storable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_storable(v) for v in value]
    return value


def insert_rejects(engine: sa.Engine, rejects: pd.DataFrame) -> int:
    """Store rejected records (one row each); a record already stored with the same rule is skipped.

    Returns how many rows were inserted.
    """
    if rejects is None or rejects.empty:
        return 0
    rows = []
    for rec in rejects.to_dict("records"):
        raw = rec.get("raw")
        rows.append(
            {
                "ghl_id": _plain(rec.get("ghl_id")),
                "project_name": _plain(rec.get("project_name")),
                "ghl_location_id": _plain(rec.get("ghl_location_id")),
                "rule": _plain(rec.get("rule")),
                "detail": _plain(rec.get("detail")),
                "raw": dict(raw) if raw is not None and hasattr(raw, "items") else {"value": raw},
                "rejected_at": _plain(rec.get("rejected_at")),
            }
        )
    payload = json.dumps(_storable(rows), default=_json_default)
    with engine.begin() as conn:
        result = conn.execute(sa.text(_INSERT_REJECTS), {"rows": payload})
    return result.rowcount
