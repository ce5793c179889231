"""Year-over-year counts, Poisson z-scores and clearance rates."""

from __future__ import annotations

import math
from datetime import date

import pandas as pd
import pytest

from citywatch.analytics.compare import clearance, compare, poisson_z
from citywatch.analytics.scope import Period, baseline_period, local_days
from citywatch.errors import DataError, InsufficientPrecisionError, ValidationError

NY = "America/New_York"


def test_periods() -> None:
    leap = Period(date(2024, 2, 1), date(2024, 2, 29))
    assert leap.days == 29
    assert leap.previous_year() == Period(date(2023, 2, 1), date(2023, 2, 28))
    assert leap.previous() == Period(date(2024, 1, 3), date(2024, 1, 31))
    assert baseline_period(leap, "year", date(2006, 1, 1), date(2006, 12, 31)).days == 365
    with pytest.raises(ValidationError):
        Period(date(2024, 1, 2), date(2024, 1, 1))
    with pytest.raises(ValidationError):
        baseline_period(leap, "year", date(2006, 1, 1), None)


def test_poisson_z_values() -> None:
    assert poisson_z(100, 100) == 0
    assert poisson_z(64, 100) == pytest.approx(-4.0)  # 2 * (8 - 10)
    assert poisson_z(9, 0) == pytest.approx(6.0)


def test_compare_by_station_matches_brute_force(random_incidents) -> None:
    frame = random_incidents(7, "2022-01-01", "2024-01-01", 3000, NY, ["1", "5", "14"])
    period = Period(date(2023, 3, 1), date(2023, 11, 30))
    spec = {"two_robberies": {"robbery", "snatching"}, "theft": {"theft"}}
    res = compare(frame, period, tz=NY, by="station", categories=spec)
    assert res.baseline == Period(date(2022, 3, 1), date(2022, 11, 30))
    days = local_days(frame["received_at"], NY).dt.date
    assert len(res.table) == 6
    for row in res.table.itertuples():
        sel = (frame["station"] == row.jurisdiction) & frame["category"].isin(spec[row.category])
        cur = int((sel & (days >= period.start) & (days <= period.end)).sum())
        prev = int((sel & (days >= date(2022, 3, 1)) & (days <= date(2022, 11, 30))).sum())
        assert (row.current, row.previous) == (cur, prev)
        assert row.change_pct == pytest.approx(100 * (cur - prev) / prev)
        assert row.z == pytest.approx(2 * (math.sqrt(cur) - math.sqrt(prev)))
        assert row.flag == (abs(row.z) > 2)


def test_compare_hand_built_and_unassigned(make_incidents) -> None:
    # robbery and snatching (两抢) fell from 40 to 19: -52.5 %, z = 2(sqrt 19 - sqrt 40)
    times = ["2023-07-04 12:00"] * 40 + ["2024-07-04 12:00"] * 19
    cats = ["robbery"] * 30 + ["snatching"] * 10 + ["robbery"] * 19
    stations = ["1"] * 39 + [None] + ["1"] * 19
    frame = make_incidents(times, NY, categories=cats, stations=stations)
    period = Period(date(2024, 1, 1), date(2024, 12, 31))
    res = compare(frame, period, tz=NY, categories={"two_robberies": {"robbery", "snatching"}})
    row = res.as_dict()["rows"][0]
    assert row["current"] == 19 and row["previous"] == 40
    assert row["change_pct"] == pytest.approx(-52.5)
    assert row["z"] == pytest.approx(2 * (math.sqrt(19) - math.sqrt(40)))
    assert row["flag"] is True
    by_station = compare(frame, period, tz=NY, by="station", categories=None).table
    # no incident is dropped: the one without a station is reported as unassigned
    unassigned = by_station[
        (by_station.jurisdiction == "unassigned") & (by_station.category == "all")
    ]
    assert unassigned.previous.tolist() == [1]
    assert by_station[by_station.category == "all"].previous.sum() == 40
    assert set(by_station.category) == {"all", "robbery", "snatching"}
    # no previous incidents: percentage change is undefined, not infinite
    later = compare(frame, Period(date(2024, 7, 1), date(2024, 7, 31)), tz=NY, baseline="period")
    assert later.table.change_pct.isna().all()


