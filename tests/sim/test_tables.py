"""``simulate run --tables``: the records and KPI tables as CSV and GIS files."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from citywatch.city import CityPack
from citywatch.cli import app
from tests.helpers import run
from tests.sim.test_cli import write


@pytest.mark.parametrize("fmt", ["gpkg", "csv"])
def test_tables_hold_the_records_and_the_summary_kpis(
    tmp_path: Path, pack: CityPack, car_travel: object, fmt: str
) -> None:
    scenario = write(tmp_path, pack, "small")
    out = tmp_path / "out"
    args = ["simulate", "run", str(scenario), "--out", str(out), "--workers", "1", "--json"]
    res = CliRunner().invoke(app, [*args, "--tables", fmt])
    assert res.exit_code == 0, res.output
    s = json.loads(res.stdout)
    folder = out / "tables"
    read = pd.read_csv if fmt == "csv" else gpd.read_file
    incidents = read(folder / f"incidents.{fmt}")
    records = pd.read_parquet(out / "incidents.parquet")
    assert len(incidents) == len(records) == s["incidents_total"] > 0
    assert incidents["id"].tolist() == records["id"].tolist()
    if fmt == "gpkg":
        assert incidents.crs.to_epsg() == 4326
        np.testing.assert_allclose(incidents.geometry.x, records["lon"])
        np.testing.assert_allclose(incidents.geometry.y, records["lat"])
    by_station = read(folder / f"kpis_by_station.{fmt}")
    by_station["station"] = by_station["station"].astype(str)
    if fmt == "gpkg":
        shapes = {j.id: j.geometry for j in pack.level("station")}
        for row in by_station.itertuples():
            assert row.geometry.equals_exact(shapes[row.station], 1e-9)
    assert set(by_station["station"]) == set(s["by_station"])
    for row in by_station.to_dict("records"):
        for kpi, stats in s["by_station"][row["station"]].items():
            for stat, value in stats.items():
                got = row[f"{kpi}_{stat}"]
                assert (value is None and pd.isna(got)) or np.isclose(got, value), (kpi, stat)
    assert (folder / f"kpis_by_zone.{fmt}").stat().st_size > 0


def test_unknown_table_format_is_refused_before_simulating(
    tmp_path: Path, pack: CityPack, capsys: pytest.CaptureFixture[str]
) -> None:
    scenario = write(tmp_path, pack, "small")
    code, _, err = run(["simulate", "run", str(scenario), "--tables", "xlsx"], capsys)
    assert code == 1 and err.startswith("Error: unknown format 'xlsx'")
