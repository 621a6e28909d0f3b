"""Benchmark of the all_calls bulk upsert against the physical limit (run by hand, not a test).

    .venv/bin/python benchmarks/bench_upsert.py [--rows 1000000] [--to-sql-rows 100000] [--parallel 2]

Uses DATABASE_URL when set (a scratch database is created and dropped in it), else an embedded
Postgres in a temporary folder with its default (durable) settings. Measures, on the same frame:

1. upsert into an empty ``all_calls`` (every row new);
2. upsert of a second frame into the full table: half the rows new, half newer versions of stored ones;
3. upsert of that second frame again (every row unchanged);
4. plain COPY into a bare table without any index, serialised with the upsert's own serialiser
   (the physical limit, serialisation included);
5. ``pandas.DataFrame.to_sql`` (what most people would write), on a subset and extrapolated.

Prints rows/s, the ratio to bare COPY, the peak resident memory of each phase (VmHWM, reset between
phases after freed heap is returned to the OS) with its growth over the phase's start, the process's
peak, and the share of the updates Postgres made in place (HOT).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import os
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ghl_pipeline.warehouse import db  # noqa: E402
from ghl_pipeline.warehouse.schema import upgrade  # noqa: E402
from ghl_pipeline.warehouse.upsert import (
    DEFAULT_BATCH_ROWS,
    STAGE_COLUMNS,
    copy_text,
    prepare_calls,
    upsert_calls,
)  # noqa: E402

STATUSES = np.array(
    ["completed", "no-answer", "busy", "voicemail", "failed", "canceled", "answered"], dtype=object
)
TYPES = np.array(["TYPE_CALL", "TYPE_IVR_CALL", "TYPE_CUSTOM_CALL"], dtype=object)
T0 = datetime(2025, 1, 1, tzinfo=UTC)


def _ids(prefix: str, numbers: np.ndarray) -> np.ndarray:
    return np.array([f"{prefix}{n:017d}" for n in numbers.tolist()], dtype=object)


def generate(n: int, *, seed: int, id_offset: int = 0) -> pd.DataFrame:
    """``n`` realistic call rows (20-char ids, names, E.164 phones, 3 projects, 90 days)."""
    rng = np.random.default_rng(seed)
    numbers = np.arange(id_offset, id_offset + n)
    rng.shuffle(numbers)  # GHL ids are not in time order
    starts = pd.to_datetime(T0) + pd.to_timedelta(rng.integers(0, 90 * 86_400, n), unit="s")
    duration = pd.array(rng.integers(0, 3600, n), dtype="Int64")
    duration[rng.random(n) < 0.2] = pd.NA
    has_user = rng.random(n) < 0.6
    names = np.array([f"Lead {i}" for i in range(5000)], dtype=object)
    agents = np.array([f"Agent {i}" for i in range(40)], dtype=object)
    phones = np.array([f"+1512555{i:04d}" for i in range(10_000)], dtype=object)
    project = rng.integers(0, 3, n)
    frame = pd.DataFrame(
        {
            "ghl_id": _ids("m", numbers),
            "project_name": np.array(["Acme Roofing", "Beta Dental", "Gamma Legal"], dtype=object)[project],
            "ghl_location_id": np.array(
                ["Lz8xQk2mN4pR7sT1vW3y", "Ab8xQk2mN4pR7sT1vW3y", "Cd8xQk2mN4pR7sT1vW3y"], dtype=object
            )[project],
            "ghl_conversation_id": _ids("c", rng.integers(0, n, n)),
            "ghl_contact_id": _ids("k", rng.integers(0, n // 2 + 1, n)),
            "ghl_user_id": np.where(has_user, _ids("u", rng.integers(0, 40, n)), None),
            "lead_name": np.where(rng.random(n) < 0.9, names[rng.integers(0, 5000, n)], None),
            "phone_number": phones[rng.integers(0, 10_000, n)],
            "direction": np.where(has_user, "outbound", "inbound").astype(object),
            "call_status": STATUSES[rng.integers(0, len(STATUSES), n)],
            "duration_seconds": duration,
            "agent_name": np.where(has_user, agents[rng.integers(0, 40, n)], None),
            "message_type": TYPES[rng.integers(0, 3, n)],
            "call_started_at": starts,
            "call_date": starts.tz_convert("America/Chicago").tz_localize(None).normalize(),
            "ghl_updated_at": starts + pd.to_timedelta(rng.integers(0, 600, n), unit="s"),
            "synced_at": pd.Timestamp.now(tz="UTC"),
        }
    )
    # The mapping hands call_date over as datetime.date objects; build them once per distinct day.
    codes, uniques = pd.factorize(frame["call_date"])
    frame["call_date"] = np.array([u.date() for u in uniques], dtype=object)[codes]
    return frame


def _reset_peak() -> None:
    with contextlib.suppress(OSError, AttributeError):  # glibc: give freed heap back, so RSS = live memory
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")  # Linux: reset VmHWM to the current RSS


def _status_mib(field: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _peak_mib() -> float:
    peak = _status_mib("VmHWM")
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


_ENGINE: list[sa.Engine] = []


def _measure(label: str, rows: int, fn: Callable[[], object]) -> tuple[float, tuple[float, float], object]:
    """(seconds, (peak RSS, peak RSS minus the RSS at the phase's start), fn's result)."""
    gc.collect()
    if _ENGINE:  # start every phase from a clean checkpoint, so no phase pays for the previous one's WAL
        with _ENGINE[0].connect() as conn:
            conn.exec_driver_sql("CHECKPOINT")
    _reset_peak()
    at_start = _status_mib("VmRSS") or _peak_mib()
    started = time.perf_counter()
    result = fn()
    elapsed = time.perf_counter() - started
    peak = _peak_mib()
    return elapsed, (peak, peak - at_start), result


def _count(engine: sa.Engine, table: str) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar()


def bare_copy(engine: sa.Engine, frame: pd.DataFrame, batch_rows: int) -> None:
    """COPY into a bare, index-less table: serialise with the upsert's serialiser, same batches."""
    columns = ", ".join(f"{c} {t}" for c, t in _bare_types())
    with engine.begin() as conn:
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS bare_calls; CREATE TABLE bare_calls ({columns})")
    import io

    for start in range(0, len(frame), batch_rows):
        payload = copy_text(frame.iloc[start : start + batch_rows]).encode()
        with engine.begin() as conn:
            cur = conn.connection.driver_connection.cursor()
            cur.execute("SET LOCAL TimeZone = 'UTC'")
            cur.copy_expert(
                f"COPY bare_calls ({', '.join(STAGE_COLUMNS)}) FROM STDIN",
                io.BytesIO(payload),
                size=len(payload),
            )


def _bare_types() -> list[tuple[str, str]]:
    types = {
        "duration_seconds": "integer",
        "call_started_at": "timestamptz",
        "call_date": "date",
        "ghl_updated_at": "timestamptz",
    }
    return [(c, types.get(c, "text")) for c in STAGE_COLUMNS] + [("synced_at", "timestamptz")]


def to_sql(engine: sa.Engine, frame: pd.DataFrame) -> None:
    frame.to_sql("to_sql_calls", engine, if_exists="append", index=False, chunksize=10_000)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--to-sql-rows", type=int, default=100_000, help="subset loaded with to_sql")
    parser.add_argument("--batch-rows", type=int, default=None, help="rows per upsert transaction")
    parser.add_argument("--parallel", type=int, default=None, help="connections merging batches at once")
    args = parser.parse_args(argv)

    tmp = None
    if os.environ.get("DATABASE_URL"):
        admin_url = db.normalise_url(os.environ["DATABASE_URL"])
    else:
        import pgserver

        tmp = tempfile.mkdtemp(prefix="ghl-bench-")
        server = pgserver.get_server(tmp, cleanup_mode="delete")
        admin_url = db.normalise_url(server.get_uri())
    name = f"ghl_bench_{os.getpid()}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        settings = {
            r[0]: r[1]
            for r in conn.exec_driver_sql(
                "SELECT name, setting FROM pg_settings WHERE name IN "
                "('shared_buffers','fsync','synchronous_commit','max_wal_size','wal_level')"
            )
        }
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    engine = db.get_engine(url)
    upgrade(engine)
    _ENGINE.append(engine)

    kwargs = {}
    if args.batch_rows:
        kwargs["batch_rows"] = args.batch_rows
    if args.parallel:
        kwargs["parallel"] = args.parallel
    batch_rows = args.batch_rows or DEFAULT_BATCH_ROWS

    n = args.rows
    print(
        f"rows={n:,} cores={os.cpu_count()} server settings={settings} upsert options={kwargs or 'defaults'}"
    )
    baseline = _peak_mib()
    t = time.perf_counter()
    first = generate(n, seed=1)
    frame_mib = _peak_mib() - baseline
    print(
        f"generated the frame in {time.perf_counter() - t:.1f}s; it takes {frame_mib:.0f} MiB of RSS "
        f"(pandas deep size {first.memory_usage(deep=True).sum() / 2**20:.0f} MiB, shared strings counted "
        f"each time); process RSS {_peak_mib():.0f} MiB before the first phase\n"
    )

    results = []

    def record(label, rows, elapsed, memory, extra=""):
        peak, growth = memory
        results.append((label, rows, elapsed, peak, growth, extra))
        print(
            f"  {label:<44} {rows:>10,} rows {elapsed:7.2f}s {rows / elapsed:>10,.0f} rows/s"
            f"  peak RSS {peak:6.0f} MiB (+{growth:4.0f}) {extra}"
        )

    e, p, _ = _measure("copy", n, partial(bare_copy, engine, first, batch_rows))
    assert _count(engine, "bare_calls") == n
    record("bare COPY (no index, same serialiser)", n, e, p)
    copy_rate = n / e

    e, p, c = _measure("upsert-empty", n, partial(upsert_calls, engine, first, **kwargs))
    record("upsert into empty all_calls", n, e, p, str(c))

    def serialise_only(frame):
        data = prepare_calls(frame)
        for start in range(0, len(data), batch_rows):
            copy_text(data.iloc[start : start + batch_rows])

    e, p, _ = _measure("serialise", n, partial(serialise_only, first))
    record("(serialisation alone: prepare + copy_text)", n, e, p)

    # Pass 2: half newer versions of stored calls (new status, later ghl_updated_at), half new calls.
    # Built in place from the first frame (new ids for its second half), so the process holds one
    # frame, not two.
    half = n // 2
    second = first
    del first
    ids = second["ghl_id"].to_numpy(dtype=object).copy()
    ids[half:] = _ids("m", np.arange(n, n + (n - half)))
    second["ghl_id"] = ids
    del ids
    second.loc[: half - 1, "call_status"] = "voicemail"
    second.loc[: half - 1, "ghl_updated_at"] = second.loc[: half - 1, "ghl_updated_at"] + timedelta(
        minutes=30
    )

    e, p, c = _measure("upsert-half", n, lambda: upsert_calls(engine, second, **kwargs))
    record("upsert half new / half updated", n, e, p, str(c))
    e, p, c = _measure("upsert-unchanged", n, lambda: upsert_calls(engine, second, **kwargs))
    record("upsert again (all unchanged)", n, e, p, str(c))
    assert _count(engine, "all_calls") == n + (n - half)

    # Bare COPY once more at the end: the machine is shared, so the ratio uses the mean of both runs.
    e, p, _ = _measure("copy-again", n, partial(bare_copy, engine, second, batch_rows))
    record("bare COPY again (drift check)", n, e, p)
    copy_rate = 2 * n / (results[0][2] + e)

    if args.to_sql_rows:
        sub = second.iloc[: min(args.to_sql_rows, n)]
        e, p, _ = _measure("to_sql", len(sub), lambda: to_sql(engine, sub))
        extrapolated = f"(extrapolated to {n:,}: {e * n / len(sub):.0f}s)" if len(sub) < n else ""
        record(f"pandas to_sql on {len(sub):,} rows", len(sub), e, p, extrapolated)

    print(f"\nratio to bare COPY (rows/s; bare COPY = mean of both runs, {copy_rate:,.0f} rows/s):")
    for label, rows, elapsed, *_ in results[1:]:
        print(f"  {label:<44} {rows / elapsed / copy_rate:5.2f}x")
    peak = max(r[3] for r in results)
    own = max(r[4] for r in results if r[0].startswith("upsert"))
    print(
        f"\nprocess peak RSS over all phases: {peak:.0f} MiB, of which the input frame {frame_mib:.0f} MiB and "
        f"the interpreter + libraries {baseline:.0f} MiB; the upsert's own high-water mark (peak over the "
        f"RSS at a phase's start, the largest of its passes): {own:.0f} MiB"
    )

    time.sleep(1)  # let the backends flush their table statistics
    with engine.connect() as conn:
        size, fill, updates, hot = conn.execute(
            sa.text(
                "SELECT pg_size_pretty(pg_table_size('all_calls')), "
                "(SELECT option_value FROM pg_options_to_table((SELECT reloptions FROM pg_class "
                " WHERE relname = 'all_calls')) WHERE option_name = 'fillfactor'), n_tup_upd, n_tup_hot_upd "
                "FROM pg_stat_user_tables WHERE relname = 'all_calls'"
            )
        ).one()
    print(
        f"all_calls: {size} (fillfactor {fill or 100}); {updates:,} row updates, "
        f"{hot / max(updates, 1):.0%} of them HOT (in place, no new index entries)"
    )

    db.dispose_engines()
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


if __name__ == "__main__":
    main()
