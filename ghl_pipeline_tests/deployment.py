"""The system as deployed: Postgres instance storage, ``dagster-webserver`` and ``dagster-daemon``.

Importable by tests and by benchmarks (no pytest needed)::

    from ghl_pipeline_tests.deployment import deployed_system, embedded_postgres

    with embedded_postgres(workdir / "warehouse_pg") as warehouse_url, \\
         deployed_system(workdir, env={"DATABASE_URL": warehouse_url, "GHL_API_BASE_URL": sim.url}) as system:
        run_id = system.launch_run("health_check")
        assert system.wait_run(run_id) == "SUCCESS"

``deployed_system`` starts, in ``workdir``:

- an embedded Postgres (``pgserver``, data in ``workdir/dagster_pg``) for Dagster's instance storage,
  separate from the warehouse; ``DAGSTER_PG_URL`` is its ``postgresql+psycopg2://`` URL;
- ``DAGSTER_HOME = workdir/dagster_home`` holding a copy of the given ``dagster.yaml`` (the repo's by
  default), exactly as the README's deployment steps say;
- ``dagster-webserver -w workspace.yaml`` on a free loopback port and ``dagster-daemon run -w
  workspace.yaml``, each in its own session (process group), logging to ``workdir/webserver.log`` and
  ``workdir/daemon.log``;

waits until the webserver answers and every required daemon is heartbeating, and yields a
:class:`DeployedSystem`. On exit it SIGTERMs, then SIGKILLs, both process groups and every process
still carrying this ``DAGSTER_HOME`` (orphaned run workers included), so nothing is left behind.
Only processes this harness started are ever signalled.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

REPO = Path(__file__).resolve().parents[1]
LOCATION = "ghl_pipeline"
REPOSITORY = "__repository__"
START_TIMEOUT = 180.0
TERMINAL_RUN_STATUSES = frozenset({"SUCCESS", "FAILURE", "CANCELED"})
TERMINAL_BACKFILL_STATUSES = frozenset(
    {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}
)


class DeploymentError(RuntimeError):
    """The deployed system did not start, or answered GraphQL with an error."""


@dataclass(frozen=True)
class RunProcess:
    """One live run worker: a process a code server spawned to execute a run."""

    pid: int
    ppid: int
    rss: int  # bytes
    cmdline: str


@dataclass(frozen=True)
class Tick:
    """One sensor or schedule tick, as GraphQL reports it."""

    kind: str  # "SENSOR" | "SCHEDULE"
    name: str
    status: str  # STARTED | SKIPPED | SUCCESS | FAILURE
    timestamp: float
    error: str | None = None
    skip_reason: str | None = None


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def embedded_postgres(pgdata: Path, *, fast: bool = True) -> Iterator[str]:
    """An embedded Postgres (``pgserver``) with its data in ``pgdata``; yields a psycopg2 SQLAlchemy URL.

    ``fast`` turns off fsync and synchronous commit (throwaway data). The server is stopped on exit.
    """
    import pgserver
    import sqlalchemy as sa

    pgdata.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(pgdata, cleanup_mode="stop")
    url = server.get_uri().replace("postgresql://", "postgresql+psycopg2://", 1)
    try:
        if fast:
            admin = sa.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
            with admin.connect() as conn:
                for setting in ("fsync = off", "synchronous_commit = off", "full_page_writes = off"):
                    conn.exec_driver_sql(f"ALTER SYSTEM SET {setting}")
                conn.exec_driver_sql("SELECT pg_reload_conf()")
            admin.dispose()
        yield url
    finally:
        server.cleanup()


@dataclass
class DeployedSystem:
    """Handle on a running webserver + daemon; see the module docstring."""

    workdir: Path
    dagster_home: Path
    url: str  # GraphQL endpoint
    env: dict[str, str]
    webserver: subprocess.Popen
    daemon: subprocess.Popen | None
    _client: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=60), repr=False)

    # ------------------------------------------------------------------ GraphQL

    def graphql(self, query: str, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """POST ``query``; returns ``data``. Raises :class:`DeploymentError` on top-level ``errors``."""
        answer = self._client.post(self.url, json={"query": query, "variables": dict(variables or {})})
        answer.raise_for_status()
        body = answer.json()
        if body.get("errors"):
            raise DeploymentError(f"GraphQL errors: {body['errors']}")
        return body["data"]

    @property
    def repository_selector(self) -> dict[str, str]:
        return {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY}

    def launch_run(
        self,
        job: str,
        run_config: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> str:
        """``launchRun`` of ``job``; returns the run id. Raises unless the answer is LaunchRunSuccess."""
        params = {
            "selector": {**self.repository_selector, "jobName": job},
            "runConfigData": dict(run_config or {}),
            "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in (tags or {}).items()]},
        }
        data = self.graphql(_LAUNCH_RUN, {"p": params})["launchRun"]
        if data["__typename"] != "LaunchRunSuccess":
            raise DeploymentError(f"launchRun {job}: {data}")
        return data["run"]["runId"]

    def run(self, run_id: str) -> dict[str, Any]:
        """The run's ``runId status jobName tags startTime endTime creationTime``."""
        data = self.graphql(_RUN, {"id": run_id})["runOrError"]
        if data["__typename"] != "Run":
            raise DeploymentError(f"run {run_id}: {data}")
        return data

    def run_status(self, run_id: str) -> str:
        """The run's status (QUEUED, STARTING, STARTED, SUCCESS, FAILURE, ...)."""
        return self.run(run_id)["status"]

    def run_lifecycle(self, run_id: str) -> dict[str, float]:
        """Epoch seconds of the run's lifecycle events: ``{"RunEnqueuedEvent": t, "RunDequeuedEvent": t,
        "RunStartingEvent": t, "RunStartEvent": t, "RunSuccessEvent": t, ...}`` (first of each type)."""
        data = self.graphql(_RUN_EVENTS, {"id": run_id})["runOrError"]
        if data["__typename"] != "Run":
            raise DeploymentError(f"run {run_id}: {data}")
        out: dict[str, float] = {}
        for event in data["eventConnection"]["events"]:
            name = event["__typename"]
            if name.startswith("Run") and name not in out and event.get("timestamp"):
                out[name] = int(event["timestamp"]) / 1000.0
        return out

    def wait_run(self, run_id: str, timeout: float = 300.0, poll: float = 0.1) -> str:
        """Wait until the run is SUCCESS, FAILURE or CANCELED; returns that status.

        Raises ``TimeoutError`` if it is not terminal after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            status = self.run_status(run_id)
            if status in TERMINAL_RUN_STATUSES:
                return status
            if time.monotonic() > deadline:
                raise TimeoutError(f"run {run_id} still {status} after {timeout:.0f} s")
            time.sleep(poll)

    def add_dynamic_partitions(self, keys: Sequence[str], partitions_def: str = "projects") -> None:
        """``addDynamicPartition`` for each key (existing keys are fine)."""
        for key in keys:
            data = self.graphql(
                _ADD_PARTITION,
                {"key": key, "name": partitions_def, "repo": self.repository_selector},
            )["addDynamicPartition"]
            if data["__typename"] not in ("AddDynamicPartitionSuccess", "DuplicateDynamicPartitionError"):
                raise DeploymentError(f"addDynamicPartition {key!r}: {data}")

    def launch_backfill(
        self,
        ranges: Sequence[tuple[str, str]] | None = None,
        *,
        partition_names: Sequence[str] | None = None,
        asset: str = "all_calls",
        title: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> str:
        """An asset backfill of ``asset`` (``launchPartitionBackfill``); returns the backfill id.

        ``ranges`` are (first, last) partition keys, e.g. ``("2026-09-01|Acme Roofing",
        "2026-11-29|Initech HVAC")``: a rectangle of dates × projects (DAGSTER-NOTES §1, §5). Or give
        ``partition_names``. The daemon's backfill daemon launches the runs (per the asset's policy).
        """
        params: dict[str, Any] = {"title": title or "deployed-system backfill"}
        params["tags"] = [{"key": k, "value": v} for k, v in (tags or {}).items()]
        if ranges is not None:
            selectors = [{"start": start, "end": end} for start, end in ranges]
            partitions = {"range": selectors[0]} if len(selectors) == 1 else {"ranges": selectors}
            params["partitionsByAssets"] = [{"assetKey": {"path": [asset]}, "partitions": partitions}]
        elif partition_names is not None:
            params["assetSelection"] = [{"path": [asset]}]
            params["partitionNames"] = list(partition_names)
        else:
            raise ValueError("give ranges or partition_names")
        data = self.graphql(_LAUNCH_BACKFILL, {"p": params})["launchPartitionBackfill"]
        if data["__typename"] != "LaunchBackfillSuccess":
            raise DeploymentError(f"launchPartitionBackfill: {data}")
        return data["backfillId"]

    def backfill(self, backfill_id: str) -> dict[str, Any]:
        """The backfill's ``id status numPartitions runs { runId status startTime endTime tags }``."""
        data = self.graphql(_BACKFILL, {"id": backfill_id})["partitionBackfillOrError"]
        if data["__typename"] != "PartitionBackfill":
            raise DeploymentError(f"backfill {backfill_id}: {data}")
        return data

    def wait_backfill(self, backfill_id: str, timeout: float = 900.0, poll: float = 1.0) -> dict[str, Any]:
        """Wait until the backfill is terminal and none of its runs is unfinished; returns it."""
        deadline = time.monotonic() + timeout
        while True:
            data = self.backfill(backfill_id)
            if data["status"] in TERMINAL_BACKFILL_STATUSES and all(
                r["status"] in TERMINAL_RUN_STATUSES for r in data["runs"]
            ):
                return data
            if time.monotonic() > deadline:
                raise TimeoutError(f"backfill {backfill_id} still {data['status']} after {timeout:.0f} s")
            time.sleep(poll)

    def runs(self, limit: int = 500) -> list[dict[str, Any]]:
        """Every run of the instance (newest first): ``runId jobName status tags``."""
        data = self.graphql(_RUNS, {"limit": limit})["runsOrError"]
        return data["results"]

    def set_pool_limit(self, pool: str, limit: int) -> None:
        """``setConcurrencyLimit``: the pool's limit at runtime (kept in the instance, over ``default_limit``)."""
        if not self.graphql(_SET_POOL_LIMIT, {"key": pool, "limit": limit})["setConcurrencyLimit"]:
            raise DeploymentError(f"setConcurrencyLimit {pool} {limit} refused")

    def daemon_statuses(self) -> dict[str, dict[str, Any]]:
        """``{daemonType: {healthy, required, lastHeartbeatTime}}`` from ``instance.daemonHealth``."""
        statuses = self.graphql(_DAEMON_HEALTH)["instance"]["daemonHealth"]["allDaemonStatuses"]
        return {s["daemonType"]: s for s in statuses}

    def daemon_healthy(self) -> bool:
        """True when every required daemon reports healthy."""
        statuses = self.daemon_statuses()
        return bool(statuses) and all(s["healthy"] for s in statuses.values() if s["required"])

    def _instigators(self) -> tuple[list[dict], list[dict]]:
        data = self.graphql(_INSTIGATORS, {"repo": self.repository_selector, "limit": 1000})
        sensors = data["sensorsOrError"].get("results")
        schedules = data["schedulesOrError"].get("results")
        if sensors is None or schedules is None:
            raise DeploymentError(f"sensors/schedules: {data}")
        return sensors, schedules

    def sensor_and_schedule_ticks(self) -> list[Tick]:
        """Every recorded tick of every sensor and schedule (up to 1000 each), oldest first."""
        sensors, schedules = self._instigators()
        ticks = []
        for kind, items, state_key in (
            ("SENSOR", sensors, "sensorState"),
            ("SCHEDULE", schedules, "scheduleState"),
        ):
            for item in items:
                for tick in item[state_key]["ticks"]:
                    error = tick["error"]["message"] if tick.get("error") else None
                    ticks.append(
                        Tick(
                            kind,
                            item["name"],
                            tick["status"],
                            tick["timestamp"],
                            error,
                            tick.get("skipReason"),
                        )
                    )
        return sorted(ticks, key=lambda t: t.timestamp)

    def stop_sensors(self, names: Sequence[str] | None = None) -> list[str]:
        """``stopSensor`` for the named (default: every running) sensor; returns the names stopped."""
        sensors, _ = self._instigators()
        stopped = []
        for sensor in sensors:
            if names is not None and sensor["name"] not in names:
                continue
            if sensor["sensorState"]["status"] != "RUNNING":
                continue
            self.graphql(_STOP_SENSOR, {"id": sensor["sensorState"]["id"]})
            stopped.append(sensor["name"])
        return stopped

    def stop_schedules(self, names: Sequence[str] | None = None) -> list[str]:
        """``stopRunningSchedule`` for the named (default: every running) schedule; returns the names."""
        _, schedules = self._instigators()
        stopped = []
        for schedule in schedules:
            if names is not None and schedule["name"] not in names:
                continue
            state = schedule["scheduleState"]
            if state["status"] != "RUNNING":
                continue
            self.graphql(_STOP_SCHEDULE, {"id": state["id"]})
            stopped.append(schedule["name"])
        return stopped

    # ------------------------------------------------------------------ processes

    def _popens(self) -> list[subprocess.Popen]:
        return [p for p in (self.webserver, self.daemon) if p is not None]

    def _roots(self) -> list[psutil.Process]:
        roots = []
        for popen in self._popens():
            with contextlib.suppress(psutil.Error):
                roots.append(psutil.Process(popen.pid))
        return roots

    def own_processes(self) -> list[psutil.Process]:
        """Every live process of this deployment: both trees, plus any orphan carrying our DAGSTER_HOME."""
        found: dict[int, psutil.Process] = {}
        for root in self._roots():
            found[root.pid] = root
            with contextlib.suppress(psutil.Error):
                for child in root.children(recursive=True):
                    found[child.pid] = child
        sessions = {p.pid for p in self._popens()}
        home = str(self.dagster_home)
        for proc in psutil.process_iter(["pid"]):
            if proc.pid in found or proc.pid == os.getpid():
                continue
            with contextlib.suppress(psutil.Error, OSError):
                if os.getsid(proc.pid) in sessions or proc.environ().get("DAGSTER_HOME") == home:
                    found[proc.pid] = proc
        return list(found.values())

    def code_server_pids(self) -> list[int]:
        """Pids of the live code servers (``dagster api grpc`` / ``code-server``) of this deployment."""
        pids = []
        for proc in self.own_processes():
            with contextlib.suppress(psutil.Error):
                if _is_code_server(proc.cmdline()):
                    pids.append(proc.pid)
        return sorted(pids)

    def run_processes(self) -> list[RunProcess]:
        """The live run workers: processes whose parent is one of our code servers and that execute a run
        (``multiprocessing`` spawn children of the gRPC server's ``StartRun``, or ``dagster api
        execute_run``), plus orphaned ones (parent gone, still carrying our DAGSTER_HOME)."""
        procs = self.own_processes()
        code_servers = set()
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                if _is_code_server(proc.cmdline()):
                    code_servers.add(proc.pid)
        workers = []
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                cmdline = proc.cmdline()
                ppid = proc.ppid()
                text = " ".join(cmdline)
                if "resource_tracker" in text:
                    continue
                is_spawn = "spawn_main" in text or "--multiprocessing-fork" in text
                is_execute = "execute_run" in text or "execute_step" in text
                orphan = ppid == 1 or not psutil.pid_exists(ppid)
                if (ppid in code_servers and (is_spawn or is_execute)) or (
                    orphan and (is_spawn or is_execute)
                ):
                    workers.append(RunProcess(proc.pid, ppid, proc.memory_info().rss, text[:200]))
        return sorted(workers, key=lambda w: w.pid)

    def logs(self, lines: int = 60) -> str:
        """The last lines of the webserver's and the daemon's logs."""
        out = []
        for name in ("webserver.log", "daemon.log"):
            path = self.workdir / name
            if path.exists():
                text = path.read_text(errors="replace").splitlines()[-lines:]
                out.append(f"--- {name}\n" + "\n".join(text))
        return "\n".join(out)

    def close(self) -> None:
        """Stop everything this deployment started (see :func:`stop_processes`)."""
        self._client.close()
        stop_processes(self)


