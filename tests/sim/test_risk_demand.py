"""A forecast's risk surface as the simulator's demand: locations drawn cell by weight."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import shapely
from pyproj import Transformer
from scipy import stats
from typer.testing import CliRunner

from citywatch.city import CityPack
from citywatch.cli import app
from citywatch.errors import DataError
from citywatch.forecast.pipeline import risk_table, write_risk_geojson
from citywatch.forecast.surface import Surface, grid_surface
from citywatch.plan.risk import read_risk_surface
from tests.sim.test_cli import write

MIDTOWN = (-73.9855, 40.7580)


def _grid(pack: CityPack, nx: int, ny: int, cell_m: float = 250.0) -> Surface:
    """A grid of ``nx`` x ``ny`` squares of ``cell_m`` starting at Midtown (all on land)."""
    to_m = Transformer.from_crs("EPSG:4326", pack.crs, always_xy=True)
    x0, y0 = to_m.transform(*MIDTOWN)
    xs, ys = np.meshgrid(np.arange(nx) + 0.5, np.arange(ny) + 0.5)
    points = np.column_stack([x0 + xs.ravel() * cell_m, y0 + ys.ravel() * cell_m])
    return grid_surface(cell_m, pack.crs, points=points)


def test_drawn_locations_follow_the_surface(tmp_path: Path, pack: CityPack) -> None:
    surface = _grid(pack, 6, 5)
    risk = np.array([(k * 7) % 5 for k in range(len(surface))], dtype=float)  # zeros included
    write_risk_geojson(surface, risk, tmp_path / "risk.geojson", {"predictor": "kde"})
    read = read_risk_surface(tmp_path / "risk.geojson")
    assert len(read) == 30 and read.meta == {"predictor": "kde"}
    np.testing.assert_array_equal(read.weight, risk)
    n = 20_000
    cells, lonlat = read.sample(n, np.random.default_rng(13))
    # each point lies in the square of its cell: assign it back with the forecast's own grid
    x, y = Transformer.from_crs("EPSG:4326", pack.crs, always_xy=True).transform(*lonlat.T)
    back = surface.assign(np.column_stack([x, y]))
    assert (back == cells).mean() > 0.999
    observed = np.bincount(back[back >= 0], minlength=len(surface))
    assert observed[risk == 0].sum() == 0
    expected = n * risk / risk.sum()
    used = risk > 0
    chi2 = float((((observed - expected) ** 2)[used] / expected[used]).sum())
    df = int(used.sum()) - 1
    assert chi2 == pytest.approx(32.1915, abs=1e-3)  # seed 13, 23 degrees of freedom: p = 0.096
    assert chi2 < stats.chi2.ppf(0.999, df)
    # uniform inside a cell: the mean offset from the cell centre is about zero in both axes
    centre = surface.centroids[back[back >= 0]]
    offset = np.column_stack([x, y])[back >= 0] - centre
    assert np.all(np.abs(offset.mean(axis=0)) < 3.0)
    assert np.all(np.abs(offset).max(axis=0) <= 125.0 + 0.5)


def test_the_forecast_csv_and_bad_files(tmp_path: Path, pack: CityPack) -> None:
    surface = _grid(pack, 2, 2)
    table = risk_table(surface, np.array([1.0, 0.0, 2.0, 1.0]))
    table[["lon", "lat", "weight"]].to_csv(tmp_path / "risk.csv", index=False)
    read = read_risk_surface(tmp_path / "risk.csv")
    cells, lonlat = read.sample(4000, np.random.default_rng(1))
    np.testing.assert_allclose(lonlat, table[["lon", "lat"]].to_numpy()[cells])
    assert np.bincount(cells, minlength=4)[1] == 0
    (tmp_path / "zero.csv").write_text("lon,lat,weight\n-73.98,40.75,0\n")
    with pytest.raises(DataError, match="every weight is zero"):
        read_risk_surface(tmp_path / "zero.csv")
    (tmp_path / "bad.geojson").write_text('{"type": "FeatureCollection", "features": []}')
    with pytest.raises(DataError, match="FeatureCollection with features"):
        read_risk_surface(tmp_path / "bad.geojson")


def test_simulate_demand_draws_incidents_from_the_surface(
    tmp_path: Path, pack: CityPack, car_travel: object
) -> None:
    surface = _grid(pack, 2, 1)
    write_risk_geojson(surface, np.array([3.0, 1.0]), tmp_path / "risk.geojson")
    scenario = write(tmp_path, pack, "risk")
    out = tmp_path / "out"
    res = CliRunner().invoke(
        app,
        ["simulate", "run", str(scenario), "--demand", str(tmp_path / "risk.geojson"),
         "--out", str(out), "--workers", "1", "--json"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    inc = pd.read_parquet(out / "incidents.parquet")
    features = json.loads((tmp_path / "risk.geojson").read_text())["features"]
    squares = shapely.from_geojson([json.dumps(f["geometry"]) for f in features])
    inside = np.column_stack(
        [shapely.contains_xy(sq, inc["lon"].to_numpy(), inc["lat"].to_numpy()) for sq in squares]
    )
    assert inside.sum(axis=1).tolist() == [1] * len(inc)  # every incident in one of the squares
    first = int(inside[:, 0].sum())
    # the scenario's Poisson times (3 an hour for 12 hours, 2 replications), 3:1 by weight
    assert stats.binomtest(first, len(inc), 0.75).pvalue > 0.01
    assert res.stdout and json.loads(res.stdout)["incidents_total"] == len(inc)
    # without --demand the scenario's own two points are used
    plain = CliRunner().invoke(
        app, ["simulate", "run", str(scenario), "--out", str(tmp_path / "p"), "--workers", "1"]
    )
    assert plain.exit_code == 0
    own = pd.read_parquet(tmp_path / "p" / "incidents.parquet")[["lon", "lat"]].to_numpy()
    assert not np.any(shapely.contains_xy(squares[0], own[:, 0], own[:, 1]))


def test_scenario_names_its_surface(tmp_path: Path, pack: CityPack) -> None:
    from citywatch.sim.scenario import load_scenario

    path = write(tmp_path, pack, "named")
    text = path.read_text().replace(
        'category = "theft"', 'category = "theft"\nsurface = "r.geojson"'
    )
    path.write_text(text)
    assert load_scenario(path).demand.surface == tmp_path / "r.geojson"
