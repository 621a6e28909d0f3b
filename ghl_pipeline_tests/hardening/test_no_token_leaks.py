"""No GHL token appears anywhere the system writes (CONTRACT §2, issue 6).

Runs the demo, a sync with the simulator's faults on, a sync that fails on a revoked token and a
gateway launch, then searches stdout/stderr, Python log records, every file under DAGSTER_HOME, every
run's config, tags and event log, and every table but ``projects`` for each project's token.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
import warnings
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import httpx
import pytest
import sqlalchemy as sa

from ghl_pipeline import cli, demo
from ghl_pipeline.definitions import defs
from ghl_pipeline.defs.resources import GHLResource, WarehouseResource
from ghl_pipeline.ghl.client import GHLClient
from ghl_pipeline.ghl.ratelimit import InMemoryRateLimiter
from ghl_pipeline.ghl.simulator import Faults, GHLSimulator, ManualClock, SimLocation
from ghl_pipeline.warehouse.projects import add_project

pytestmark = pytest.mark.slow


def leak_token() -> str:
    return f"pit-LEAKCHECK-{uuid.uuid4()}"


# ------------------------------------------------------------------------------------------------ scanner


def needles(tokens: Iterable[str]) -> list[bytes]:
    """What to look for: each token, and its random part alone (catches a truncated or re-prefixed token)."""
    out = []
    for token in tokens:
        out.append(token.encode())
        out.append(token.rsplit("-LEAKCHECK-", 1)[-1].encode())
    return out


def find_leaks(sources: Mapping[str, str | bytes], tokens: Iterable[str]) -> list[str]:
    """``"where: token"`` for every source that holds a token (text compared as UTF-8 bytes)."""
    wanted = needles(tokens)
    found = []
    for where, content in sources.items():
        data = content.encode("utf-8", "backslashreplace") if isinstance(content, str) else content
        found += [f"{where}: {needle.decode()}" for needle in wanted if needle in data]
    return found


def files_under(root: Path) -> Iterator[tuple[str, bytes]]:
    """Every file below ``root`` (SQLite event logs and their WAL, compute logs, ...), as bytes."""
    for path in sorted(root.rglob("*")):
        if path.is_file():
            yield str(path), path.read_bytes()


def dagster_sources(instance: dg.DagsterInstance) -> dict[str, str]:
    """Every run's config, tags and record, and every event of its log (metadata included)."""
    sources: dict[str, str] = {}
    for record in instance.get_run_records():
        run = record.dagster_run
        sources[f"run {run.run_id} config"] = repr(run.run_config)
        sources[f"run {run.run_id} tags"] = repr(dict(run.tags))
        sources[f"run {run.run_id} record"] = dg.serialize_value(run)
        for n, entry in enumerate(instance.all_logs(run.run_id)):
            sources[f"run {run.run_id} event {n}"] = dg.serialize_value(entry) + "\n" + str(entry)
    return sources


def table_sources(engine: sa.Engine) -> dict[str, str]:
    """Every row of every table but ``projects`` (where the tokens belong), as text."""
    sources: dict[str, str] = {}
    with engine.connect() as conn:
        tables = conn.execute(
            sa.text(
                "SELECT table_schema, table_name FROM information_schema.tables "
                "WHERE table_schema NOT IN ('pg_catalog', 'information_schema') AND table_type = 'BASE TABLE'"
            )
        ).all()
        for schema, table in tables:
            if (schema, table) == ("public", "projects"):
                continue
            name = f'"{schema}"."{table}"'
            rows = conn.execute(sa.text(f"SELECT t::text FROM {name} AS t")).scalars().all()  # noqa: S608
            sources[f"table {schema}.{table}"] = "\n".join(rows)
    assert any(k.endswith(".all_calls") for k in sources) and any(
        k.endswith("all_calls_rejects") for k in sources
    )
    return sources


def log_sources(records: Iterable[logging.LogRecord]) -> dict[str, str]:
    out = {}
    for n, record in enumerate(records):
        text = [record.getMessage(), repr(record.args), record.exc_text or "", repr(record.__dict__)]
        out[f"log {n} {record.name}"] = "\n".join(text)
    return out


def test_the_scanner_finds_a_planted_token(tmp_path):
    token = leak_token()
    planted = tmp_path / "home" / "storage" / "run" / "compute_logs" / "x.err"
    planted.parent.mkdir(parents=True)
    planted.write_bytes(b"\x00sqlite junk " + f"Authorization: Bearer {token}".encode() + b" more")
    assert find_leaks(dict(files_under(tmp_path / "home")), [token]) == [
        f"{planted}: {token}",
        f"{planted}: {token.rsplit('-LEAKCHECK-', 1)[-1]}",
    ]
    assert find_leaks({"stderr": f"oops {token[:-3]}"}, [token]) == []  # a mangled token has no full match
    assert find_leaks({"log": repr({"h": token})}, [token])
    assert find_leaks({"clean": "nothing here"}, [token]) == []


# ---------------------------------------------------------------------------------------------- the runs


@pytest.fixture
def leak_env(db_url, tmp_path, monkeypatch):
    """DATABASE_URL at the test database, a fresh DAGSTER_HOME, and env the demo changes restored after."""
    home = tmp_path / "dagster_home"
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("GHL_API_BASE_URL", "http://127.0.0.1:9")  # the demo overwrites it; restored after
    return home


