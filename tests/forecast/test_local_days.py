"""Forecast days are the city's days: dates read in its time zone, periods from local midnight."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from citywatch.errors import ValidationError
from citywatch.forecast.evaluate import backtest
from citywatch.forecast.predictors import NaivePredictor
from citywatch.forecast.surface import (
    Events,
    forecast_periods,
    grid_surface,
    local_time,
    next_local_midnight,
    to_days,
)

NY = "America/New_York"


def test_a_date_is_local_midnight():
    assert to_days("2017-01-01", NY) == to_days("2017-01-01T05:00:00Z")  # EST
    assert to_days("2017-07-01", NY) == to_days("2017-07-01T04:00:00Z")  # EDT
    assert to_days("2017-07-01T06:00+02:00", NY) == to_days("2017-07-01T04:00:00Z")
    assert local_time(to_days("2017-07-01", NY), NY).isoformat() == "2017-07-01T00:00:00-04:00"


def test_a_time_that_does_not_exist_locally_is_refused():
    with pytest.raises(ValidationError, match="not one time in America/New_York"):
        to_days("2017-03-12T02:30", NY)  # clocks jump from 02:00 to 03:00


def test_the_default_origin_is_the_next_local_midnight():
    late = to_days("2017-01-01T23:30", NY)  # 04:30 UTC on the 2nd
    assert next_local_midnight(late, NY) == to_days("2017-01-02", NY)
    assert next_local_midnight(late, "UTC") == to_days("2017-01-03")


def test_daily_periods_follow_the_calendar_across_dst():
    origins, ends = forecast_periods(to_days("2017-03-11", NY), to_days("2017-03-14", NY), 1, 1, NY)
    hours = np.round((ends - origins) * 24, 6).tolist()
    assert hours == [24.0, 23.0, 24.0]  # 12 March 2017 lost an hour
    assert [local_time(o, NY).strftime("%d %H:%M") for o in origins] == [
        "11 00:00",
        "12 00:00",
        "13 00:00",
    ]
    # Hours step in elapsed time.
    origins, ends = forecast_periods(0.0, 1.0, 8 / 24, 8 / 24, NY)
    np.testing.assert_allclose(origins * 24, [0.0, 8.0, 16.0])


def test_a_late_evening_incident_counts_on_its_local_day():
    grid = grid_surface(100.0, "local", study_area=shapely.box(0, 0, 99, 99))
    t = [to_days("2016-12-31T12:00", NY), to_days("2017-01-01T23:30", NY)]
    ev = Events.from_arrays([[50.0, 50.0], [50.0, 50.0]], t)
    start, end = to_days("2017-01-01", NY), to_days("2017-01-03", NY)
    local = backtest(ev, grid, [NaivePredictor(grid)], start=start, end=end, timezone=NY)
    assert local.events.tolist() == [1.0, 0.0]
    assert local.as_dict()["first_origin"] == "2017-01-01T00:00:00-05:00"
    # In UTC days the same incident falls on 2 January.
    start, end = to_days("2017-01-01"), to_days("2017-01-03")
    utc = backtest(ev, grid, [NaivePredictor(grid)], start=start, end=end)
    assert utc.events.tolist() == [0.0, 1.0]
