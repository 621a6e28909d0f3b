"""The engine's pool holds a connection for every project a run syncs at once (GHL_PROJECT_WORKERS)."""

import pytest

from ghl_pipeline.config import DEFAULT_PROJECT_WORKERS, project_workers
from ghl_pipeline.warehouse import db


def test_project_workers_default_and_override(monkeypatch):
    monkeypatch.delenv("GHL_PROJECT_WORKERS", raising=False)
    assert project_workers() == DEFAULT_PROJECT_WORKERS == 32
    monkeypatch.setenv("GHL_PROJECT_WORKERS", "7")
    assert project_workers() == 7
    monkeypatch.setenv("GHL_PROJECT_WORKERS", "0")
    with pytest.raises(ValueError, match="GHL_PROJECT_WORKERS"):
        project_workers()


@pytest.mark.parametrize("workers", ["4", "48"])
def test_the_pool_has_a_connection_for_every_parallel_project(db_url, monkeypatch, workers):
    monkeypatch.setenv("GHL_PROJECT_WORKERS", workers)
    db.dispose_engine(db_url)  # the engine is cached per URL: build it under this setting
    engine = db.get_engine(db_url)
    try:
        # A project's sync holds one connection at a time; the run's own thread needs one more.
        assert engine.pool.size() >= int(workers) + 1
        assert engine.pool.size() + engine.pool._max_overflow >= int(workers) + 1
    finally:
        db.dispose_engine(db_url)
