from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import shapely
from shapely.geometry import shape

from citywatch.city.coords import (
    bd09_to_gcj02,
    bd09_to_wgs84,
    from_wgs84,
    gcj02_to_bd09,
    gcj02_to_wgs84,
    to_wgs84,
    wgs84_to_bd09,
    wgs84_to_gcj02,
)
from citywatch.city.network import haversine_m

DATA = Path(__file__).resolve().parents[2] / "data"


def test_gcj02_reference_point() -> None:
    # Tiananmen: WGS-84 (116.397428, 39.90923) is published as GCJ-02 (116.403672, 39.910634).
    lon, lat = wgs84_to_gcj02(116.397428, 39.90923)
    assert lon == pytest.approx(116.403672, abs=2e-6)
    assert lat == pytest.approx(39.910634, abs=2e-6)


def test_round_trips_are_exact() -> None:
    rng = np.random.default_rng(1)
    lon = rng.uniform(98, 125, 500)
    lat = rng.uniform(20, 45, 500)
    back = gcj02_to_wgs84(*wgs84_to_gcj02(lon, lat))
    np.testing.assert_allclose(back, (lon, lat), atol=1e-9)
    back = bd09_to_wgs84(*wgs84_to_bd09(lon, lat))
    np.testing.assert_allclose(back, (lon, lat), atol=1e-9)
    back = bd09_to_gcj02(*gcj02_to_bd09(lon, lat))
    np.testing.assert_allclose(back, (lon, lat), atol=1e-9)
    np.testing.assert_allclose(
        to_wgs84(*from_wgs84(lon, lat, "bd09"), "bd09"), (lon, lat), atol=1e-9
    )


def test_offset_is_a_few_hundred_metres_in_china_and_zero_outside() -> None:
    lon, lat = wgs84_to_gcj02(102.71, 25.04)  # Kunming
    shift = float(haversine_m(102.71, 25.04, lon, lat))
    assert 100 < shift < 700
    assert wgs84_to_gcj02(-73.98, 40.75) == (-73.98, 40.75)  # Manhattan is not shifted


def test_kunming_gcj02_boundaries_convert() -> None:
    features = json.loads((DATA / "kunming/kunming_districts_fc.geojson").read_text())["features"]
    wuhua = next(f for f in features if f["properties"]["name"] == "五华区")
    gcj = shape(wuhua["geometry"])
    wgs = shapely.transform(gcj, lambda xy: np.column_stack(gcj02_to_wgs84(xy[:, 0], xy[:, 1])))
    c1, c2 = gcj.centroid, wgs.centroid
    shift = float(haversine_m(c1.x, c1.y, c2.x, c2.y))
    # The GCJ-02 datum shifts Kunming by roughly 300-600 m, nearly rigidly at district scale.
    assert 200 < shift < 700
    assert wgs.area == pytest.approx(gcj.area, rel=5e-3)  # not rigid: ~0.2 % stretch
