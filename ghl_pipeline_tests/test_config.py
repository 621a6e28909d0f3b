"""Settings from the environment: defaults, and a bad value named before anything runs."""

import pytest

from ghl_pipeline import config


@pytest.mark.parametrize(("raw", "expected"), [(None, 10), ("", 10), ("0", 0), ("19", 19), ("5", 5)])
def test_background_nice(monkeypatch, raw, expected):
    if raw is None:
        monkeypatch.delenv("GHL_BACKGROUND_NICE", raising=False)
    else:
        monkeypatch.setenv("GHL_BACKGROUND_NICE", raw)
    assert config.background_nice() == expected


@pytest.mark.parametrize("raw", ["-1", "20", "ten"])
def test_a_bad_background_nice_names_the_variable(monkeypatch, raw):
    monkeypatch.setenv("GHL_BACKGROUND_NICE", raw)
    with pytest.raises(ValueError, match="GHL_BACKGROUND_NICE must be an integer 0..19"):
        config.background_nice()


@pytest.mark.parametrize(
    "name", ["GHL_SENSOR_INTERVAL_SECONDS", "GHL_RETRY_FIRST_DELAY_SECONDS", "GHL_STALE_RUN_SECONDS"]
)
def test_recovery_intervals_refuse_what_is_not_a_positive_integer(monkeypatch, name):
    monkeypatch.setenv(name, "0")
    readers = {
        "GHL_SENSOR_INTERVAL_SECONDS": lambda: config.sensor_interval_seconds(30),
        "GHL_RETRY_FIRST_DELAY_SECONDS": config.retry_first_delay_seconds,
        "GHL_STALE_RUN_SECONDS": config.stale_run_seconds,
    }
    with pytest.raises(ValueError, match=f"{name} must be positive"):
        readers[name]()
    monkeypatch.setenv(name, "7")
    assert readers[name]() == 7


def test_a_process_running_jobs_in_process_is_never_reniced():
    import os

    from ghl_pipeline.defs import assets

    before = os.nice(0)
    assets._reniced = False
    assets._yield_cpu_to_the_dashboard()
    assert os.nice(0) == before  # pytest's own process: MainProcess
