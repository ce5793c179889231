"""Incidents exported as GeoJSON, GeoPackage and GeoParquet read back as the stored records."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest

from citywatch.incidents.storage import load_incidents_frame
from tests.helpers import run
from tests.incidents.test_sources import NASHVILLE


@pytest.fixture(scope="module")
def calls_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The first 2,000 real Nashville calls (some without coordinates) in a fresh database."""
    folder = tmp_path_factory.mktemp("geo")
    calls = folder / "calls.csv"
    calls.write_bytes(b"".join(NASHVILLE.read_bytes().splitlines(keepends=True)[:2001]))
    db = f"sqlite:///{folder / 'calls.db'}"
    from citywatch.incidents.importer import import_file

    assert import_file(calls, "nashville", db=db).imported == 2_000
    return db


def _read(path: Path) -> gpd.GeoDataFrame:
    return gpd.read_parquet(path) if path.suffix == ".parquet" else gpd.read_file(path)


@pytest.mark.parametrize(
    ("name", "fmt", "time_unit"),
    [
        ("calls.geojson", None, "ms"),  # GDAL's GeoJSON and GeoPackage keep milliseconds
        ("calls.gpkg", None, "ms"),
        ("calls.parquet", None, "us"),
        ("calls.data", "geojson", "ms"),  # --format wins over the suffix
    ],
)
def test_export_geo_formats_round_trip(
    calls_db: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    fmt: str | None,
    time_unit: str,
) -> None:
    out = tmp_path / name
    extra = ["--format", fmt] if fmt else []
    code, printed, err = run(
        ["incidents", "export", "--db", calls_db, "--out", str(out), *extra, "--json"], capsys
    )
    assert code == 0, err
    assert json.loads(printed) == {"out": str(out), "rows": 2_000}
    stored = load_incidents_frame(calls_db).sort_values("id").reset_index(drop=True)
    back = _read(out).sort_values("id").reset_index(drop=True)
    assert back.crs.to_epsg() == 4326 and len(back) == 2_000
    assert list(back["id"]) == list(stored["id"])
    # Every incident is kept; those without a location have an empty geometry.
    located = stored["lon"].notna().to_numpy()
    assert 0 < (~located).sum() < 2_000
    assert (back.geometry.isna().to_numpy() | back.geometry.is_empty.to_numpy()).tolist() == (
        ~located
    ).tolist()
    np.testing.assert_array_equal(back.geometry.x[located], stored["lon"][located])
    np.testing.assert_array_equal(back.geometry.y[located], stored["lat"][located])
    for column in ("category", "station", "zone", "disposition"):
        assert back[column].fillna("").tolist() == stored[column].fillna("").tolist(), column
    assert back["priority"].tolist() == stored["priority"].tolist()
    received = pd.to_datetime(back["received_at"], utc=True)
    pd.testing.assert_series_equal(
        received.dt.floor(time_unit),
        stored["received_at"].dt.floor(time_unit),
        check_names=False,
        check_dtype=False,
    )


def test_export_refuses_an_unknown_format_before_reading(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing_db = f"sqlite:///{tmp_path / 'none.db'}"
    code, _, err = run(
        ["incidents", "export", "--db", missing_db, "--out", str(tmp_path / "x.shp")], capsys
    )
    assert code == 1 and err.startswith("Error: cannot tell the format of 'x.shp'")
    code, _, err = run(
        ["incidents", "export", "--out", str(tmp_path / "x.csv"), "--format", "kml"], capsys
    )
    assert code == 1 and err.startswith("Error: unknown format 'kml'")
