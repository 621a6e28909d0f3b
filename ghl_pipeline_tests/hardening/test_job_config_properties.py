"""Property tests: no job config makes ``parse_sync_request`` fail other than with a ``SyncConfigError``
naming the field; and a bad config fails the real job before any GHL request or database write."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ghl_pipeline.config import MAX_SYNC_DAYS
from ghl_pipeline.definitions import defs
from ghl_pipeline.windows import DayRange, ExactWindow, SyncConfigError, parse_sync_request
from ghl_pipeline_tests.defs.conftest import table_snapshot

FIELDS = ("date_from", "date_to", "project_name")
ZONES = ("UTC", "Pacific/Kiritimati", "Pacific/Pago_Pago", "America/St_Johns", "Australia/Lord_Howe")

nasty_text = st.one_of(
    st.text(),
    st.text(alphabet=st.characters(categories=["Cc", "Cs", "Zl", "Zp", "Nd", "No"]), max_size=12),
    st.sampled_from(
        ["", " ", "\x00", "2025-12-01\x00", "\ud800", "２０２５-１２-０１", "9" * 100_000, "2025-12-01" * 5]
    ),
)
day = st.dates(min_value=date(1, 1, 1), max_value=date(9999, 12, 31))
near_day = st.dates(min_value=date(1999, 12, 1), max_value=date(2100, 2, 1))
moment = st.datetimes(
    min_value=datetime(1, 1, 2),
    max_value=datetime(9999, 12, 30),
    timezones=st.one_of(st.none(), st.timezones()),
)
near_moment = st.datetimes(
    min_value=datetime(1999, 12, 1),
    max_value=datetime(2100, 2, 1),
    timezones=st.one_of(st.none(), st.timezones()),
)
date_values = st.one_of(
    day.map(date.isoformat),
    near_day.map(date.isoformat),
    moment.map(datetime.isoformat),
    near_moment.map(datetime.isoformat),
    near_moment.map(lambda d: d.isoformat().replace("+00:00", "Z")),
    near_day.map(lambda d: d.strftime("%Y%m%d")),  # basic format: fromisoformat reads it as a naive datetime
    st.sampled_from(
        [
            "0001-01-01",
            "9999-12-31",
            "0001-01-01T00:00:00+01:00",
            "9999-12-31T23:59:59-23:59",
            "2025-02-29",
            "2024-02-29",
            "2025-13-01",
            "2025-12-01T24:00:00Z",
            "2025-W48-1T00:00:00Z",
            " 2025-12-01 ",
            "2025-12-01T00:00:00+25:00",
        ]
    ),
    nasty_text,
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.lists(st.integers(), max_size=2),
    day,  # a date object rather than a string
)
project_values = st.one_of(
    st.none(), nasty_text, st.text(max_size=40), st.integers(), st.floats(), st.booleans(), st.just("x" * 201)
)


def _check_valid(request) -> None:
    span = request.span
    if isinstance(span, DayRange):
        assert span.first <= span.last
        assert (span.last - span.first).days + 1 <= MAX_SYNC_DAYS
        assert date(2000, 1, 1) <= span.first and span.last < date(2100, 1, 1)
    else:
        assert isinstance(span, ExactWindow)
        assert span.start.tzinfo is not None and span.start.utcoffset() == timedelta(0)
        assert span.start < span.end <= span.start + timedelta(days=MAX_SYNC_DAYS)
    for zone in ZONES:  # what the job does next with the span must not blow up either
        start, end = span.window(zone)
        assert start < end
        span.days() if isinstance(span, DayRange) else span.days(zone)
    if request.project_name is not None:
        assert request.project_name == request.project_name.strip() and request.project_name


def _check(date_from, date_to, project_name) -> None:
    try:
        request = parse_sync_request(date_from, date_to, project_name)
    except SyncConfigError as exc:
        message = str(exc)
        assert message.startswith(FIELDS), message
        assert "\n" not in message and len(message) < 400, message
    else:
        _check_valid(request)


@given(date_from=date_values, date_to=date_values, project_name=project_values)
@settings(max_examples=800, deadline=None)
def test_any_config_is_a_request_or_a_field_error(date_from, date_to, project_name):
    _check(date_from, date_to, project_name)


@given(
    first=near_day, length=st.integers(min_value=-5, max_value=MAX_SYNC_DAYS + 5), project_name=project_values
)
@settings(max_examples=300, deadline=None)
def test_day_ranges_around_the_limits(first, length, project_name):
    _check(first.isoformat(), (first + timedelta(days=length)).isoformat(), project_name)


@given(
    start=near_moment.filter(lambda d: d.tzinfo is not None),
    hours=st.integers(min_value=-48, max_value=(MAX_SYNC_DAYS + 2) * 24),
    offset_minutes=st.integers(min_value=-23 * 60, max_value=23 * 60),
)
@settings(max_examples=300, deadline=None)
def test_datetime_windows_around_the_limits(start, hours, offset_minutes):
    from datetime import timezone

    end = (start + timedelta(hours=hours)).astimezone(timezone(timedelta(minutes=offset_minutes)))
    try:
        end_text = end.isoformat()
    except OverflowError:
        return
    _check(start.isoformat(), end_text, None)


def test_the_limits_themselves():
    parse_sync_request("2025-01-01", (date(2025, 1, 1) + timedelta(days=MAX_SYNC_DAYS - 1)).isoformat())
    with pytest.raises(SyncConfigError, match="^date_from/date_to: the range is longer"):
        parse_sync_request("2025-01-01", (date(2025, 1, 1) + timedelta(days=MAX_SYNC_DAYS)).isoformat())
    start = datetime(2025, 1, 1, tzinfo=UTC)
    parse_sync_request(start.isoformat(), (start + timedelta(days=MAX_SYNC_DAYS)).isoformat())
    with pytest.raises(SyncConfigError, match="^date_from/date_to: the window is longer"):
        parse_sync_request(
            start.isoformat(), (start + timedelta(days=MAX_SYNC_DAYS, microseconds=1)).isoformat()
        )
    with pytest.raises(SyncConfigError, match="^date_to: must not be before"):
        parse_sync_request("2025-01-02", "2025-01-01")


# ------------------------------------------------------------------------------------------ through Dagster

TODAY = datetime.now(UTC).date().isoformat()


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"date_from": "9999-12-31", "date_to": "9999-12-31"}, "date_from"),
        ({"date_from": "0001-01-01T00:00:00+01:00", "date_to": "0001-01-02T00:00:00Z"}, "date_from"),
        ({"date_from": "2025-12-01\x00", "date_to": "2025-12-01"}, "date_from"),
        ({"date_from": "x" * 100_000, "date_to": TODAY}, "date_from"),
        ({"date_from": TODAY, "date_to": "２０２５-１２-０１"}, "date_to"),
        ({"date_from": "2025-12-01T00:00:00", "date_to": "2025-12-02T00:00:00"}, "date_from"),
        ({"date_from": TODAY, "date_to": TODAY, "project_name": "Acme\nRoofing"}, "project_name"),
        ({"date_from": TODAY, "date_to": TODAY, "project_name": "Acme\x00Roofing"}, "project_name"),
        ({"date_from": TODAY, "date_to": TODAY, "project_name": "Acme\u2028Roofing"}, "project_name"),
        ({"date_from": TODAY, "date_to": TODAY, "project_name": "\ud800"}, "project_name"),
        ({"date_from": TODAY, "date_to": TODAY, "project_name": "y" * 5_000}, "project_name"),
    ],
    ids=[
        "year-9999",
        "year-1-offset",
        "nul-in-date",
        "huge-date",
        "fullwidth-digits",
        "naive-datetimes",
        "newline-project",
        "nul-project",
        "line-separator-project",
        "surrogate-project",
        "huge-project",
    ],
)
def test_bad_config_fails_the_job_before_any_request_or_write(
    engine, simulator, instance, resources, config, field
):
    before = table_snapshot(engine)
    result = defs.resolve_job_def("sync_ghl_calls").execute_in_process(
        run_config={"ops": {"sync_calls": {"config": config}}},
        instance=instance,
        resources=resources,
        raise_on_error=False,
    )
    assert not result.success
    (event,) = result.get_step_failure_events()
    description = event.step_failure_data.user_failure_data.description
    assert description.startswith(f"Invalid sync_ghl_calls config: {field}"), description
    assert "\n" not in description
    assert simulator.requests == []
    assert table_snapshot(engine) == before
