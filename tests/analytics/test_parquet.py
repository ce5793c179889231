"""Statistics out of core: a Parquet dataset read with dask gives the in-memory numbers."""

from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from citywatch.analytics.compare import clearance, compare
from citywatch.analytics.parquet import reduced_frame
from citywatch.analytics.profile import profile
from citywatch.analytics.quiet import quiet_days
from citywatch.analytics.scope import WEIGHT, Period
from citywatch.errors import DataError, NotFoundError, ValidationError
from citywatch.incidents.parquet import ANY_CITY, dataset_cities, open_dataset, write_dataset
from citywatch.incidents.storage import insert_incidents, iter_incident_frames, load_incidents_frame
from citywatch.store.db import make_engine, upgrade
from tests.analytics.conftest import random_incidents
from tests.helpers import run

NY = "America/New_York"
STATIONS = ["1", "5", "14"]


@pytest.fixture(scope="module")
def incidents() -> pd.DataFrame:
    # three winters and the DST change of March: local days and hours differ from UTC ones
    frame = random_incidents(7, "2022-01-01", "2024-04-01", 6000, NY, STATIONS)
    frame.loc[frame.index % 11 == 0, "station"] = None  # counted under 'unassigned'
    frame.loc[frame.index % 7 == 0, "solved"] = pd.NA
    return frame


