"""The sync input rules of CONTRACT §4: every bad case names its field and rule."""

from datetime import UTC, date, datetime

import pytest

from ghl_pipeline.windows import DayRange, ExactWindow, SyncConfigError, local_days_window, parse_sync_request


@pytest.mark.parametrize(
    ("date_from", "date_to", "project", "field", "rule"),
    [
        ("2025-13-01", "2025-12-01", None, "date_from", "not a real calendar date"),
        ("yesterday", "2025-12-01", None, "date_from", "neither YYYY-MM-DD"),
        ("", "2025-12-01", None, "date_from", "required"),
        (None, "2025-12-01", None, "date_from", "required"),
        ("2025-12-01", "12/02/2025", None, "date_to", "neither YYYY-MM-DD"),
        ("2025-12-02", "2025-12-01", None, "date_to", "must not be before date_from"),
        ("2025-12-01", "2025-12-01T10:00:00+00:00", None, "date_from/date_to", "not a mix"),
        ("2025-12-01T10:00:00", "2025-12-01T11:00:00+00:00", None, "date_from", "needs a UTC offset"),
        ("2025-12-01T10:00:00Z", "2025-12-01T10:00:00Z", None, "date_to", "must be after date_from"),
        ("2025-01-01", "2025-04-04", None, "date_from/date_to", "longer than 93 days"),
        ("2025-01-01T00:00:00Z", "2025-04-05T00:00:00Z", None, "date_from/date_to", "longer than 93 days"),
        ("0001-01-01", "0001-01-02", None, "date_from", "outside"),
        ("9999-12-30", "9999-12-31", None, "date_from", "outside"),
        ("2025-12-01", "2025-12-01", 42, "project_name", "must be a string"),
        ("2025-12-01", "2025-12-01", "Acme\nRoofing", "project_name", "control characters"),
        ("2025-12-01", "2025-12-01", "x" * 201, "project_name", "longer than 200"),
    ],
)
def test_bad_input_names_field_and_rule(date_from, date_to, project, field, rule):
    with pytest.raises(SyncConfigError) as err:
        parse_sync_request(date_from, date_to, project)
    assert str(err.value).startswith(field + ":")
    assert rule in str(err.value)


def test_dates_are_inclusive_local_days():
    request = parse_sync_request("2025-12-01", "2025-12-03", " Acme Roofing ")
    assert request.span == DayRange(date(2025, 12, 1), date(2025, 12, 3))
    assert request.project_name == "Acme Roofing"
    assert request.span.window("America/Chicago") == (
        datetime(2025, 12, 1, 6, tzinfo=UTC),
        datetime(2025, 12, 4, 6, tzinfo=UTC),
    )


def test_exactly_93_days_is_allowed():
    request = parse_sync_request("2025-01-01", "2025-04-03")
    assert len(request.span.days()) == 93


def test_datetimes_are_a_half_open_utc_window():
    request = parse_sync_request("2025-12-01T09:00:00-06:00", "2025-12-02T00:00:00Z", "")
    assert request.project_name is None
    assert request.span == ExactWindow(
        datetime(2025, 12, 1, 15, tzinfo=UTC), datetime(2025, 12, 2, tzinfo=UTC)
    )


@pytest.mark.parametrize(
    ("day", "zone", "hours"),
    [
        (date(2026, 3, 8), "America/Chicago", 23),  # spring forward
        (date(2026, 11, 1), "America/Chicago", 25),  # fall back
        (date(2026, 3, 29), "Europe/London", 23),
        (date(2026, 4, 5), "Australia/Sydney", 25),  # southern hemisphere falls back in April
        (date(2026, 6, 1), "UTC", 24),
    ],
)
def test_local_days_follow_dst(day, zone, hours):
    start, end = local_days_window(day, day, zone)
    assert (end - start).total_seconds() == hours * 3600


def test_exact_window_covers_only_whole_local_days():
    window = ExactWindow(datetime(2025, 12, 1, 6, tzinfo=UTC), datetime(2025, 12, 3, 12, tzinfo=UTC))
    # Chicago's 12-01 starts 06:00 UTC (covered), 12-02 is whole, 12-03 is cut off at 06:00 local.
    assert window.days("America/Chicago") == [date(2025, 12, 1), date(2025, 12, 2)]
    assert window.days("UTC") == [date(2025, 12, 2)]