def _is_code_server(cmdline: Sequence[str]) -> bool:
    text = " ".join(cmdline)
    return ("api" in cmdline and "grpc" in cmdline) or "code-server" in text


def stop_processes(system: DeployedSystem, *, grace: float = 20.0) -> None:
    """SIGTERM both process groups and every straggler of ``system``; SIGKILL what is left after ``grace``."""
    victims = system.own_processes()
    for popen in system._popens():
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(popen.pid, signal.SIGTERM)
    for proc in victims:
        with contextlib.suppress(psutil.Error):
            proc.terminate()
    _, alive = psutil.wait_procs(victims, timeout=grace)
    stragglers = {p.pid: p for p in alive}
    for proc in system.own_processes():  # anything spawned meanwhile
        stragglers.setdefault(proc.pid, proc)
    for popen in system._popens():
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(popen.pid, signal.SIGKILL)
    for proc in stragglers.values():
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(list(stragglers.values()), timeout=10)
    for popen in system._popens():
        with contextlib.suppress(subprocess.TimeoutExpired):
            popen.wait(timeout=10)


@contextlib.contextmanager
def deployed_system(
    workdir: Path,
    *,
    env: Mapping[str, str],
    dagster_yaml: Path | str = REPO / "dagster.yaml",
    extra_env: Mapping[str, str] | None = None,
    workspace: Path = REPO / "workspace.yaml",
    start_timeout: float = START_TIMEOUT,
    inherit_environ: bool = True,
    stop_instigators: bool = False,
) -> Iterator[DeployedSystem]:
    """Run webserver + daemon on a fresh Postgres-backed instance in ``workdir``; see the module docstring.

    ``env``: what the runs need (``DATABASE_URL`` of the warehouse, ``GHL_API_BASE_URL``, ...), laid
    over ``os.environ`` (unless ``inherit_environ=False``) minus any ``DAGSTER_*``; ``extra_env`` goes
    on top (e.g. variables the yaml reads with ``{env: ...}``). ``dagster_yaml`` is a path or the yaml
    text itself. ``stop_instigators=True`` stops every sensor and schedule over GraphQL *before* the
    daemon starts, so none of them ticks (benchmarks that must control every run).
    """
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    home = workdir / "dagster_home"
    home.mkdir(exist_ok=True)
    if isinstance(dagster_yaml, Path):
        shutil.copy(dagster_yaml, home / "dagster.yaml")
    else:
        (home / "dagster.yaml").write_text(dagster_yaml)

    with embedded_postgres(workdir / "dagster_pg") as dagster_pg_url:
        base = dict(os.environ) if inherit_environ else {"PATH": os.environ.get("PATH", "")}
        full_env = {k: v for k, v in base.items() if not k.startswith("DAGSTER_")}
        full_env.update(env)
        full_env.update(
            DAGSTER_HOME=str(home),
            DAGSTER_PG_URL=dagster_pg_url,
            PYTHONUNBUFFERED="1",
        )
        full_env.update(extra_env or {})
        bin_dir = Path(sys.executable).parent
        port = free_port()
        webserver_log = (workdir / "webserver.log").open("ab")
        daemon_log = (workdir / "daemon.log").open("ab")
        webserver = daemon = None
        system = None
        try:
            webserver = subprocess.Popen(
                [
                    str(bin_dir / "dagster-webserver"),
                    "-w",
                    str(workspace),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(port),
                ],
                cwd=workspace.parent,
                env=full_env,
                stdout=webserver_log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            system = DeployedSystem(
                workdir=workdir,
                dagster_home=home,
                url=f"http://127.0.0.1:{port}/graphql",
                env=full_env,
                webserver=webserver,
                daemon=None,  # set just below
            )
            started = time.monotonic()
            if stop_instigators:
                _wait_for_webserver(system, port, start_timeout)
                system.stop_sensors()
                system.stop_schedules()
            daemon = system.daemon = subprocess.Popen(
                [str(bin_dir / "dagster-daemon"), "run", "-w", str(workspace)],
                cwd=workspace.parent,
                env=full_env,
                stdout=daemon_log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            _wait_until_up(system, port, start_timeout - (time.monotonic() - started))
            yield system
        finally:
            if system is not None:
                system.close()
            else:
                for popen in (webserver, daemon):
                    if popen is not None:
                        with contextlib.suppress(ProcessLookupError):
                            os.killpg(popen.pid, signal.SIGKILL)
                        popen.wait(timeout=10)
            webserver_log.close()
            daemon_log.close()


def _wait_for_webserver(system: DeployedSystem, port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        for name, popen in (("dagster-webserver", system.webserver), ("dagster-daemon", system.daemon)):
            if popen is not None and popen.poll() is not None:
                raise DeploymentError(f"{name} exited with {popen.returncode}\n{system.logs()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{port}/server_info", timeout=2).status_code == 200:
                break
        if time.monotonic() > deadline:
            raise DeploymentError(f"dagster-webserver did not answer in {timeout:.0f} s\n{system.logs()}")
        time.sleep(0.5)


def _wait_until_up(system: DeployedSystem, port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    # 1. the webserver answers (it has loaded the code location by then)
    _wait_for_webserver(system, port, timeout)
    # 2. the code location is loaded and every required daemon heartbeats
    last: Any = None
    while True:
        if system.daemon.poll() is not None:
            raise DeploymentError(f"dagster-daemon exited with {system.daemon.returncode}\n{system.logs()}")
        try:
            last = system.daemon_statuses()
            if last and all(s["healthy"] for s in last.values() if s["required"]):
                return
        except (httpx.HTTPError, DeploymentError) as exc:
            last = exc
        if time.monotonic() > deadline:
            raise DeploymentError(f"daemon not healthy in {timeout:.0f} s: {last}\n{system.logs()}")
        time.sleep(1.0)


# ---------------------------------------------------------------------------------------- GraphQL text

_LAUNCH_RUN = """
mutation($p: ExecutionParams!) { launchRun(executionParams: $p) { __typename
  ... on LaunchRunSuccess { run { runId status } }
  ... on RunConfigValidationInvalid { errors { message } }
  ... on PythonError { message stack }
  ... on InvalidSubsetError { message } ... on PipelineNotFoundError { message }
  ... on RunConflict { message } ... on UnauthorizedError { message } } }"""

_RUN = """
query($id: ID!) { runOrError(runId: $id) { __typename
  ... on Run { runId jobName status creationTime startTime endTime tags { key value } }
  ... on RunNotFoundError { message } ... on PythonError { message } } }"""

_RUN_EVENTS = """
query($id: ID!) { runOrError(runId: $id) { __typename
  ... on Run { eventConnection(limit: 1000) { events { __typename ... on MessageEvent { timestamp } } } }
  ... on RunNotFoundError { message } ... on PythonError { message } } }"""

_SET_POOL_LIMIT = """
mutation($key: String!, $limit: Int!) { setConcurrencyLimit(concurrencyKey: $key, limit: $limit) }"""

_RUNS = """
query($limit: Int) { runsOrError(limit: $limit) { ... on Runs { results {
  runId jobName status creationTime startTime endTime tags { key value } } } } }"""

_ADD_PARTITION = """
mutation($key: String!, $name: String!, $repo: RepositorySelector!) {
  addDynamicPartition(partitionKey: $key, partitionsDefName: $name, repositorySelector: $repo) {
    __typename ... on PythonError { message } ... on UnauthorizedError { message } } }"""

_LAUNCH_BACKFILL = """
mutation($p: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $p) { __typename
  ... on LaunchBackfillSuccess { backfillId }
  ... on PartitionKeysNotFoundError { message partitionKeys }
  ... on InvalidSubsetError { message } ... on UnauthorizedError { message }
  ... on PythonError { message stack } } }"""

_BACKFILL = """
query($id: String!) { partitionBackfillOrError(backfillId: $id) { __typename
  ... on PartitionBackfill { id status numPartitions error { message }
    runs { runId status creationTime startTime endTime tags { key value } } }
  ... on BackfillNotFoundError { message } ... on PythonError { message } } }"""

_DAEMON_HEALTH = """
{ instance { daemonHealth { allDaemonStatuses { daemonType required healthy lastHeartbeatTime } } } }"""

_TICKS = "ticks(limit: $limit) { status timestamp skipReason error { message } }"
_INSTIGATORS = f"""
query($repo: RepositorySelector!, $limit: Int) {{
  sensorsOrError(repositorySelector: $repo) {{ __typename
    ... on Sensors {{ results {{ name jobOriginId sensorState {{ id selectorId status {_TICKS} }} }} }}
    ... on PythonError {{ message }} }}
  schedulesOrError(repositorySelector: $repo) {{ __typename
    ... on Schedules {{ results {{ name scheduleState {{ id selectorId status {_TICKS} }} }} }}
    ... on PythonError {{ message }} }} }}"""

_STOP_SENSOR = """
mutation($id: String) { stopSensor(id: $id) {
  __typename ... on PythonError { message } } }"""

_STOP_SCHEDULE = """
mutation($id: String) {
  stopRunningSchedule(id: $id) {
    __typename ... on PythonError { message } } }"""
