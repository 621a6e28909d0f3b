"""A tiny GraphQL client for the three calls the gateway makes to the Dagster webserver.

Only fixed documents are sent (launch ``sync_ghl_calls``, list its active runs, read one run): the
gateway never forwards GraphQL from the browser. Dagster answers errors as HTTP 200 with a
``__typename`` union member (DAGSTER-NOTES §5), so every answer is checked for both top-level
``errors`` and the member's type.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from ghl_pipeline.gateway.body import SyncRequest
from ghl_pipeline.gateway.outcome import FailedProject, failed_projects, outcome, person_reason, toast_message

log = logging.getLogger(__name__)

REPOSITORY_LOCATION_NAME = "ghl_pipeline"
REPOSITORY_NAME = "__repository__"
SYNC_JOB_NAME = "sync_ghl_calls"
SYNC_OP_NAME = "sync_calls"
ACTIVE_STATUSES = ("QUEUED", "NOT_STARTED", "STARTING", "STARTED")
TERMINAL_STATUSES = frozenset({"SUCCESS", "FAILURE", "CANCELED"})

TAG_LAUNCHED_BY = "ghl/launched_by"
TAG_SCOPE = "ghl/scope"
TAG_REQUESTED_BY = "ghl/requested_by"
TAG_NEW = "ghl/new_records"
TAG_UPDATED = "ghl/updated_records"
TAG_REJECTED = "ghl/rejected_records"
TAG_SUMMARY = "ghl/summary"
MAX_ERROR_MESSAGE = 500

LAUNCH_SYNC = """
mutation LaunchSync($executionParams: ExecutionParams!) {
  launchRun(executionParams: $executionParams) {
    __typename
    ... on LaunchRunSuccess { run { runId status } }
    ... on RunConfigValidationInvalid { errors { message path reason } }
    ... on InvalidStepError { invalidStepKey }
    ... on InvalidOutputError { stepKey invalidOutputName }
    ... on InvalidSubsetError { message }
    ... on PipelineNotFoundError { message }
    ... on RunConflict { message }
    ... on UnauthorizedError { message }
    ... on PresetNotFoundError { message }
    ... on ConflictingExecutionParamsError { message }
    ... on NoModeProvidedError { message }
    ... on PythonError { message className }
  }
}
"""

ACTIVE_SYNCS = """
query ActiveSyncs($filter: RunsFilter!) {
  runsOrError(filter: $filter, limit: 5) {
    __typename
    ... on Runs { results { runId status tags { key value } } }
    ... on InvalidPipelineRunsFilterError { message }
    ... on PythonError { message className }
  }
}
"""

_ERROR_FIELDS = "message className cause { message className cause { message className } }"
SYNC_RUN = f"""
query SyncRun($runId: ID!, $withEvents: Boolean!) {{
  runOrError(runId: $runId) {{
    __typename
    ... on Run {{
      runId jobName status endTime
      tags {{ key value }}
      eventConnection(limit: 1000) @include(if: $withEvents) {{
        events {{
          __typename
          ... on ExecutionStepFailureEvent {{ message stepKey error {{ {_ERROR_FIELDS} }} }}
          ... on RunFailureEvent {{ message error {{ {_ERROR_FIELDS} }} }}
        }}
      }}
    }}
    ... on RunNotFoundError {{ message }}
    ... on PythonError {{ message className }}
  }}
}}
"""


class DagsterError(Exception):
    """Dagster refused or failed a call; ``http_status`` is what the gateway should answer."""

    def __init__(self, message: str, *, http_status: int = 502) -> None:
        super().__init__(message)
        self.message = message
        self.http_status = http_status


@dataclass(frozen=True)
class RunRef:
    """A run id with the status Dagster reported."""

    run_id: str
    status: str
    scope: str | None = None


@dataclass(frozen=True)
class SyncRun:
    """A ``sync_ghl_calls`` run as the dashboard sees it: status, counts and (on failure) why."""

    run_id: str
    status: str
    new_records: int | None
    updated_records: int | None
    rejected_records: int | None
    projects: Mapping[str, Any] = field(default_factory=dict)
    failed_projects: tuple[FailedProject, ...] = ()
    error: str | None = None  # for a person: never a job name or a traceback
    end_time: float | None = None  # Unix time the run ended, as Dagster recorded it

    @property
    def done(self) -> bool:
        """True once the run will not change any more (success, failure or cancellation)."""
        return self.status in TERMINAL_STATUSES

    @property
    def outcome(self) -> str | None:
        """``success``, ``partial``, ``failed``, or ``None`` while the run is not done."""
        return outcome(self.status, synced_projects=len(self.projects), failed=self.failed_projects)

    @property
    def message(self) -> str | None:
        """The toast text for a finished run (see ``outcome.toast_message``); ``None`` until done."""
        return toast_message(
            self.status,
            new_records=self.new_records,
            synced_projects=len(self.projects),
            failed=self.failed_projects,
            error=self.error,
        )


class DagsterClient:
    """Launches and reads ``sync_ghl_calls`` runs through the webserver's GraphQL endpoint."""

    def __init__(self, *, url: str, client: httpx.AsyncClient) -> None:
        self._url = url
        self._client = client

    async def launch_sync(self, *, request: SyncRequest, user_id: str) -> RunRef:
        """Launch ``sync_ghl_calls`` for this validated request; ``DagsterError`` when Dagster refuses."""
        tags = {TAG_LAUNCHED_BY: "gateway", TAG_SCOPE: request.scope, TAG_REQUESTED_BY: user_id}
        variables = {
            "executionParams": {
                "selector": {
                    "repositoryLocationName": REPOSITORY_LOCATION_NAME,
                    "repositoryName": REPOSITORY_NAME,
                    "jobName": SYNC_JOB_NAME,
                },
                "runConfigData": request.run_config(),
                "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in tags.items()]},
            }
        }
        result = (await self._execute(LAUNCH_SYNC, variables, "LaunchSync"))["launchRun"]
        typename = result.get("__typename")
        if typename == "LaunchRunSuccess":
            run = result["run"]
            return RunRef(run_id=run["runId"], status=run["status"], scope=request.scope)
        if typename == "RunConfigValidationInvalid":
            reasons = "; ".join(_config_error(e) for e in result.get("errors") or []) or "invalid run config"
            raise DagsterError(f"Dagster rejected the sync config: {reasons}", http_status=400)
        if typename == "PipelineNotFoundError":
            raise DagsterError(
                f"Dagster has no job {SYNC_JOB_NAME!r} in code location {REPOSITORY_LOCATION_NAME!r}; "
                "is the webserver loading the ghl_pipeline workspace?"
            )
        if typename == "RunConflict":
            raise DagsterError(f"Dagster refused the run: {_short(result.get('message'))}", http_status=409)
        raise DagsterError(f"Dagster could not launch the sync ({typename}): {_short(result.get('message'))}")

    async def active_syncs(self, *, scope: str | None) -> list[RunRef]:
        """Queued or running ``sync_ghl_calls`` runs, of one ``ghl/scope`` or (``None``) of any scope."""
        run_filter: dict[str, Any] = {"pipelineName": SYNC_JOB_NAME, "statuses": list(ACTIVE_STATUSES)}
        if scope is not None:
            run_filter["tags"] = [{"key": TAG_SCOPE, "value": scope}]
        result = (await self._execute(ACTIVE_SYNCS, {"filter": run_filter}, "ActiveSyncs"))["runsOrError"]
        if result.get("__typename") != "Runs":
            raise DagsterError(f"Dagster could not list runs: {_short(result.get('message'))}")
        runs = []
        for run in result.get("results") or []:
            tags = _tags(run)
            runs.append(RunRef(run_id=run["runId"], status=run["status"], scope=tags.get(TAG_SCOPE)))
        return runs

    async def sync_run(self, *, run_id: str) -> SyncRun | None:
        """The run with this id if it is a ``sync_ghl_calls`` run, else ``None`` (unknown or other job)."""
        # The event log is only fetched for failed runs, where it holds the reason.
        result = await self._read_run(run_id, with_events=False)
        if result is None:
            return None
        if result["status"] == "FAILURE":
            result = await self._read_run(run_id, with_events=True) or result
        tags = _tags(result)
        summary = _summary(tags.get(TAG_SUMMARY))
        end_time = result.get("endTime")
        return SyncRun(
            run_id=result["runId"],
            status=result["status"],
            new_records=_count(tags.get(TAG_NEW)),
            updated_records=_count(tags.get(TAG_UPDATED)),
            rejected_records=_count(tags.get(TAG_REJECTED)),
            projects=summary.get("projects") if isinstance(summary.get("projects"), dict) else {},
            failed_projects=failed_projects(summary),
            error=(
                person_reason(_failure_reason(result))
                if result["status"] in ("FAILURE", "CANCELED")
                else None
            ),
            end_time=float(end_time) if isinstance(end_time, int | float) else None,
        )

    async def _read_run(self, run_id: str, *, with_events: bool) -> dict[str, Any] | None:
        variables = {"runId": run_id, "withEvents": with_events}
        result = (await self._execute(SYNC_RUN, variables, "SyncRun"))["runOrError"]
        typename = result.get("__typename")
        if typename == "RunNotFoundError":
            return None
        if typename != "Run":
            raise DagsterError(f"Dagster could not read the run: {_short(result.get('message'))}")
        if result.get("jobName") != SYNC_JOB_NAME:
            return None  # other jobs' runs are none of the dashboard's business
        return result

    async def _execute(self, query: str, variables: dict[str, Any], operation: str) -> dict[str, Any]:
        payload = {"query": query, "variables": variables, "operationName": operation}
        try:
            response = await self._client.post(self._url, json=payload)
        except httpx.TimeoutException:
            raise DagsterError("the Dagster webserver did not answer in time", http_status=504) from None
        except httpx.HTTPError as exc:
            log.warning("Dagster GraphQL %s failed: %s", operation, type(exc).__name__)
            raise DagsterError("the Dagster webserver is unreachable", http_status=503) from None
        try:
            document = response.json()
        except ValueError:
            document = None
        if not isinstance(document, dict):
            raise DagsterError(f"the Dagster webserver answered HTTP {response.status_code} without GraphQL")
        if document.get("errors"):
            messages = "; ".join(_short(e.get("message")) for e in document["errors"] if isinstance(e, dict))
            log.error("Dagster GraphQL %s errors: %s", operation, messages)
            raise DagsterError(f"Dagster GraphQL error: {messages}")
        data = document.get("data")
        if not isinstance(data, dict):
            raise DagsterError("the Dagster webserver answered without data")
        return data


