"""A city scope means the incidents of that city, on one database holding two countries.

The database holds every NYPD shooting of the five boroughs (imported without a pack, with the
source's precincts) and West Yorkshire's police.uk crimes.  Every expected number is counted
independently: from the raw CSV and the NYPD precinct polygons with shapely, never through the
code under test.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
import shapely
from shapely.geometry import shape

from citywatch.city import load_pack
from citywatch.incidents.jurisdiction import scope_to_pack
from citywatch.incidents.load import load_incidents
from citywatch.incidents.sources import read_source
from citywatch.incidents.storage import insert_incidents
from citywatch.store.db import make_engine, upgrade
from tests.helpers import MANHATTAN_PRECINCTS, run

DATA = Path(__file__).resolve().parents[2] / "data"
SHOOTINGS = DATA / "manhattan" / "nypd_shootings_historic.csv"
YORKSHIRE = [DATA / "west-yorkshire" / f"{y}-07-west-yorkshire-street.csv.gz" for y in (2017, 2018)]


def _valid(path: Path, source: str) -> pd.DataFrame:
    parsed = read_source(path, source)
    keep = parsed.reasons.isna().to_numpy(dtype=bool) & ~parsed.merged.to_numpy(dtype=bool)
    return parsed.records[keep]


@pytest.fixture(scope="module")
def mixed_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('mixed') / 'mixed.db'}"
    engine = make_engine(url)
    upgrade(engine)
    with engine.begin() as conn:
        insert_incidents(conn, _valid(SHOOTINGS, "nypd_shootings"))
        for path in YORKSHIRE:
            insert_incidents(conn, _valid(path, "police_uk"))
    engine.dispose()
    return url


@pytest.fixture(scope="module")
def manhattan_shootings() -> pd.DataFrame:
    """One row per shooting whose point lies in a Manhattan precinct polygon (raw file)."""
    raw = pd.read_csv(
        SHOOTINGS, usecols=["INCIDENT_KEY", "OCCUR_DATE", "PRECINCT", "Latitude", "Longitude"]
    ).drop_duplicates("INCIDENT_KEY")
    features = json.loads((DATA / "manhattan" / "nypd_precinct.geojson").read_text())["features"]
    manhattan = shapely.union_all(
        [
            shape(f["geometry"])
            for f in features
            if f["properties"]["precinct"] in MANHATTAN_PRECINCTS
        ]
    )
    inside = shapely.contains_xy(manhattan, raw["Longitude"], raw["Latitude"])
    out = raw[inside].copy()
    out["day"] = pd.to_datetime(out["OCCUR_DATE"], format="%m/%d/%Y").dt.date
    return out


def _compare(url: str, capsys: pytest.CaptureFixture[str], *args: str) -> dict:  # type: ignore[type-arg]
    code, out, err = run(["stats", "compare", "--db", url, "-c", "all", "--json", *args], capsys)
    assert code == 0, err
    return json.loads(out)  # type: ignore[no-any-return]


def test_city_scope_counts_only_that_city(
    mixed_db: str, manhattan_shootings: pd.DataFrame, capsys: pytest.CaptureFixture[str]
) -> None:
    per_year = Counter(d.year for d in manhattan_shootings["day"])
    doc = _compare(
        mixed_db, capsys, "--from", "2018-01-01", "--to", "2018-12-31", "--city", "manhattan"
    )
    (row,) = doc["rows"]
    assert (row["jurisdiction"], row["current"], row["previous"]) == (
        "manhattan",
        per_year[2018],
        per_year[2017],
    )
    # The West Yorkshire crimes of July 2017 and 2018 were what the city count used to include.
    july = _compare(
        mixed_db, capsys, "--from", "2018-07-01", "--to", "2018-07-31", "--city", "manhattan"
    )
    july_days = [d for d in manhattan_shootings["day"] if (d.year, d.month) == (2018, 7)]
    assert july["rows"][0]["current"] == len(july_days)
    assert any("outside the city pack" in n for n in july["notes"])


def test_city_and_bureau_count_the_same_incidents(
    mixed_db: str, manhattan_shootings: pd.DataFrame, capsys: pytest.CaptureFixture[str]
) -> None:
    window = ("--from", "2016-01-01", "--to", "2018-12-31", "--city", "manhattan")
    city = _compare(mixed_db, capsys, *window, "--by", "city")
    bureau = _compare(mixed_db, capsys, *window, "--by", "bureau")
    expected = sum(date(2016, 1, 1) <= d <= date(2018, 12, 31) for d in manhattan_shootings["day"])
    assert city["rows"][0]["current"] == expected
    by_bureau = {r["jurisdiction"]: r["current"] for r in bureau["rows"]}
    assert set(by_bureau) == {"PBMN", "PBMS"}  # no 'unassigned': every one has its bureau
    assert sum(by_bureau.values()) == expected


def test_a_bronx_precinct_never_appears_in_the_manhattan_report(
    mixed_db: str,
    manhattan_shootings: pd.DataFrame,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    # One shooting recorded by the Bronx's 40th precinct lies inside Manhattan's 34th.
    (bronx,) = manhattan_shootings[manhattan_shootings["PRECINCT"] == 40]["day"]
    year = str(bronx.year)
    out = tmp_path / "compstat.html"
    code, stdout, err = run(
        [
            "report",
            "compstat",
            "--from",
            f"{year}-01-01",
            "--to",
            f"{year}-12-31",
            "--out",
            str(out),
            "--lang",
            "en",
            "--city",
            "manhattan",
            "--db",
            mixed_db,
            "--json",
        ],
        capsys,
    )
    assert code == 0, err
    rows = json.loads(stdout)["compare"]["rows"]
    stations = {r["jurisdiction"] for r in rows}
    assert "40" not in stations and stations <= set(MANHATTAN_PRECINCTS)
    in_year = manhattan_shootings[[d.year == bronx.year for d in manhattan_shootings["day"]]]
    p34 = sum(r["current"] for r in rows if r["jurisdiction"] == "34" and r["category"] == "all")
    assert p34 == int((in_year["PRECINCT"].isin([34, 40])).sum())


def test_source_filters(mixed_db: str, capsys: pytest.CaptureFixture[str]) -> None:
    yorkshire = len(_valid(YORKSHIRE[1], "police_uk"))
    window = ("--from", "2018-07-01", "--to", "2018-07-31", "--tz", "Europe/London")
    only_uk = _compare(mixed_db, capsys, *window, "--source", "police_uk")
    assert only_uk["rows"][0]["current"] == yorkshire
    only_ny = _compare(mixed_db, capsys, *window, "--source", "nypd_shootings")
    raw = pd.read_csv(
        SHOOTINGS, usecols=["INCIDENT_KEY", "OCCUR_DATE", "OCCUR_TIME"]
    ).drop_duplicates("INCIDENT_KEY")
    # New York wall-clock times, counted on London's calendar as the command was asked to.
    local = pd.to_datetime(raw["OCCUR_DATE"] + " " + raw["OCCUR_TIME"], format="%m/%d/%Y %H:%M:%S")
    london = local.dt.tz_localize("America/New_York", ambiguous="NaT").dt.tz_convert(
        "Europe/London"
    )
    in_july = (london.dt.year == 2018) & (london.dt.month == 7)
    assert only_ny["rows"][0]["current"] == int(in_july.sum())
    both = _compare(
        mixed_db, capsys, *window, "--source", "nypd_shootings", "--source", "police_uk"
    )
    assert (
        both["rows"][0]["current"] == only_uk["rows"][0]["current"] + only_ny["rows"][0]["current"]
    )
    none = _compare(mixed_db, capsys, *window, "--city", "manhattan", "--source", "police_uk")
    assert none["rows"][0]["current"] == 0


def test_one_loader_and_scope_for_every_command(
    mixed_db: str, manhattan_shootings: pd.DataFrame
) -> None:
    pack = load_pack("manhattan")
    loaded = load_incidents(mixed_db, pack=pack)
    frame = loaded.frame
    assert len(frame) == len(manhattan_shootings)
    assert set(frame["source"]) == {"nypd_shootings"}
    assert frame["bureau"].notna().all() and frame["station"].isin(MANHATTAN_PRECINCTS).all()
    # Every stored incident is either kept or counted as left out, by reason.
    stored = len(_valid(SHOOTINGS, "nypd_shootings")) + sum(
        len(_valid(p, "police_uk")) for p in YORKSHIRE
    )
    assert len(frame) + sum(loaded.dropped.values()) == stored
    assert set(loaded.dropped) == {
        "outside the city pack",
        "no location and no jurisdiction of the city pack",  # police.uk rows without a point
    }
    # The same rules on the raw file: same incidents.
    from_file = load_incidents(files=[(SHOOTINGS, "nypd_shootings")], database=False, pack=pack)
    assert sorted(from_file.frame["id"]) == sorted(frame["id"])
    _, _, report = scope_to_pack(_valid(SHOOTINGS, "nypd_shootings"), pack)
    assert report.foreign == 1
