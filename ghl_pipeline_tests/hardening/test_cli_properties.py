"""Property tests: bad ``ghl-pipeline sync``/``backfill`` arguments exit non-zero with one line naming
the option (or field), and change nothing: no table rows, no Dagster runs, no GHL requests."""

from __future__ import annotations

from datetime import date, timedelta

import dagster as dg
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from ghl_pipeline import cli
from ghl_pipeline.ghl.simulator import GHLSimulator
from ghl_pipeline.warehouse.projects import add_project
from ghl_pipeline.windows import SyncConfigError, parse_sync_request
from ghl_pipeline_tests.defs.conftest import table_snapshot

CLI_SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
NAMES = {
    "sync": ("date_from", "date_to", "project_name", "--from", "--to", "--project"),
    "backfill": ("--from", "--to", "--project", "--workers"),
}

argv_text = st.one_of(
    st.text(max_size=30).filter(lambda s: not s.startswith("-")),
    st.text(alphabet=st.characters(categories=["Cc", "Cs", "Zl", "Nd"]), max_size=8).filter(
        lambda s: not s.startswith("-")
    ),
    st.dates(min_value=date(1, 1, 1), max_value=date(9999, 12, 31)).map(date.isoformat),
    st.dates(min_value=date(2025, 1, 1), max_value=date(2027, 1, 1)).map(date.isoformat),
    st.sampled_from(
        ["2025-02-30", "20251201", "2025-W48-1", "9999-12-31", "0001-01-01", "x" * 10_000, "\ud800"]
    ),
)


@pytest.fixture
def operator_env(db_url, tmp_path, monkeypatch):
    """DATABASE_URL at a test database, a fresh DAGSTER_HOME, GHL = the simulator on loopback."""
    simulator = GHLSimulator.demo(busy_calls_per_day=50)
    server = simulator.serve()
    home = tmp_path / "dagster_home"
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("GHL_API_BASE_URL", server.url)
    engine = sa.create_engine(db_url, poolclass=sa.NullPool)
    acme = simulator.locations[0]
    add_project(
        engine, name=acme.name, location_id=acme.location_id, api_key=acme.token, timezone=acme.timezone
    )
    yield simulator, engine, home
    server.stop()
    engine.dispose()


def _assert_failed_cleanly(command: str, code: int, err: str) -> None:
    lines = err.strip().splitlines()
    assert lines, "a failure must say why"
    if code == 2:  # argparse: usage line, then "prog command: error: ..."
        assert "error:" in lines[-1]
        return
    assert code == 1, err
    last = lines[-1]
    assert last.startswith(f"ghl-pipeline {command}: "), last
    assert any(name in last for name in NAMES[command]), last


def _assert_nothing_written(simulator, engine, home, before) -> None:
    assert table_snapshot(engine) == before
    assert simulator.requests == []
    if home.exists():
        with dg.DagsterInstance.from_config(str(home)) as instance:
            assert instance.get_runs_count() == 0


def _sync_would_run(args: list[str]) -> bool:
    """True when these sync arguments are fine as far as the fast check goes (the job would start)."""
    try:
        namespace = cli.build_parser().parse_args(["sync", *args])
        parse_sync_request(namespace.date_from, namespace.date_to, namespace.project)
    except (SystemExit, SyncConfigError):
        return False
    return True


def _backfill_would_run(args: list[str]) -> bool:
    try:
        namespace = cli.build_parser().parse_args(["backfill", *args])
        first, last = date.fromisoformat(namespace.date_from), date.fromisoformat(namespace.date_to)
    except (SystemExit, ValueError):
        return False
    return (
        first <= last
        and (last - first).days < 400
        and first >= date(2025, 11, 1)
        and last <= date.today()
        and 1 <= namespace.workers <= 16
    )


@given(date_from=argv_text, date_to=argv_text, project=st.one_of(st.none(), argv_text))
@CLI_SETTINGS
def test_bad_sync_arguments(operator_env, capsys, date_from, date_to, project):
    simulator, engine, home = operator_env
    args = ["--from", date_from, "--to", date_to] + (["--project", project] if project is not None else [])
    assume(not _sync_would_run(args))
    before = table_snapshot(engine)
    capsys.readouterr()
    try:
        code = cli.main(["sync", *args])
    except SystemExit as exc:
        code = exc.code
    _assert_failed_cleanly("sync", code, capsys.readouterr().err)
    _assert_nothing_written(simulator, engine, home, before)


@given(
    date_from=argv_text,
    date_to=argv_text,
    project=st.one_of(st.none(), argv_text),
    workers=st.one_of(st.none(), st.integers(min_value=-3, max_value=40).map(str), argv_text),
)
@CLI_SETTINGS
def test_bad_backfill_arguments(operator_env, capsys, date_from, date_to, project, workers):
    simulator, engine, home = operator_env
    args = ["--from", date_from, "--to", date_to]
    args += ["--project", project] if project is not None else []
    args += ["--workers", workers] if workers is not None else []
    assume(not _backfill_would_run(args))
    before = table_snapshot(engine)
    capsys.readouterr()
    try:
        code = cli.main(["backfill", *args])
    except SystemExit as exc:
        code = exc.code
    _assert_failed_cleanly("backfill", code, capsys.readouterr().err)
    _assert_nothing_written(simulator, engine, home, before)


@given(
    argv=st.lists(
        st.one_of(
            st.sampled_from(["--from", "--to", "--project", "--json", "--force", "--workers", "--"]),
            argv_text,
        ),
        max_size=7,
    ),
    command=st.sampled_from(["sync", "backfill"]),
)
@CLI_SETTINGS
def test_junk_arguments(operator_env, capsys, argv, command):
    simulator, engine, home = operator_env
    assume(not (_sync_would_run(argv) if command == "sync" else _backfill_would_run(argv)))
    before = table_snapshot(engine)
    capsys.readouterr()
    try:
        code = cli.main([command, *argv])
    except SystemExit as exc:
        code = exc.code
    _assert_failed_cleanly(command, code, capsys.readouterr().err)
    _assert_nothing_written(simulator, engine, home, before)


def _yesterday() -> str:
    return (cli.local_today("America/Chicago") - timedelta(days=1)).isoformat()


@pytest.mark.parametrize(
    "argv",
    [
        ["sync", "--from", "{day}", "--to", "{day}", "--project", "Nobody Inc"],
        ["sync", "--from", "{day}", "--to", "{day}", "--project", "\ud800"],
        ["sync", "--from", "{day}", "--to", "{day}", "--project", "Acme\u2028Roofing"],
        [
            "sync",
            "--from",
            "{day}",
            "--to",
            "{day}",
            "--project",
            "Globex Solar",
        ],  # exists in GHL, not a project
        ["backfill", "--from", "{day}", "--to", "{day}", "--project", "Nobody Inc"],
        ["backfill", "--from", "{day}", "--to", "{day}", "--project", "\ud800"],
    ],
    ids=[
        "sync-unknown",
        "sync-surrogate",
        "sync-line-separator",
        "sync-not-a-project",
        "backfill-unknown",
        "backfill-surrogate",
    ],
)
def test_unknown_projects_fail_before_any_request_or_write(operator_env, capsys, argv):
    simulator, engine, home = operator_env
    argv = [a.replace("{day}", _yesterday()) for a in argv]
    before = table_snapshot(engine)
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    _assert_failed_cleanly(argv[0], 1, err)
    assert "not an active project" in err.strip().splitlines()[-1]
    assert table_snapshot(engine) == before
    assert simulator.requests == []
