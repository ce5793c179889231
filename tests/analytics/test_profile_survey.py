"""Hour-of-day profiles, the shift test, and satisfaction surveys."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from scipy import stats

from citywatch.analytics.profile import profile, shift_test
from citywatch.analytics.scope import Period
from citywatch.analytics.survey import read_survey, satisfaction, wilson_interval
from citywatch.errors import DataError, InsufficientPrecisionError

NY = "America/New_York"
Y2006 = Period(date(2006, 1, 1), date(2006, 12, 31))
Y2018 = Period(date(2018, 1, 1), date(2018, 12, 31))


def test_profile_counts_local_hours(random_incidents) -> None:
    frame = random_incidents(11, "2017-12-25", "2019-01-05", 2000, NY, ["1", "5"])
    res = profile(frame, Y2018, tz=NY, by="station", categories={"all": None})
    zone = ZoneInfo(NY)
    for row in res.rows:
        local = [
            t.astimezone(zone) for t in frame.loc[frame.station == row.jurisdiction, "received_at"]
        ]
        this = [t for t in local if t.year == 2018]
        last = [t for t in local if t.year == 2017]
        assert row.hours[0].tolist() == np.bincount([t.hour for t in this], minlength=24).tolist()
        assert row.hours[1].tolist() == np.bincount([t.hour for t in last], minlength=24).tolist()
        assert (
            row.weekdays[0].tolist()
            == np.bincount([t.weekday() for t in this], minlength=7).tolist()
        )
        assert row.peak_hours(0) == np.flatnonzero(row.hours[0] == row.hours[0].max()).tolist()


def test_profile_detects_a_shift_to_small_hours(make_incidents) -> None:
    # 2006: evening rush (17-19 h); 2018: 2-3 am, as in the bureau's report
    evening = [
        f"2006-0{m}-1{d} {h}:30" for m in range(1, 10) for d in range(5) for h in (17, 18, 19)
    ]
    night = [f"2018-0{m}-2{d} {h}:15" for m in range(1, 10) for d in range(5) for h in (2, 2, 18)]
    frame = make_incidents(evening + night, NY)
    res = profile(frame, Y2018, tz=NY, baseline_dates=Y2006, categories={"robbery": {"robbery"}})
    row = res.rows[0]
    assert row.peak_hours(0) == [2] and row.peak_hours(1) == [17, 18, 19]
    assert row.hour_test.p_value is not None and row.hour_test.p_value < 0.001
    # bins 2, 17, 18, 19 h hold (90, 0), (0, 45), (45, 45), (0, 45): expected 45 or 22.5 per
    # cell, so chi2 = 2 * 45 + 2 * 22.5 + 0 + 2 * 22.5 = 180 with 3 degrees of freedom
    assert row.hour_test.test == "chi-square test of homogeneity"
    assert row.hour_test.statistic == pytest.approx(180.0)
    assert row.hour_test.dof == 3
    as_json = res.as_dict()["rows"][0]
    assert as_json["incidents"] == {"current": 135, "previous": 135}


def test_shift_test_matches_textbook_chi_square() -> None:
    rng = np.random.default_rng(5)
    a = rng.poisson(50, size=24)
    b = rng.poisson(60, size=24)
    res = shift_test(a, b)
    table = np.vstack([a, b]).astype(float)
    expected = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / table.sum()
    chi2 = float(((table - expected) ** 2 / expected).sum())
    assert res.statistic == pytest.approx(chi2)
    assert res.dof == 23
    assert res.p_value == pytest.approx(stats.chi2.sf(chi2, 23))
    assert shift_test(np.zeros(24), b).p_value is None
    # the Monte Carlo p-value is seeded: same input, same answer
    small = np.array([3, 0, 1, 0, 2, 0, 0]), np.array([0, 2, 0, 4, 0, 1, 1])
    assert shift_test(*small).p_value == shift_test(*small).p_value


def test_profile_refuses_day_precision(make_incidents) -> None:
    frame = make_incidents(["2018-05-01 00:00"], NY, precision="day")
    with pytest.raises(InsufficientPrecisionError, match="to the minute"):
        profile(frame, Y2018, tz=NY)


def test_wilson_matches_scipy() -> None:
    for k, n in [(0, 10), (7, 10), (939, 1000), (50, 50)]:
        ci = stats.binomtest(k, n).proportion_ci(0.95, method="wilson")
        assert wilson_interval(k, n) == pytest.approx((ci.low, ci.high))


def test_survey(tmp_path: Path) -> None:
    path = tmp_path / "survey.csv"
    lines = ["respondent,area,answer,weight"]
    answers = {"14": [5, 5, 4, 3, 1, 4, 5, 2], "5": [4, 4, 4, 4]}
    i = 0
    for area, values in answers.items():
        for a in values:
            i += 1
            lines.append(f"r{i},{area},{a},{2.0 if area == '5' else 1.0}")
    path.write_text("\n".join(lines) + "\n")
    res = satisfaction(read_survey(path))
    rows = {r["area"]: r for r in res.as_dict()["rows"]}
    assert list(rows) == ["all", "5", "14"]
    assert (rows["14"]["responses"], rows["14"]["satisfied"]) == (8, 5)
    assert rows["14"]["rate"] == pytest.approx(5 / 8)
    ci = stats.binomtest(5, 8).proportion_ci(0.95, method="wilson")
    assert (rows["14"]["ci_low"], rows["14"]["ci_high"]) == pytest.approx((ci.low, ci.high))
    # weights 1 (x8) and 2 (x4): weighted rate (5 + 8) / 16, n_eff = 16^2 / 24
    assert rows["all"]["weighted_rate"] == pytest.approx(13 / 16)
    assert rows["all"]["n_eff"] == pytest.approx(256 / 24)
    assert res.weighted


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("respondent,area,answer\nr1,A,6\nr2,A,4\n", r"1 to 5 \(line\(s\) 2\)"),
        ("respondent,area,answer\nr1,A,4\nr1,B,4\n", "answer once"),
        ("respondent,answer\nr1,4\n", "missing column"),
        ("respondent,area,answer,weight\nr1,A,4,-1\n", "positive"),
    ],
)
def test_survey_rejects_bad_files(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(body)
    with pytest.raises(DataError, match=message):
        read_survey(path)
