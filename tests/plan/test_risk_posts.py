"""``plan posts --demand`` reads the forecast's GeoJSON through the shared risk-surface reader."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pyproj import Transformer
from typer.testing import CliRunner

from citywatch.city import load_pack
from citywatch.forecast.pipeline import write_risk_geojson
from citywatch.forecast.surface import grid_surface
from citywatch.plan.cli import app


def test_posts_from_a_forecast_geojson(tmp_path: Path) -> None:
    pack = load_pack("manhattan")
    x0, y0 = Transformer.from_crs("EPSG:4326", pack.crs, always_xy=True).transform(
        -73.9855, 40.7580
    )
    points = np.column_stack([x0 + 250.0 * np.arange(6) + 125, np.full(6, y0 + 125)])
    surface = grid_surface(250.0, pack.crs, points=points)
    risk = np.array([0.5, 2.0, 0.0, 1.0, 3.0, 0.25])
    write_risk_geojson(surface, risk, tmp_path / "risk.geojson")
    result = CliRunner().invoke(
        app,
        ["posts", "manhattan", "--demand", str(tmp_path / "risk.geojson"), "--cars", "2",
         "--radius", "60", "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    # every square's centre in Midtown is on the network: the whole risk is demand
    assert doc["incidents"]["off_network"] == 0
    assert doc["total_weight"] == pytest.approx(risk.sum())
    assert len(doc["posts"]) == 2
