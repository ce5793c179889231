"""Quiet days against a brute-force day-by-day count, across DST changes and a year end."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest

from citywatch.analytics.quiet import quiet_days, zero_runs
from citywatch.analytics.scope import Period
from citywatch.errors import InsufficientPrecisionError

NY = "America/New_York"
SPEC = {"two_robberies": {"robbery", "snatching"}, "all": None}


def brute_force(
    frame: pd.DataFrame, tz: str, period: Period, codes: set[str] | None, station: str
) -> dict[str, object]:
    """Count day by day, each local day being the UTC window between two local midnights."""
    zone = ZoneInfo(tz)
    sel = frame[frame["station"] == station]
    if codes is not None:
        sel = sel[sel["category"].isin(codes)]
    stamps = sel["received_at"].dt.tz_convert("UTC").tolist()

    def count(day: date) -> int:
        lo = datetime(day.year, day.month, day.day, tzinfo=zone)
        nxt = day + timedelta(days=1)
        hi = datetime(nxt.year, nxt.month, nxt.day, tzinfo=zone)
        return sum(lo <= s < hi for s in stamps)

    zero_days, best, run, best_first, run_first = 0, 0, 0, None, None
    day = period.start
    while day <= period.end:
        if count(day) == 0:
            zero_days += 1
            run_first = day if run == 0 else run_first
            run += 1
            if run > best:
                best, best_first = run, run_first
        else:
            run = 0
        day += timedelta(days=1)
    # current run: walk back from the end until a day with an incident
    current, day = 0, period.end
    first_local = min(s.astimezone(zone).date() for s in frame["received_at"].tolist())
    while day >= first_local and count(day) == 0:
        current += 1
        day -= timedelta(days=1)
    return {
        "zero_days": zero_days,
        "longest": best,
        "longest_first": best_first,
        "current": current,
        "incidents": sum(count(period.start + timedelta(days=i)) for i in range(period.days)),
        "lower_bound": day < first_local,
    }


@pytest.mark.parametrize(
    ("seed", "n", "start", "end"),
    [
        (1, 60, date(2023, 10, 20), date(2024, 3, 31)),  # fall back, new year, spring forward
        (2, 400, date(2023, 12, 1), date(2024, 1, 31)),  # busy stations, year boundary
        (3, 15, date(2024, 3, 1), date(2024, 11, 30)),  # sparse: long runs, both DST changes
    ],
)
def test_matches_brute_force(random_incidents, seed, n, start, end) -> None:
    frame = random_incidents(seed, "2023-09-01", "2024-12-31", n, NY, ["1", "14", "22"])
    period = Period(start, end)
    result = quiet_days(frame, period, tz=NY, by="station", categories=SPEC)
    assert len(result.rows) == 3 * 2
    for row in result.rows:
        codes = SPEC[row.category]
        expected = brute_force(frame, NY, period, codes, row.jurisdiction)
        assert row.days == period.days
        assert row.zero_days == expected["zero_days"]
        assert row.longest_zero_run.days == expected["longest"]
        assert row.longest_zero_run.first == expected["longest_first"]
        if expected["longest"]:
            assert row.longest_zero_run.last == expected["longest_first"] + timedelta(
                days=expected["longest"] - 1
            )
        assert row.current_zero_run.days == expected["current"]
        assert row.lower_bound == expected["lower_bound"]
        assert row.incidents == expected["incidents"]


def test_dst_midnights_hand_built(make_incidents) -> None:
    # 2024-03-10 is 23 hours long in New York and 2023-11-05 is 25 hours long: incidents just
    # before local midnight belong to that day although their UTC date is the next one.
    frame = make_incidents(
        ["2023-11-05 23:59", "2024-03-09 00:00", "2024-03-10 23:30", "2024-03-12 01:00"], NY
    )
    result = quiet_days(frame, Period(date(2023, 11, 5), date(2024, 3, 12)), tz=NY)
    row = result.rows[0]  # city, all
    assert (row.jurisdiction, row.category) == ("city", "all")
    assert row.incidents == 4
    assert row.days == 129
    assert row.zero_days == 125
    assert row.longest_zero_run.days == 124  # 2023-11-06 .. 2024-03-08
    assert row.longest_zero_run.first == date(2023, 11, 6)
    assert row.longest_zero_run.last == date(2024, 3, 8)
    assert row.current_zero_run.days == 0
    assert row.last_incident == date(2024, 3, 12)
    as_json = row.as_dict()
    assert as_json["current_zero_run"] == {
        "days": 0,
        "since": None,
        "lower_bound": False,
        "last_incident": "2024-03-12",
    }


def test_current_run_reaches_before_period_and_lower_bound(make_incidents) -> None:
    frame = make_incidents(
        ["2021-06-30 12:00", "2022-01-01 10:00", "2022-01-01 11:00"],
        NY,
        stations=["5", "14", "14"],
        categories=["robbery", "theft", "theft"],
    )
    period = Period(date(2024, 1, 1), date(2024, 12, 31))
    res = quiet_days(
        frame,
        period,
        tz=NY,
        by="station",
        categories={"robbery": {"robbery"}},
        jurisdictions=["5", "14", "22"],
    )
    rows = {r.jurisdiction: r for r in res.rows}
    # station 5: last robbery 2021-06-30, so 2021-07-01 .. 2024-12-31 without one
    five = rows["5"]
    assert five.current_zero_run.days == (date(2024, 12, 31) - date(2021, 6, 30)).days == 1280
    assert five.current_zero_run.first == date(2021, 7, 1)
    assert not five.lower_bound
    assert five.zero_days == 366 and five.longest_zero_run.days == 366  # leap year
    # station 14 has no robbery at all: at least as long as the data, from 2021-06-30
    fourteen = rows["14"]
    assert fourteen.lower_bound
    assert fourteen.current_zero_run.days == 1280 + 1
    assert fourteen.as_dict()["current_zero_run"]["since"] == "2021-06-30"
    # station 22 is only in the jurisdiction list
    assert rows["22"].incidents == 0 and rows["22"].lower_bound
    assert any("ends on 2022-01-01" in note for note in res.notes)


def test_zero_runs_small_cases() -> None:
    start, end = 0, 9
    assert zero_runs(np.array([], dtype=np.int64), start, end)[1].days == 10
    zero, run = zero_runs(np.array([0, 3, 3, 9, 12, -5]), start, end)
    assert zero == 7
    assert run.days == 5 and run.first == date(1970, 1, 5) and run.last == date(1970, 1, 9)
    zero, run = zero_runs(np.arange(10), start, end)
    assert zero == 0 and run.days == 0 and run.first is None
    # tie: the earliest run wins
    assert zero_runs(np.array([2, 5]), 0, 7)[1].first == date(1970, 1, 1)


def test_refuses_monthly_data(make_incidents) -> None:
    frame = make_incidents(["2018-07-01 00:00"] * 3, "Europe/London", precision="month")
    with pytest.raises(InsufficientPrecisionError, match="known only to the month"):
        quiet_days(frame, Period(date(2018, 7, 1), date(2018, 7, 31)), tz="Europe/London")
