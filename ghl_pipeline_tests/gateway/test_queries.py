"""The gateway's GraphQL documents and variables are valid against Dagster's own schema (no webserver)."""

from __future__ import annotations

import pytest
from graphql import OperationDefinitionNode, parse, validate
from graphql.execution.values import get_variable_values

from ghl_pipeline.gateway.body import SyncRequest
from ghl_pipeline.gateway.dagster import ACTIVE_STATUSES, ACTIVE_SYNCS, LAUNCH_SYNC, SYNC_RUN


@pytest.fixture(scope="module")
def schema():
    from dagster_graphql.schema import create_schema

    return create_schema().graphql_schema


def _check(schema, document: str, variables: dict) -> None:
    ast = parse(document)
    assert validate(schema, ast) == []
    operation = next(d for d in ast.definitions if isinstance(d, OperationDefinitionNode))
    coerced = get_variable_values(schema, operation.variable_definitions, variables)
    assert isinstance(coerced, dict), coerced  # a list means coercion errors


def test_launch_document(schema):
    request = SyncRequest(date_from="2025-12-01", date_to="2025-12-07", project_name=None)
    _check(
        schema,
        LAUNCH_SYNC,
        {
            "executionParams": {
                "selector": {
                    "repositoryLocationName": "ghl_pipeline",
                    "repositoryName": "__repository__",
                    "jobName": "sync_ghl_calls",
                },
                "runConfigData": request.run_config(),
                "executionMetadata": {"tags": [{"key": "ghl/scope", "value": "*"}]},
            }
        },
    )


def test_active_runs_document(schema):
    run_filter = {
        "pipelineName": "sync_ghl_calls",
        "statuses": list(ACTIVE_STATUSES),
        "tags": [{"key": "ghl/scope", "value": "*"}],
    }
    _check(schema, ACTIVE_SYNCS, {"filter": run_filter})


def test_run_document(schema):
    _check(schema, SYNC_RUN, {"runId": "3f0c1d7e-8a1b-4c2d-9e3f-000000000000", "withEvents": True})
