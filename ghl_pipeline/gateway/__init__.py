"""The authenticated gateway between the dashboard and Dagster's (unauthenticated) GraphQL API."""

from ghl_pipeline.gateway.app import create_app, run
from ghl_pipeline.gateway.settings import GatewayConfigError, GatewaySettings

__all__ = ["GatewayConfigError", "GatewaySettings", "create_app", "run"]
