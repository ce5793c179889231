"""``citywatch stats near-repeat`` and ``stats knox`` end to end: CSV, NRC form, lon/lat, store."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pyproj import Transformer

from citywatch.analytics.knox import knox
from citywatch.analytics.nearrepeat import Bands, near_repeat
from tests.analytics import nrc
from tests.analytics.conftest import make_incidents
from tests.helpers import run

CHICAGO_CRS = "EPSG:26971"  # the burglaries' projected coordinates (Illinois East, metres)
BANDS = ["--spatial-band", "100", "--spatial-bands", "3", "--temporal-band", "2"]
BANDS += ["--temporal-bands", "2"]


def subset(n: int) -> pd.DataFrame:
    frame = nrc.burglaries()
    return frame[frame["year"] == 2016].head(n).reset_index(drop=True)


def test_nrc_2016_table_from_the_bundled_csv(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The year's rows of the 4-year file, DD/MM/YYYY dates read as the NRC reads them."""
    path = tmp_path / "chicago_2016.csv"
    frame = nrc.burglaries()
    frame[frame["year"] == 2016][["x", "y", "date_single"]].to_csv(path, index=False)
    png = tmp_path / "heat.png"
    args = ["stats", "near-repeat", str(path), "--date", "date_single", *BANDS]
    args += ["--iterations", "19", "--seed", "3", "--nrc-precision", "--png", str(png)]
    code, out, _ = run([*args, "--json", "--lang", "en"], capsys)
    assert code == 0
    data = json.loads(out)
    assert data["observed"] == nrc.verbose_observed().tolist()
    assert (data["iterations"], data["pairs"], data["seed"]) == (19, 11_701 * 11_700 // 2, 3)
    assert data["rows"][1] == "0-100 m" and data["columns"][0] == "0-1 days"
    assert min(min(row) for row in data["p_value"]) == 0.05  # = 1 / (1 + 19)
    assert any("percent more likely than expected" in line for line in data["verdict"])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    code, out, _ = run(args, capsys)  # the tables and the Chinese verdict
    assert code == 0 and "same location" in out and "近重复" in out


def test_headerless_nrc_form_and_lonlat_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = subset(2500)
    nrc_form = tmp_path / "nrc.csv"
    events[["x", "y", "date_single"]].to_csv(nrc_form, index=False, header=False)
    common = [*BANDS, "--iterations", "9", "--seed", "1", "--json"]
    code, out, _ = run(["stats", "near-repeat", str(nrc_form), "--no-header", *common], capsys)
    assert code == 0
    xy = events[["x", "y"]].to_numpy()
    expected = near_repeat(xy, events["day"].to_numpy(), Bands(100, 3, 2, 2), iterations=9, seed=1)
    assert json.loads(out)["observed"] == expected.observed.tolist()
    assert json.loads(out)["expected"] == expected.expected.tolist()

    to_lonlat = Transformer.from_crs(CHICAGO_CRS, "EPSG:4326", always_xy=True)
    lon, lat = to_lonlat.transform(events["x"].to_numpy(), events["y"].to_numpy())
    lonlat = tmp_path / "lonlat.csv"
    pd.DataFrame({"lon": lon, "lat": lat, "when": events["date_single"]}).to_csv(
        lonlat, index=False
    )
    args = ["stats", "near-repeat", str(lonlat), "--x", "lon", "--y", "lat", "--date", "when"]
    code, out, _ = run([*args, "--lonlat", "--crs", CHICAGO_CRS, *common], capsys)
    assert code == 0
    back = np.column_stack(
        Transformer.from_crs("EPSG:4326", CHICAGO_CRS, always_xy=True).transform(lon, lat)
    )
    assert np.abs(back - xy).max() < 1e-3
    again = near_repeat(back, events["day"].to_numpy(), Bands(100, 3, 2, 2), iterations=9, seed=1)
    assert json.loads(out)["observed"] == again.observed.tolist()
    code, _, err = run([*args, "--lonlat", *common], capsys)
    assert code == 1 and "Error: lon/lat needs a metric CRS" in err


def test_knox_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    events = subset(3000)
    path = tmp_path / "events.csv"
    events.assign(t=events["day"] - events["day"].min() + 0.5).to_csv(path, index=False)
    args = ["stats", "knox", str(path), "--distance", "250", "--days", "5", "--seed", "8"]
    code, out, _ = run([*args, "--time", "date_single", "--iterations", "49", "--json"], capsys)
    assert code == 0
    data = json.loads(out)
    direct = knox(
        events[["x", "y"]].to_numpy(), events["day"].to_numpy(), 250, 5, iterations=49, seed=8
    )
    assert data["statistic"] == direct.statistic and data["n_time"] == direct.n_time
    assert data["p_permutation"] == direct.p_permutation and data["p_poisson"] == direct.p_poisson
    # the same times as fractional day numbers
    code, out, _ = run(
        [*args, "--time", "t", "--time-unit", "days", "--iterations", "9", "--json"], capsys
    )
    assert code == 0 and json.loads(out)["statistic"] == direct.statistic
    code, out, _ = run([*args, "--time", "date_single", "--iterations", "9"], capsys)
    assert code == 0 and "p (permutation)" in out


def test_clear_errors_and_skipped_rows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "events.csv"
    path.write_text("x,y,date\n0,0,2024-01-01\n50,0,2024-01-02\n,3,2024-01-02\n9,9,not a date\n")
    code, out, err = run(
        ["stats", "near-repeat", str(path), *BANDS, "--iterations", "5", "--json"], capsys
    )
    assert code == 0 and json.loads(out)["observed"][1][0] == 1
    assert "skipped 2 row(s)" in err and "first: line 4" in err
    code, _, err = run(["stats", "near-repeat", str(path), "--date", "when", *BANDS], capsys)
    assert code == 1 and "Error:" in err and "no column(s) when" in err
    code, _, err = run(
        ["stats", "near-repeat", str(path), *BANDS, "--distance", "chebyshev"], capsys
    )
    assert code == 1 and "Error: unknown distance" in err
    code, _, err = run(["stats", "near-repeat", *BANDS], capsys)
    assert code == 1 and "Error: give a CSV FILE, or read the store" in err
    code, _, err = run(["stats", "near-repeat", str(path), *BANDS, "--db", "sqlite://"], capsys)
    assert code == 1 and "either FILE or --db" in err
    code, _, err = run(["stats", "near-repeat", str(path), *BANDS, "--lang", "fr"], capsys)
    assert code == 1 and "Error: unknown language 'fr'" in err
    code, _, err = run(["stats", "knox", str(tmp_path / "missing.csv")], capsys)
    assert code == 1 and "Error: cannot read" in err


def test_near_repeat_from_the_store(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Burglaries stored as incidents (lon/lat, local noon): the same table as from the file."""
    from citywatch.incidents.storage import insert_incidents
    from citywatch.store.db import make_engine, upgrade

    events = subset(1500)
    lon, lat = Transformer.from_crs(CHICAGO_CRS, "EPSG:4326", always_xy=True).transform(
        events["x"].to_numpy(), events["y"].to_numpy()
    )
    noon = (
        pd.to_datetime(events["date_single"], format="%d/%m/%Y") + pd.Timedelta(hours=12)
    ).astype(str)
    frame = make_incidents(list(noon), "America/Chicago", categories=["burglary"] * len(events))
    frame["lon"], frame["lat"] = lon, lat
    frame.loc[0, ["lon", "lat"]] = np.nan  # reported, not silently dropped
    frame.loc[1, "category"] = "robbery"  # filtered out by the category
    engine = make_engine(db_url)
    upgrade(engine)
    with engine.begin() as conn:
        insert_incidents(conn, frame)
    engine.dispose()
    args = ["stats", "near-repeat", "--db", db_url, "--crs", CHICAGO_CRS, "--tz", "America/Chicago"]
    args += ["-c", "burglary", *BANDS, "--iterations", "9", "--seed", "2", "--json"]
    code, out, err = run(args, capsys)
    assert code == 0, err
    assert "skipped 1 incident(s) without a location" in err
    back = np.column_stack(
        Transformer.from_crs("EPSG:4326", CHICAGO_CRS, always_xy=True).transform(lon, lat)
    )
    direct = near_repeat(
        back[2:], events["day"].to_numpy()[2:], Bands(100, 3, 2, 2), iterations=9, seed=2
    )
    assert json.loads(out)["observed"] == direct.observed.tolist()
    code, out, _ = run([*args, "--from", "2016-01-05", "--to", "2016-01-10"], capsys)
    days = events["day"].to_numpy()[2:]
    first, last = (
        pd.Timestamp(d).to_datetime64().astype("datetime64[D]").astype(int)
        for d in ("2016-01-05", "2016-01-10")
    )
    n = int(((days >= first) & (days <= last)).sum())
    assert code == 0 and json.loads(out)["events"] == n