def _demo_tokens(monkeypatch) -> list[str]:
    """Give the demo's simulator distinctive tokens (and a smaller busy project, to keep this fast)."""
    sim = GHLSimulator.demo(busy_calls_per_day=150)
    tokens = []
    for location in sim.locations:
        token = leak_token()
        tokens.append(token)
        sim.add_location(dataclasses.replace(location, token=token))

    class _Demo:
        @staticmethod
        def demo(**_kwargs):
            return sim

    monkeypatch.setattr(demo, "GHLSimulator", _Demo)
    return tokens


def _job(instance, resources, **config):
    return defs.resolve_job_def("sync_ghl_calls").execute_in_process(
        run_config={"ops": {"sync_calls": {"config": config}}},
        instance=instance,
        resources=resources,
        raise_on_error=False,
    )


def _gateway_launch() -> list[str]:
    """A dashboard launch through the gateway (fake Dagster behind it); returns what it answered/sent."""
    from ghl_pipeline.gateway import create_app
    from ghl_pipeline_tests.gateway.conftest import FakeDagster, bearer, make_settings, make_token

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient

    fake = FakeDagster()
    app = create_app(make_settings(), transport=httpx.ASGITransport(app=fake.app()))
    day = datetime.now(UTC).date().isoformat()
    with TestClient(app, raise_server_exceptions=False) as client:
        answer = client.post(
            "/sync",
            json={"dateFrom": day, "dateTo": day, "projectName": "Leak Faulty"},
            headers=bearer(make_token()),
        )
        assert answer.status_code in (200, 201, 202), answer.text
        status = client.get(f"/sync/{answer.json()['runId']}", headers=bearer(make_token()))
    assert fake.launches, "the gateway launched nothing"
    return [answer.text, status.text, repr(fake.launches)]


def test_no_token_appears_anywhere(leak_env, db_url, engine, monkeypatch, capfd, caplog):
    caplog.set_level(logging.DEBUG)
    home = leak_env

    # 1. The demo, end to end (embedded GHL simulator over HTTP, the real job, the real CLI).
    demo_tokens = _demo_tokens(monkeypatch)
    assert cli.main(["demo", "--days", "2"]) == 0

    # 2. A sync with faults on, and 3. a sync that fails on a revoked token; both on the same instance.
    today = datetime.now(UTC).date()
    faulty = SimLocation(
        location_id="leakFaultyLoc0000001",
        token=leak_token(),
        name="Leak Faulty",
        timezone="America/Chicago",
        calls_per_day=80,
        start_date=today - timedelta(days=5),
        contacts=60,
    )
    revoked = dataclasses.replace(
        faulty, location_id="leakRevokedLoc000002", token=leak_token(), name="Leak Revoked"
    )
    clock = ManualClock(datetime.now(UTC))
    sim = GHLSimulator(
        [faulty, revoked],
        faults=Faults(server_error_rate=0.2, rate_limit_burst_rate=0.05, malformed_rate=0.1),
        seed=11,
        clock=clock.time,
        sleep=clock.sleep,
    )
    for location in (faulty, revoked):
        add_project(
            engine,
            name=location.name,
            location_id=location.location_id,
            api_key=location.token,
            timezone=location.timezone,
        )
    # Retries and 429 pauses cost no wall time: the client and the limiter sleep on the manual clock.
    monkeypatch.setitem(GHLClient.__init__.__kwdefaults__, "sleep", clock.sleep)
    resources = {
        "ghl": dg.ResourceDefinition.hardcoded_resource(
            GHLResource.with_transport(
                sim.transport(),
                limiter=InMemoryRateLimiter(clock=clock.time, sleep=clock.sleep),
                max_attempts=10,
            )
        ),
        "warehouse": WarehouseResource(database_url=db_url),
    }
    instance = dg.DagsterInstance.get()  # the demo's instance (DAGSTER_HOME)
    first = (today - timedelta(days=2)).isoformat()
    ok = _job(instance, resources, date_from=first, date_to=today.isoformat(), project_name=faulty.name)
    assert ok.success
    tags = instance.get_run_by_id(ok.run_id).tags
    assert int(tags["ghl/new_records"]) > 0 and int(tags["ghl/rejected_records"]) > 0  # faults really hit

    sim.revoke_token(revoked.location_id)
    failed = _job(instance, resources, date_from=first, date_to=today.isoformat(), project_name=revoked.name)
    assert not failed.success
    # A failing CLI sync too (GHL over real HTTP): its one-line reason goes to stderr.
    server = sim.serve()
    try:
        monkeypatch.setenv("GHL_API_BASE_URL", server.url)
        assert cli.main(["sync", "--from", first, "--to", first, "--project", revoked.name]) == 1
    finally:
        server.stop()

    # 4. A gateway launch.
    gateway_said = _gateway_launch()

    tokens = [*demo_tokens, faulty.token, revoked.token]
    out, err = capfd.readouterr()
    assert "Synced" in out  # the captures are the real thing
    sources: dict[str, str | bytes] = {"stdout": out, "stderr": err}
    sources.update(log_sources(caplog.records))
    sources.update(files_under(home))
    sources.update(dagster_sources(instance))
    sources.update(table_sources(engine))
    sources.update({f"gateway {n}": text for n, text in enumerate(gateway_said)})
    assert len(instance.get_run_records()) >= 6  # 3 demo syncs, the faulty, the revoked, the CLI's
    assert any("compute_logs" in k or k.endswith(".db") for k in sources)  # the instance's files were read

    assert "ghl-pipeline sync: " in err and revoked.name in err  # the revoked sync said why
    assert find_leaks(sources, tokens) == []
    # And the tokens really are where they belong, so the search above was looking for the right thing.
    with engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT t::text FROM projects t")).scalars().all()
    assert len(find_leaks({"projects": "\n".join(stored)}, tokens)) == 2 * len(tokens)
