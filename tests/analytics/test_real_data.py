"""Acceptance on the real files in data/: NYPD shootings, West Yorkshire, Nashville calls.

Every expected number is counted independently from the raw CSV (its local date and time
columns), never from the statistics code under test.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from citywatch.analytics.compare import clearance, compare
from citywatch.analytics.profile import profile
from citywatch.analytics.quiet import quiet_days
from citywatch.analytics.scope import Period
from citywatch.errors import InsufficientPrecisionError
from citywatch.incidents.sources import read_source
from tests.helpers import MANHATTAN_PRECINCTS, run

DATA = Path(__file__).resolve().parents[2] / "data"
NY = "America/New_York"
MANHATTAN = MANHATTAN_PRECINCTS


def imported(path: Path, source: str) -> pd.DataFrame:
    """The rows ``citywatch incidents import`` would store (valid, not merged)."""
    parsed = read_source(path, source)
    keep = parsed.reasons.isna().to_numpy(dtype=bool) & ~parsed.merged.to_numpy(dtype=bool)
    return parsed.records[keep].reset_index(drop=True)


@pytest.fixture(scope="module")
def shootings() -> pd.DataFrame:
    frame = imported(DATA / "manhattan" / "nypd_shootings_historic.csv", "nypd_shootings")
    return frame[frame["station"].isin(MANHATTAN)].reset_index(drop=True)


@pytest.fixture(scope="module")
def raw_shootings() -> pd.DataFrame:
    """One row per Manhattan incident (victims merged), with local date and hour from the file."""
    raw = pd.read_csv(
        DATA / "manhattan" / "nypd_shootings_historic.csv",
        usecols=["INCIDENT_KEY", "OCCUR_DATE", "OCCUR_TIME", "BORO", "PRECINCT"],
    )
    raw = raw[raw["BORO"] == "MANHATTAN"].drop_duplicates("INCIDENT_KEY")
    return pd.DataFrame(
        {
            "day": pd.to_datetime(raw["OCCUR_DATE"], format="%m/%d/%Y").dt.date,
            "hour": raw["OCCUR_TIME"].str.split(":").str[0].astype(int),
            "station": raw["PRECINCT"].astype(str),
        }
    )


def test_nypd_year_over_year(shootings: pd.DataFrame, raw_shootings: pd.DataFrame) -> None:
    per_year = Counter(d.year for d in raw_shootings["day"])
    assert len(shootings) == len(raw_shootings) == sum(per_year.values())
    for year in range(2007, 2019):
        res = compare(
            shootings, Period(date(year, 1, 1), date(year, 12, 31)), tz=NY, categories=["all"]
        )
        row = res.as_dict()["rows"][0]
        assert (row["current"], row["previous"]) == (per_year[year], per_year[year - 1])
    # 2018 against 2017 by precinct, Central Park included with zero
    res = compare(
        shootings,
        Period(date(2018, 1, 1), date(2018, 12, 31)),
        tz=NY,
        by="station",
        categories=["shooting"],
        jurisdictions=MANHATTAN,
    )
    table = res.table.set_index("jurisdiction")
    assert list(table.index) == MANHATTAN
    for year, column in ((2018, "current"), (2017, "previous")):
        counts = Counter(
            raw_shootings.loc[[d.year == year for d in raw_shootings["day"]], "station"]
        )
        assert table[column].to_dict() == {p: counts.get(p, 0) for p in MANHATTAN}


def brute_force_quiet(days: set[date], start: date, end: date, first_data: date) -> tuple:
    zero = longest = run = 0
    first_of_longest = None
    day = start
    while day <= end:
        if day in days:
            run = 0
        else:
            zero, run = zero + 1, run + 1
            if run > longest:
                longest, first_of_longest = run, day - timedelta(days=run - 1)
        day += timedelta(days=1)
    current, day = 0, end
    while day not in days and day >= first_data:
        current, day = current + 1, day - timedelta(days=1)
    return zero, longest, first_of_longest, current


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (date(2018, 1, 1), date(2018, 12, 31)),
        (date(2012, 10, 15), date(2013, 3, 31)),
    ],  # fall back, new year and spring forward
)
def test_nypd_zero_shooting_days_and_streaks(
    shootings: pd.DataFrame, raw_shootings: pd.DataFrame, start: date, end: date
) -> None:
    res = quiet_days(
        shootings,
        Period(start, end),
        tz=NY,
        by="station",
        categories=["shooting"],
        jurisdictions=MANHATTAN,
    )
    first_data = min(raw_shootings["day"])
    assert res.data_start == first_data
    assert len(res.rows) == len(MANHATTAN)
    for row in res.rows:
        days = set(raw_shootings.loc[raw_shootings["station"] == row.jurisdiction, "day"])
        zero, longest, first, current = brute_force_quiet(days, start, end, first_data)
        assert row.zero_days == zero
        assert row.longest_zero_run.days == longest
        assert row.longest_zero_run.first == first
        assert row.current_zero_run.days == current
    central_park = next(r for r in res.rows if r.jurisdiction == "22")
    assert central_park.lower_bound and central_park.incidents == 0
    # city-wide: 2018 had 295 days without a shooting in Manhattan
    if start.year == 2018:
        city = quiet_days(shootings, Period(start, end), tz=NY, categories=["all"]).rows[0]
        all_days = set(raw_shootings["day"])
        assert city.zero_days == brute_force_quiet(all_days, start, end, first_data)[0] == 295


def test_nypd_hour_profile_2006_vs_2018(
    shootings: pd.DataFrame, raw_shootings: pd.DataFrame
) -> None:
    res = profile(
        shootings,
        Period(date(2018, 1, 1), date(2018, 12, 31)),
        tz=NY,
        baseline_dates=Period(date(2006, 1, 1), date(2006, 12, 31)),
        categories=["shooting"],
    )
    row = res.rows[0]
    years = np.array([d.year for d in raw_shootings["day"]])
    for i, year in enumerate((2018, 2006)):
        hours = raw_shootings.loc[years == year, "hour"].to_numpy()
        assert row.hours[i].tolist() == np.bincount(hours, minlength=24).tolist()
    # 1,943 incidents (2,502 victims) in 2006-2018; 220 in 2006, 86 in 2018
    assert (row.hours[0].sum(), row.hours[1].sum()) == (86, 220)
    assert row.peak_hours(0) == [0] and row.peak_hours(1) == [2]
    # 2018 has expected counts below 5, hence a Monte Carlo p-value; it agrees with the
    # textbook chi-square on the 23 hours that are not empty in both years
    table = row.hours[:, row.hours.sum(axis=0) > 0].astype(float)
    expected = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / table.sum()
    chi2 = float(((table - expected) ** 2 / expected).sum())
    assert "Monte Carlo" in row.hour_test.test
    assert row.hour_test.statistic == pytest.approx(chi2)
    assert row.hour_test.dof == 22
    assert row.hour_test.p_value == pytest.approx(stats.chi2.sf(chi2, 22), abs=0.03)
    # no evidence that the hour-of-day distribution of shootings shifted between 2006 and 2018
    assert row.hour_test.p_value > 0.3


@pytest.fixture(scope="module")
def west_yorkshire() -> pd.DataFrame:
    files = [DATA / "west-yorkshire" / f"20{y}-07-west-yorkshire-street.csv.gz" for y in (17, 18)]
    return pd.concat([imported(f, "police_uk") for f in files], ignore_index=True)


def test_west_yorkshire_july_over_july(west_yorkshire: pd.DataFrame) -> None:
    july = Period(date(2018, 7, 1), date(2018, 7, 31))
    res = compare(west_yorkshire, july, tz="Europe/London")
    assert res.baseline == Period(date(2017, 7, 1), date(2017, 7, 31))
    rows = {r["category"]: r for r in res.as_dict()["rows"]}
    raw = {
        y: pd.read_csv(DATA / "west-yorkshire" / f"20{y}-07-west-yorkshire-street.csv.gz")
        for y in (17, 18)
    }
    assert (rows["all"]["current"], rows["all"]["previous"]) == (31635, 28537)
    for crime_type, code in [
        ("Burglary", "burglary"),
        ("Robbery", "robbery"),
        ("Shoplifting", "shoplifting"),
        ("Drugs", "drugs"),
    ]:
        counts = [int((raw[y]["Crime type"] == crime_type).sum()) for y in (18, 17)]
        assert [rows[code]["current"], rows[code]["previous"]] == counts

    # clearance from the outcome column, counted here from the raw outcome text
    solved_words = {
        "Offender given a caution",
        "Awaiting court outcome",
        "Local resolution",
        "Offender given community sentence",
        "Offender sent to prison",
        "Offender fined",
        "Court result unavailable",
        "Suspect charged as part of another case",
        "Defendant found not guilty",
        "Offender given suspended prison sentence",
        "Offender given penalty notice",
        "Offender given conditional discharge",
        "Court case unable to proceed",
        "Offender otherwise dealt with",
        "Offender ordered to pay compensation",
        "Offender given a drugs possession warning",
        "Defendant sent to Crown Court",
        "Offender given absolute discharge",
        "Offender deprived of property",
        "Offender given a caution or conditional caution",
    }
    res = clearance(west_yorkshire, july, tz="Europe/London", categories=["burglary", "all"])
    rows = {r["category"]: r for r in res.as_dict()["rows"]}
    for y, suffix in ((18, ""), (17, "_previous")):
        burglary = raw[y][raw[y]["Crime type"] == "Burglary"]
        solved = int(burglary["Last outcome category"].isin(solved_words).sum())
        assert rows["burglary"][f"recorded{suffix}"] == len(burglary)
        assert rows["burglary"][f"solved{suffix}"] == solved
        assert rows["burglary"][f"rate{suffix}"] == pytest.approx(solved / len(burglary))
    assert rows["all"]["change_pp"] == pytest.approx(
        100 * (rows["all"]["rate"] - rows["all"]["rate_previous"])
    )


def test_west_yorkshire_refuses_days_and_hours(west_yorkshire: pd.DataFrame) -> None:
    july = Period(date(2018, 7, 1), date(2018, 7, 31))
    with pytest.raises(InsufficientPrecisionError, match="known only to the month"):
        quiet_days(west_yorkshire, july, tz="Europe/London")
    with pytest.raises(InsufficientPrecisionError, match="known only to the month"):
        profile(west_yorkshire, july, tz="Europe/London")
    with pytest.raises(InsufficientPrecisionError, match="first and end on the last"):
        compare(west_yorkshire, Period(date(2018, 7, 1), date(2018, 7, 14)), tz="Europe/London")


def test_nashville_through_the_database(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Runs on SQLite and on PostgreSQL (skipped with the reason when no server answers)."""
    from citywatch.incidents.storage import insert_incidents
    from citywatch.store.db import make_engine, upgrade

    path = DATA / "nashville" / "calls_2024_partial.csv"
    url = db_url
    engine = make_engine(url)
    upgrade(engine)
    with engine.begin() as conn:
        insert_incidents(conn, imported(path, "nashville"))
    engine.dispose()
    code, out, err = run(
        [
            "stats",
            "quiet-days",
            "--from",
            "2024-01-01",
            "--to",
            "2024-07-31",
            "--db",
            url,
            "--tz",
            "America/Chicago",
            "--by",
            "station",
            "-c",
            "burglary",
            "--json",
        ],
        capsys,
    )
    assert code == 0, err
    rows = {r["jurisdiction"]: r for r in json.loads(out)["rows"]}
    raw = pd.read_csv(
        path, encoding="utf-8-sig", usecols=["Tencode Description", "Sector", "Call_Received"]
    )
    received = pd.to_datetime(raw["Call_Received"]).dt.date  # local (America/Chicago) times
    imported_rows = imported(path, "nashville")
    burglary_ids = set(imported_rows.loc[imported_rows["category"] == "burglary", "source_id"])
    assert burglary_ids  # the mapping sends burglary calls to the burglary category
    first_data = received.min()
    sectors = [s for s in rows if s != "unassigned"]
    assert len(sectors) >= 8
    for sector in sectors:
        row = rows[sector]
        sel = raw["Sector"].astype(str) == sector
        days = set(received[sel & raw["Tencode Description"].str.contains("BURGLARY", na=False)])
        zero, longest, first, current = brute_force_quiet(
            days, date(2024, 1, 1), date(2024, 7, 31), first_data
        )
        assert row["zero_days"] == zero, sector
        assert row["longest_zero_run"]["days"] == longest
        assert row["longest_zero_run"]["first"] == (first.isoformat() if first else None)
        assert row["current_zero_run"]["days"] == current