def test_month_precision_needs_whole_months(make_incidents) -> None:
    frame = make_incidents(
        ["2018-07-01 00:00", "2017-07-01 00:00"], "Europe/London", precision="month"
    )
    july = Period(date(2018, 7, 1), date(2018, 7, 31))
    assert compare(frame, july, tz="Europe/London").table.loc[0, "current"] == 1
    with pytest.raises(InsufficientPrecisionError, match="first and end on the last"):
        compare(frame, Period(date(2018, 7, 1), date(2018, 7, 15)), tz="Europe/London")


def test_clearance(make_incidents) -> None:
    times = ["2023-05-01 10:00"] * 10 + ["2024-05-01 10:00"] * 8
    solved = [True] * 4 + [False] * 6 + [True] * 5 + [False] * 2 + [None]
    frame = make_incidents(times, NY, solved=solved)
    res = clearance(
        frame,
        Period(date(2024, 1, 1), date(2024, 12, 31)),
        tz=NY,
        categories={"robbery": {"robbery"}},
    )
    row = res.as_dict()["rows"][0]
    assert (row["recorded"], row["solved"], row["unknown"]) == (8, 5, 1)
    assert row["rate"] == pytest.approx(5 / 8)
    assert (row["recorded_previous"], row["solved_previous"]) == (10, 4)
    assert row["change_pp"] == pytest.approx(100 * (5 / 8 - 0.4))


def test_clearance_without_outcomes_is_refused(make_incidents) -> None:
    frame = make_incidents(["2024-05-01 10:00"], NY)
    with pytest.raises(DataError, match="no clearance rate"):
        clearance(frame, Period(date(2024, 1, 1), date(2024, 12, 31)), tz=NY)


def test_bad_inputs(make_incidents) -> None:
    frame = make_incidents(["2024-05-01 10:00"], NY)
    period = Period(date(2024, 1, 1), date(2024, 12, 31))
    with pytest.raises(ValidationError, match="jurisdiction level"):
        compare(frame, period, tz=NY, by="precinct")
    with pytest.raises(ValidationError, match="time zone"):
        compare(frame, period, tz="Mars/Olympus")
    naive = frame.assign(received_at=frame["received_at"].dt.tz_localize(None))
    with pytest.raises(DataError, match="time-zone-aware"):
        compare(naive, period, tz=NY)
    with pytest.raises(DataError, match="lack the column"):
        compare(frame.drop(columns="station"), period, tz=NY, by="station")
    assert isinstance(frame["received_at"].dtype, pd.DatetimeTZDtype)


def test_unassigned_is_reported_with_a_note(make_incidents) -> None:
    frame = make_incidents(["2024-05-01 10:00"] * 3, NY, stations=["1", None, None])
    res = compare(frame, Period(date(2024, 1, 1), date(2024, 12, 31)), tz=NY, by="station")
    table = res.table[res.table.category == "all"].set_index("jurisdiction")
    assert table["current"].to_dict() == {"1": 1, "unassigned": 2}
    assert any(note.startswith("2 incident(s) have no station") for note in res.notes)


def test_empty_data_gives_zero_rows() -> None:
    from citywatch.incidents.record import empty_frame

    period = Period(date(2024, 1, 1), date(2024, 1, 31))
    res = compare(empty_frame(), period, tz=NY, categories=["all"], city="manhattan")
    assert res.as_dict()["rows"] == [
        {
            "jurisdiction": "manhattan",
            "category": "all",
            "current": 0,
            "previous": 0,
            "change": 0,
            "change_pct": None,
            "z": 0.0,
            "flag": False,
        }
    ]
