"""Hardening suites reuse the Dagster-level fixtures (simulator, projects, instance, resources)."""

from ghl_pipeline_tests.defs.conftest import instance, projects, resources, simulator  # noqa: F401
