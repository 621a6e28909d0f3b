"""The bulk upsert against a real Postgres: keys, versions, counts, concurrency."""

from __future__ import annotations

import itertools
import threading
from datetime import timedelta

import numpy as np
import pandas as pd
import psycopg2
import pytest
import sqlalchemy as sa

from ghl_pipeline.warehouse.upsert import UpsertCounts, copy_text, insert_rejects, upsert_calls
from ghl_pipeline_tests.warehouse.helpers import T0, call_row, calls_frame


def table(engine: sa.Engine) -> pd.DataFrame:
    with engine.connect() as conn:
        return pd.read_sql(sa.text("SELECT * FROM all_calls ORDER BY ghl_id"), conn)


def test_first_upsert_inserts_every_row_and_a_second_changes_nothing(engine):
    frame = calls_frame([call_row(f"m{i}") for i in range(5)])

    assert upsert_calls(engine, frame) == UpsertCounts(new=5, updated=0, unchanged=0)
    before = table(engine)
    assert upsert_calls(engine, frame) == UpsertCounts(new=0, updated=0, unchanged=5)

    pd.testing.assert_frame_equal(table(engine), before)
    assert list(before["ghl_id"]) == [f"m{i}" for i in range(5)]


def test_values_round_trip(engine):
    row = call_row(
        "m1",
        lead_name="O'Brien\tTab\\slash\nnewline",
        duration_seconds=None,
        ghl_updated_at=None,
        agent_name="Ünïcødé",
    )
    upsert_calls(engine, calls_frame([row]))

    stored = table(engine).iloc[0]
    assert stored["lead_name"] == "O'Brien\tTab\\slash\nnewline"
    assert stored["agent_name"] == "Ünïcødé"
    assert stored["duration_seconds"] is None or pd.isna(stored["duration_seconds"])
    assert pd.isna(stored["ghl_updated_at"])
    assert stored["call_started_at"] == pd.Timestamp(T0)
    assert str(stored["call_date"]) == "2025-03-01"
    assert stored["synced_at"] == pd.Timestamp(T0 + timedelta(hours=1))


@pytest.mark.parametrize(
    ("stored_updated", "incoming_updated", "expect_status", "expect_counts"),
    [
        pytest.param(T0, T0 + timedelta(minutes=1), "voicemail", UpsertCounts(0, 1, 0), id="newer-replaces"),
        pytest.param(T0 + timedelta(minutes=1), T0, "completed", UpsertCounts(0, 0, 1), id="older-ignored"),
        pytest.param(T0, T0, "voicemail", UpsertCounts(0, 1, 0), id="same-stamp-different-content"),
        pytest.param(None, T0, "voicemail", UpsertCounts(0, 1, 0), id="stamp-replaces-unstamped"),
        pytest.param(T0, None, "completed", UpsertCounts(0, 0, 1), id="unstamped-never-replaces-stamped"),
        pytest.param(None, None, "voicemail", UpsertCounts(0, 1, 0), id="unstamped-replaces-unstamped"),
    ],
)
def test_an_older_version_never_overwrites_a_newer_one(
    engine, stored_updated, incoming_updated, expect_status, expect_counts
):
    upsert_calls(engine, calls_frame([call_row("m1", updated=stored_updated, status="completed")]))

    counts = upsert_calls(engine, calls_frame([call_row("m1", updated=incoming_updated, status="voicemail")]))

    assert counts == expect_counts
    assert table(engine)["call_status"].tolist() == [expect_status]


def test_counts_mix_new_updated_unchanged(engine):
    upsert_calls(engine, calls_frame([call_row(f"m{i}") for i in range(4)]))
    later = T0 + timedelta(minutes=5)
    frame = calls_frame(
        [
            call_row("m0"),  # unchanged
            call_row("m1", updated=later, status="voicemail"),  # updated
            call_row("m2", updated=T0 - timedelta(minutes=5), status="failed"),  # older: unchanged
            call_row("m9"),  # new
        ]
    )

    assert upsert_calls(engine, frame) == UpsertCounts(new=1, updated=1, unchanged=2)
    stored = table(engine).set_index("ghl_id")
    assert stored.loc["m1", "call_status"] == "voicemail"
    assert stored.loc["m2", "call_status"] == "completed"
    assert len(stored) == 5


def test_unchanged_rows_keep_their_synced_at_and_updated_rows_get_the_new_one(engine):
    upsert_calls(engine, calls_frame([call_row("m0"), call_row("m1")]), synced_at=T0)
    later = T0 + timedelta(days=1)

    upsert_calls(
        engine, calls_frame([call_row("m0"), call_row("m1", updated=later, status="busy")]), synced_at=later
    )

    stored = table(engine).set_index("ghl_id")["synced_at"]
    assert stored["m0"] == pd.Timestamp(T0)
    assert stored["m1"] == pd.Timestamp(later)


def test_duplicate_ids_in_one_frame_keep_the_newest(engine):
    frame = calls_frame(
        [
            call_row("m1", updated=T0 + timedelta(minutes=2), status="voicemail"),
            call_row("m1", updated=T0, status="completed"),
            call_row("m1", updated=None, status="failed"),
        ]
    )

    assert upsert_calls(engine, frame) == UpsertCounts(new=1, updated=0, unchanged=0)
    assert table(engine)["call_status"].tolist() == ["voicemail"]