def _tags(run: Mapping[str, Any]) -> dict[str, str]:
    return {t["key"]: t["value"] for t in run.get("tags") or [] if isinstance(t, dict) and "key" in t}


def _count(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        count = int(value)
    except ValueError:
        return None
    return count if count >= 0 else None


def _summary(value: str | None) -> dict[str, Any]:
    if not value:
        return {}
    try:
        parsed = json.loads(value)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _config_error(error: Mapping[str, Any]) -> str:
    path = ".".join(str(p) for p in error.get("path") or [])
    message = _short(error.get("message"))
    return f"{path}: {message}" if path else message


def _failure_reason(run: Mapping[str, Any]) -> str:
    """The deepest cause of the first step failure (the user's own message), else the run failure."""
    events = (run.get("eventConnection") or {}).get("events") or []
    for wanted in ("ExecutionStepFailureEvent", "RunFailureEvent"):
        for event in events:
            if event.get("__typename") != wanted:
                continue
            error = event.get("error")
            while isinstance(error, dict) and isinstance(error.get("cause"), dict):
                error = error["cause"]
            if isinstance(error, dict) and error.get("message"):
                return _strip_class(_short(error["message"]), error.get("className"))
            if event.get("message"):
                return _short(event["message"])
    return "" if run.get("status") == "FAILURE" else "canceled"


def _strip_class(message: str, class_name: str | None) -> str:
    # Dagster prefixes "module.ClassName: " to exception messages; the dashboard wants the sentence.
    head, sep, rest = message.partition(": ")
    if sep and class_name and head.rsplit(".", 1)[-1] == class_name:
        return rest
    return message


def _short(message: Any) -> str:
    text = str(message or "").strip()
    first = text.splitlines()[0] if text else "no details"
    return first if len(first) <= MAX_ERROR_MESSAGE else first[:MAX_ERROR_MESSAGE] + "…"