@pytest.fixture(scope="module")
def dataset(incidents: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("pq") / "ds"
    chunks = [incidents.iloc[i : i + 1000] for i in range(0, len(incidents), 1000)]
    written = write_dataset(chunks, folder)
    assert sum(written.rows.values()) == len(incidents)
    assert written.months == {f"{y}-{m:02d}" for y in (2022, 2023) for m in range(1, 13)} | {
        "2024-01",
        "2024-02",
        "2024-03",
    }
    return folder


@pytest.mark.parametrize("by", ["city", "station"])
def test_every_statistic_equals_the_in_memory_one(
    incidents: pd.DataFrame, dataset: Path, by: str
) -> None:
    reduced = reduced_frame(dataset, tz=NY, by=by)
    assert int(reduced[WEIGHT].sum()) == len(incidents)
    assert len(reduced) < len(incidents)  # a reduction, not a copy
    period = Period(date(2023, 11, 1), date(2024, 2, 29))
    for stat in (compare, clearance, profile):
        expected = stat(incidents, period, tz=NY, by=by, categories=["all", "theft", "robbery"])
        got = stat(reduced, period, tz=NY, by=by, categories=["all", "theft", "robbery"])
        assert got.as_dict() == expected.as_dict(), stat.__name__
    expected_q = quiet_days(incidents, period, tz=NY, by=by)
    assert quiet_days(reduced, period, tz=NY, by=by).as_dict() == expected_q.as_dict()
    # by local day, the counts and the zero days are still exact, from fewer rows
    daily = reduced_frame(dataset, tz=NY, by=by, resolution="day")
    assert len(daily) < len(reduced) and int(daily[WEIGHT].sum()) == len(incidents)
    for stat in (compare, clearance, quiet_days):
        expected = stat(incidents, period, tz=NY, by=by)
        assert stat(daily, period, tz=NY, by=by).as_dict() == expected.as_dict(), stat.__name__
    with pytest.raises(ValidationError, match="unknown resolution"):
        reduced_frame(dataset, tz=NY, resolution="minute")
    # the numbers are real: robberies are about a fifth of the incidents
    rows = compare(reduced, period, tz=NY, by=by, categories=["robbery", "all"]).as_dict()["rows"]
    robbery = sum(r["current"] for r in rows if r["category"] == "robbery")
    total = sum(r["current"] for r in rows if r["category"] == "all")
    assert 0.15 < robbery / total < 0.25


def test_months_outside_the_days_are_never_read(dataset: Path, tmp_path: Path) -> None:
    broken = tmp_path / "ds"
    shutil.copytree(dataset, broken)
    (broken / f"city={ANY_CITY}" / "month=2022-03" / "part-broken.parquet").write_text(
        "not parquet"
    )
    reduced = reduced_frame(broken, tz=NY, first_day=date(2023, 1, 1), last_day=date(2023, 1, 31))
    days = reduced["received_at"].dt.tz_convert("UTC").dt.strftime("%Y-%m")
    assert set(days) == {"2022-12", "2023-01", "2023-02"}  # a day's margin for the time zone
    with pytest.raises(DataError, match="cannot read"):
        reduced_frame(broken, tz=NY, first_day=date(2022, 3, 1), last_day=date(2022, 3, 31))


def test_partitions_by_city_and_refuses_to_count_twice(
    incidents: pd.DataFrame, tmp_path: Path
) -> None:
    folder = tmp_path / "ds"
    write_dataset([incidents], folder)
    assert dataset_cities(folder) == [ANY_CITY]
    with pytest.raises(ValidationError, match="twice"):
        write_dataset([incidents], folder)
    again = write_dataset([incidents.iloc[:100]], folder, overwrite=True)
    assert again.rows == {ANY_CITY: 100}
    assert len(open_dataset(folder, ["received_at"]).compute()) == 100
    with pytest.raises(NotFoundError, match="holds no incidents of 'paris'"):
        open_dataset(folder, ["received_at"], city="paris")
    with pytest.raises(NotFoundError, match="no Parquet dataset"):
        open_dataset(tmp_path / "missing", ["received_at"])


def test_a_reduced_frame_with_a_bad_weight_is_refused(incidents: pd.DataFrame) -> None:
    period = Period(date(2023, 1, 1), date(2023, 1, 31))
    with pytest.raises(DataError, match="counts >= 1"):
        compare(incidents.assign(**{WEIGHT: 0}), period, tz=NY)


def test_store_streams_in_chunks(incidents: pd.DataFrame, tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'a.db'}")
    upgrade(engine)
    with engine.begin() as conn:
        insert_incidents(conn, incidents.iloc[:2500])
    chunks = list(iter_incident_frames(engine, chunk_rows=1000))
    assert [len(c) for c in chunks] == [1000, 1000, 500]
    pd.testing.assert_frame_equal(
        pd.concat(chunks, ignore_index=True), load_incidents_frame(engine)
    )
    engine.dispose()


def test_cli_export_and_stats_match_the_database(
    incidents: pd.DataFrame, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    engine = make_engine(url)
    upgrade(engine)
    with engine.begin() as conn:
        insert_incidents(conn, incidents)
    engine.dispose()
    folder = tmp_path / "ds"
    code, out, _ = run(
        ["incidents", "export", "--parquet", str(folder), "--db", url, "--json"], capsys
    )
    assert code == 0 and json.loads(out)["rows"] == len(incidents)
    code, _, err = run(["incidents", "export", "--parquet", str(folder), "--db", url], capsys)
    assert code == 1 and "--overwrite" in err
    code, _, err = run(["incidents", "export", "--parquet", str(folder), "--out", "x.csv"], capsys)
    assert code == 2 and "either --out FILE or --parquet DIR" in err
    for command in ("compare", "quiet-days", "profile", "clearance"):
        args = ["stats", command, "--from", "2023-12-01", "--to", "2024-01-31", "--tz", NY]
        args += ["--by", "station", "--json"]
        code, db_out, _ = run([*args, "--db", url], capsys)
        assert code == 0, command
        code, pq_out, _ = run([*args, "--parquet", str(folder)], capsys)
        assert code == 0, command
        from_db, from_pq = json.loads(db_out), json.loads(pq_out)
        assert from_pq.pop("notes")[0].startswith("read out of core")
        from_db.pop("notes")
        assert from_pq == from_db, command
    code, _, err = run([*args, "--db", url, "--parquet", str(folder)], capsys)
    assert code == 2 and "not several" in err