def test_batches_and_parallel_merge_give_the_same_result(engine):
    frame = calls_frame([call_row(f"m{i:03d}") for i in range(250)])

    assert upsert_calls(engine, frame, batch_rows=40, parallel=2) == UpsertCounts(250, 0, 0)
    assert upsert_calls(engine, frame, batch_rows=40, parallel=2) == UpsertCounts(0, 0, 250)
    assert table(engine)["ghl_id"].tolist() == [f"m{i:03d}" for i in range(250)]


def test_a_failing_batch_is_raised_and_a_rerun_completes_the_table(engine):
    rows = [call_row(f"m{i:03d}") for i in range(250)]
    rows[230]["call_started_at"] = None  # NOT NULL: Postgres refuses this batch (validation would have)
    with pytest.raises(psycopg2.IntegrityError, match="call_started_at"):
        upsert_calls(engine, calls_frame(rows), batch_rows=40, parallel=2)
    stored = set(table(engine)["ghl_id"])
    assert "m230" not in stored and 0 < len(stored) < 250
    # Each batch (7 of 35-36 consecutive rows) is its own transaction: stored whole or not at all.
    for first, last in itertools.pairwise(np.linspace(0, 250, 8).astype(int)):
        batch = {f"m{i:03d}" for i in range(first, last)}
        assert batch <= stored or not batch & stored
    written = len(stored)

    rows[230]["call_started_at"] = T0
    counts = upsert_calls(engine, calls_frame(rows), batch_rows=40, parallel=2)
    assert counts == UpsertCounts(new=250 - written, updated=0, unchanged=written)
    assert table(engine)["ghl_id"].tolist() == [f"m{i:03d}" for i in range(250)]


def test_empty_frame_is_a_no_op(engine):
    assert upsert_calls(engine, calls_frame([])) == UpsertCounts(0, 0, 0)


def test_rows_without_ghl_id_are_refused(engine):
    with pytest.raises(ValueError, match="ghl_id"):
        upsert_calls(engine, calls_frame([call_row(None)]))


def test_two_concurrent_upserts_of_overlapping_calls_end_with_the_newest_versions(engine):
    # Two syncs (e.g. a dashboard sync and a scheduled partition) write 0..599 and 300..899 at once;
    # the overlap carries a newer version in the second. Lock order is ghl_id order in both.
    ids_a = [f"m{i:04d}" for i in range(600)]
    ids_b = [f"m{i:04d}" for i in range(300, 900)]
    newer = T0 + timedelta(minutes=10)
    frame_a = calls_frame([call_row(i, status="completed") for i in ids_a])
    frame_b = calls_frame([call_row(i, updated=newer, status="voicemail") for i in ids_b])
    results: dict[str, UpsertCounts] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def run(name, frame):
        try:
            barrier.wait()
            for _ in range(3):  # repeat to give interleavings a chance
                results[name] = upsert_calls(engine, frame, batch_rows=100)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [
        threading.Thread(target=run, args=("a", frame_a)),
        threading.Thread(target=run, args=("b", frame_b)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)

    assert not errors
    stored = table(engine).set_index("ghl_id")
    assert len(stored) == 900 and stored.index.is_unique
    assert (stored.loc[ids_b, "call_status"] == "voicemail").all()
    assert (stored.loc[[i for i in ids_a if i not in set(ids_b)], "call_status"] == "completed").all()


def test_copy_text_escapes_and_nulls():
    frame = calls_frame([call_row("a\tb", lead_name="x\\y\nz", duration_seconds=None, ghl_updated_at=None)])
    line = copy_text(frame)
    assert line.endswith("\n") and line.count("\n") == 1
    fields = line[:-1].split("\t")
    assert fields[0] == "a\\tb"
    assert "x\\\\y\\nz" in fields
    assert fields.count("\\N") >= 3  # ghl_user_id, agent_name, duration, ghl_updated_at


def _rejects(engine):
    with engine.connect() as conn:
        return pd.read_sql(sa.text("SELECT * FROM all_calls_rejects ORDER BY id"), conn)


def test_rejects_are_stored_once_per_record_version_and_rule(engine):
    rejects = pd.DataFrame(
        [
            {
                "ghl_id": "m1",
                "project_name": "Acme",
                "ghl_location_id": "loc1",
                "rule": "direction:in_set",
                "detail": "direction='up'",
                "raw": {"id": "m1", "direction": "up"},
            },
            {
                "ghl_id": None,
                "project_name": "Acme",
                "ghl_location_id": "loc1",
                "rule": "ghl_id:not_nullable",
                "detail": "ghl_id=None",
                "raw": {"direction": "inbound"},
            },
        ]
    )

    assert insert_rejects(engine, rejects) == 2
    assert insert_rejects(engine, rejects) == 0  # a re-sync of the same bad records
    newer = rejects.iloc[[0]].copy()
    newer.at[0, "raw"] = {"id": "m1", "direction": "up", "dateUpdated": "2025-03-02T00:00:00Z"}
    assert insert_rejects(engine, newer) == 1  # a new version of it is kept too

    stored = _rejects(engine)
    assert len(stored) == 3
    assert stored.loc[0, "raw"] == {"id": "m1", "direction": "up"}
    assert stored["rejected_at"].notna().all()
    assert pd.isna(stored.loc[1, "ghl_id"])
