"""``ghl-pipeline`` as an operator uses it: exit codes, one-line reasons, tables and JSON."""

import json
from datetime import timedelta

import pytest
import sqlalchemy as sa

from ghl_pipeline import cli
from ghl_pipeline.ghl.simulator import GHLSimulator
from ghl_pipeline.warehouse.projects import add_project


@pytest.fixture
def operator_env(db_url, tmp_path, monkeypatch):
    """What an operator's shell holds: DATABASE_URL, a Dagster home, GHL (the simulator on loopback)."""
    simulator = GHLSimulator.demo(busy_calls_per_day=200)
    server = simulator.serve()
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    monkeypatch.setenv("GHL_API_BASE_URL", server.url)
    engine = sa.create_engine(db_url, poolclass=sa.NullPool)
    acme = simulator.locations[0]
    add_project(
        engine, name=acme.name, location_id=acme.location_id, api_key=acme.token, timezone=acme.timezone
    )
    yield simulator, engine
    server.stop()
    engine.dispose()


def test_sync_json_then_table(operator_env, capsys):
    simulator, engine = operator_env
    day = (cli.local_today("America/Chicago") - timedelta(days=1)).isoformat()
    assert cli.main(["sync", "--from", day, "--to", day, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    with engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT count(*) FROM all_calls")).scalar_one()
    assert summary["new_records"] == stored > 0
    assert set(summary) == {"new_records", "updated_records", "rejected_records", "projects"}
    assert summary["projects"]["Acme Roofing"]["new_records"] == stored

    assert cli.main(["sync", "--from", day, "--to", day, "--project", "Acme Roofing"]) == 0
    out = capsys.readouterr().out
    assert "Acme Roofing" in out and "Synced 0 new call records" in out


@pytest.mark.parametrize(
    ("argv", "reason"),
    [
        (["sync", "--from", "2025-12-02", "--to", "2025-12-01"], "date_to: must not be before date_from"),
        (["sync", "--from", "soon", "--to", "2025-12-01"], "date_from:"),
        (
            ["sync", "--from", "2025-12-01", "--to", "2025-12-01", "--project", "Nobody"],
            "'Nobody' is not an active project",
        ),
        (["backfill", "--from", "2025-12-02", "--to", "2025-12-01"], "--to: must not be before --from"),
        (
            ["backfill", "--from", "2020-01-01", "--to", "2020-01-02"],
            "--from: 2020-01-01 is before the first partition",
        ),
        (
            ["backfill", "--from", "2025-12-01", "--to", "2025-12-02", "--project", "Nobody"],
            "--project: 'Nobody'",
        ),
    ],
)
def test_failures_exit_1_with_one_line_reason(operator_env, capsys, argv, reason):
    simulator, engine = operator_env
    assert cli.main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) >= 1 and reason in err[-1]
    assert err[-1].startswith(f"ghl-pipeline {argv[0]}: ")
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM all_calls")).scalar_one() == 0
    assert simulator.requests == []


def test_status_lists_projects(operator_env, capsys):
    assert cli.main(["status", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["project_name"] == "Acme Roofing" and row["calls"] == 0 and row["active"] is True


def test_db_upgrade_refuses_duplicates_naming_them(empty_db_url, monkeypatch, capsys):
    engine = sa.create_engine(empty_db_url, poolclass=sa.NullPool)
    with engine.begin() as conn:  # the old feed's table: no unique ghl_id, a duplicate in it
        conn.execute(
            sa.text("CREATE TABLE all_calls (id serial primary key, ghl_id text, project_name text)")
        )
        conn.execute(
            sa.text(
                "INSERT INTO all_calls (ghl_id, project_name) VALUES ('dup-1','A'),('dup-1','A'),('ok-2','A')"
            )
        )
    monkeypatch.setenv("DATABASE_URL", empty_db_url)
    assert cli.main(["db", "upgrade"]) == 1
    assert "dup-1" in capsys.readouterr().err
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM all_calls")).scalar_one() == 3
    engine.dispose()


def test_help_describes_every_command(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for command in ("demo", "sync", "backfill", "db", "simulator", "gateway", "status"):
        assert command in out
