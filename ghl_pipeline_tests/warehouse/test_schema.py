"""Creating and upgrading the schema in place, keeping every row of an older feed."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from ghl_pipeline.warehouse.schema import DuplicateCallsError, SchemaUpgradeError, upgrade
from ghl_pipeline.warehouse.upsert import UpsertCounts, upsert_calls
from ghl_pipeline_tests.warehouse.helpers import call_row, calls_frame

# What an older feed left behind: its own columns, a serial id, no unique ghl_id, no call_date.
_OLD_LAYOUT = """
CREATE TABLE projects (project_name text, ghl_location_id text, ghl_api_key text);
INSERT INTO projects VALUES ('Acme', 'loc1', 'tok-1'), ('Beta', 'loc2', 'tok-2');
CREATE TABLE all_calls (
    id serial PRIMARY KEY,
    ghl_id text,
    project_name text,
    ghl_location_id text,
    phone text,
    direction text,
    call_status text,
    duration_seconds integer,
    call_started_at timestamptz,
    notes text
);
INSERT INTO all_calls (ghl_id, project_name, ghl_location_id, phone, direction, call_status,
                       duration_seconds, call_started_at, notes)
VALUES ('m1', 'Acme', 'loc1', '512-555-0143', 'inbound', 'completed', 30, '2025-03-01T15:00:00Z', 'vip'),
       ('m2', 'Acme', 'loc1', NULL, 'outbound', 'no-answer', NULL, '2025-03-01T16:00:00Z', NULL),
       (NULL, 'Acme', 'loc1', NULL, 'outbound', 'busy', NULL, '2025-03-01T17:00:00Z', 'manual row');
"""


def _snapshot(engine, table):
    with engine.connect() as conn:
        cols = [
            r[0]
            for r in conn.execute(
                sa.text(
                    "SELECT column_name FROM information_schema.columns WHERE table_name = :t ORDER BY 1"
                ),
                {"t": table},
            )
        ]
        rows = conn.execute(sa.text(f"SELECT * FROM {table} ORDER BY 1")).all()
        indexes = sorted(
            r[0]
            for r in conn.execute(
                sa.text("SELECT indexname FROM pg_indexes WHERE tablename = :t"), {"t": table}
            )
        )
    return cols, rows, indexes


def _tables(engine):
    with engine.connect() as conn:
        return sorted(
            r[0] for r in conn.execute(sa.text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))
        )


def test_upgrade_creates_every_table_and_is_idempotent(empty_engine):
    report = upgrade(empty_engine)
    tables = {"projects", "all_calls", "all_calls_rejects", "ghl_contacts"}
    bookkeeping = {"ghl_sync_state", "ghl_rate_limit", "ghl_request_log"}
    assert set(report.created_tables) == tables | bookkeeping
    assert _tables(empty_engine) == sorted(tables | bookkeeping)

    again = upgrade(empty_engine)
    assert not again.changed


def test_created_all_calls_has_the_contract_columns_and_few_indexes(engine):
    cols, _, indexes = _snapshot(engine, "all_calls")
    assert set(cols) == {
        "ghl_id", "project_name", "ghl_location_id", "ghl_conversation_id", "ghl_contact_id", "ghl_user_id",
        "lead_name", "phone_number", "direction", "from_number", "to_number", "call_status", "duration_seconds", "agent_name",
        "message_type", "call_started_at", "call_date", "ghl_updated_at", "synced_at",
    }  # fmt: skip
    # The key and the dashboard's (day, project) filter; every extra index slows the upsert.
    assert indexes == ["all_calls_date_project_idx", "all_calls_pkey"]


@pytest.mark.parametrize(
    "where",
    [
        "call_date = DATE '2025-03-01'",  # "Today", every project
        "project_name = 'Acme' AND call_date BETWEEN DATE '2025-03-01' AND DATE '2025-03-07'",  # one project
    ],
)
def test_the_dashboard_filters_can_use_the_date_index(engine, where):
    with engine.begin() as conn:
        conn.exec_driver_sql("SET LOCAL enable_seqscan = off")  # a tiny table: ask whether the index fits
        plan = "\n".join(r[0] for r in conn.exec_driver_sql(f"EXPLAIN SELECT * FROM all_calls WHERE {where}"))
    assert "all_calls_date_project_idx" in plan


def _fillfactor(engine):
    with engine.connect() as conn:
        return conn.execute(
            sa.text(
                "SELECT (SELECT option_value FROM pg_options_to_table(reloptions) WHERE option_name = 'fillfactor')"
                " FROM pg_class WHERE relname = 'all_calls'"
            )
        ).scalar()


def test_all_calls_leaves_room_for_in_place_updates(engine, empty_engine):
    assert _fillfactor(engine) == "70"  # created so
    with empty_engine.begin() as conn:  # an older feed's table without the setting: given it
        conn.exec_driver_sql(_OLD_LAYOUT)
    report = upgrade(empty_engine)
    assert report.storage_changes == ("all_calls fillfactor 100 -> 70",)
    assert _fillfactor(empty_engine) == "70"
    assert not upgrade(empty_engine).changed


def test_a_fillfactor_someone_chose_is_left_alone(engine):
    with engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE all_calls SET (fillfactor = 80)")
    report = upgrade(engine)
    assert not report.changed
    assert _fillfactor(engine) == "80"
    assert any("fillfactor 80" in n for n in report.notes)


def test_upgrade_replaces_the_index_an_earlier_version_created(engine):
    # What the previous release left: the (project_name, call_date) index instead of (call_date, ...).
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP INDEX all_calls_date_project_idx")
        conn.exec_driver_sql("CREATE INDEX all_calls_project_date_idx ON all_calls (project_name, call_date)")
        conn.exec_driver_sql("ALTER TABLE all_calls SET (fillfactor = 90)")
    upsert_calls(engine, calls_frame([call_row("m1"), call_row("m2")]))
    _, before, _ = _snapshot(engine, "all_calls")

    report = upgrade(engine)

    assert report.dropped_indexes == ("all_calls_project_date_idx",)
    assert report.storage_changes == ("all_calls fillfactor 90 -> 70",)
    assert report.created_indexes == ("all_calls_date_project_idx",)
    assert any("all_calls_project_date_idx" in n for n in report.notes)
    _, after, indexes = _snapshot(engine, "all_calls")
    assert after == before
    assert indexes == ["all_calls_date_project_idx", "all_calls_pkey"]
    assert not upgrade(engine).changed


def test_upgrade_of_an_older_all_calls_keeps_every_row(empty_engine):
    with empty_engine.begin() as conn:
        conn.exec_driver_sql(_OLD_LAYOUT)
    _, old_rows, _ = _snapshot(empty_engine, "all_calls")

    report = upgrade(empty_engine)

    assert "all_calls.call_date" in report.added_columns
    assert "all_calls_ghl_id_key" in report.created_indexes
    cols, rows, indexes = _snapshot(empty_engine, "all_calls")
    assert {"notes", "phone", "id", "call_date", "synced_at", "message_type"} <= set(cols)
    assert len(rows) == 3
    with empty_engine.connect() as conn:
        kept = conn.execute(sa.text("SELECT id, ghl_id, phone, notes FROM all_calls ORDER BY id")).all()
        projects = conn.execute(sa.text("SELECT project_name, active FROM projects ORDER BY 1")).all()
    assert kept == [(r[0], r[1], r[4], r[9]) for r in old_rows]
    assert projects == [("Acme", True), ("Beta", True)]
    assert "all_calls_ghl_id_key" in indexes
    assert any("without ghl_id" in n for n in report.notes)

    # The upgraded table takes upserts: m1 is replaced (its old row has no ghl_updated_at), m9 is new.
    counts = upsert_calls(empty_engine, calls_frame([call_row("m1", project_name="Acme"), call_row("m9")]))
    assert counts == UpsertCounts(new=1, updated=1, unchanged=0)
    with empty_engine.connect() as conn:
        m1 = conn.execute(
            sa.text("SELECT notes, phone, phone_number FROM all_calls WHERE ghl_id = 'm1'")
        ).one()
        total = conn.execute(sa.text("SELECT count(*) FROM all_calls")).scalar()
    assert m1 == ("vip", "512-555-0143", "+15125550143")  # the old feed's own columns survive
    assert total == 4
    assert not upgrade(empty_engine).changed


def test_duplicates_block_the_upgrade_with_a_message_naming_them_and_nothing_changes(empty_engine):
    with empty_engine.begin() as conn:
        conn.exec_driver_sql(_OLD_LAYOUT)
        conn.exec_driver_sql(
            "INSERT INTO all_calls (ghl_id, project_name) VALUES ('m1', 'Acme'), ('m1', 'Acme'), ('m2', 'Acme')"
        )
    before = (
        _tables(empty_engine),
        _snapshot(empty_engine, "all_calls"),
        _snapshot(empty_engine, "projects"),
    )

    with pytest.raises(DuplicateCallsError) as info:
        upgrade(empty_engine)

    message = str(info.value)
    assert "'m1' x3" in message and "'m2' x2" in message and "Nothing was changed" in message
    assert info.value.duplicates == [("m1", 3), ("m2", 2)] and info.value.total == 2
    after = (_tables(empty_engine), _snapshot(empty_engine, "all_calls"), _snapshot(empty_engine, "projects"))
    assert after == before


def test_many_duplicates_are_listed_truncated(empty_engine):
    with empty_engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE all_calls (ghl_id text, project_name text)")
        conn.exec_driver_sql(
            "INSERT INTO all_calls SELECT 'dup' || mod(g, 50), 'Acme' FROM generate_series(1, 100) g"
        )

    with pytest.raises(DuplicateCallsError, match=r"50 ghl_id value\(s\).*and 30 more") as info:
        upgrade(empty_engine)
    assert len(info.value.duplicates) == 20


def test_duplicate_project_names_refuse_too(empty_engine):
    with empty_engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE projects (project_name text)")
        conn.exec_driver_sql("INSERT INTO projects VALUES ('Acme'), ('Acme')")

    with pytest.raises(SchemaUpgradeError, match="'Acme' x2"):
        upgrade(empty_engine)
    assert _tables(empty_engine) == ["projects"]


def test_upgrade_adds_from_and_to_numbers_to_a_table_of_the_previous_version_keeping_every_row(empty_engine):
    # all_calls as the pipeline created it before from_number/to_number, with rows in it.
    upgrade(empty_engine)
    with empty_engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE all_calls DROP COLUMN from_number, DROP COLUMN to_number")
        conn.exec_driver_sql(
            "INSERT INTO all_calls (ghl_id, project_name, ghl_location_id, call_status, call_started_at,"
            " call_date) VALUES ('m1', 'Acme', 'loc1', 'completed', '2025-03-01T15:00Z', '2025-03-01'),"
            " ('m2', 'Acme', 'loc1', 'no-answer', '2025-03-01T16:00Z', '2025-03-01')"
        )
    _, before, _ = _snapshot(empty_engine, "all_calls")

    report = upgrade(empty_engine)

    assert report.added_columns == ("all_calls.from_number", "all_calls.to_number")
    with empty_engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT ghl_id, call_status, from_number, to_number FROM all_calls ORDER BY 1")
        ).all()
    assert rows == [("m1", "completed", None, None), ("m2", "no-answer", None, None)]
    assert len(before) == 2
    counts = upsert_calls(empty_engine, calls_frame([call_row("m1", from_number="+15125550100")]))
    assert counts == UpsertCounts(new=0, updated=1, unchanged=0)
    assert not upgrade(empty_engine).changed
