"""Flight scenarios (citywatch.sim.flights): fleets, robbery draws, bootstrap, and why the
motorcycle comparison can only differ where the pack has ways or speeds that differ by mode."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pyproj import Transformer

from citywatch.city import CityPack, load_pack
from citywatch.errors import DataError, ValidationError
from citywatch.pursuit.intercept import PursuitUnit, unit_etas
from citywatch.routing import Router
from citywatch.sim.cli_flights import write_robberies_csv
from citywatch.sim.flights import (
    ROBBERY_RADIUS_M,
    FlightScenario,
    bootstrap_mean,
    market_posts,
    mode_gap,
    robbery_nodes,
    run_flights,
)
from tests.helpers import run


@pytest.fixture(scope="module")
def baltimore() -> tuple[CityPack, Router]:
    pack = load_pack("baltimore")
    return pack, Router.from_pack(pack)


def test_manhattan_cars_and_motorcycles_have_the_same_etas() -> None:
    """Last session's "no difference": the Manhattan pack has no way closed to cars and one
    speed limit for both, so a motorcycle team's ETAs equal a car's at the same place."""
    pack = load_pack("manhattan")
    gap = mode_gap(pack)
    assert gap["motorcycle_only_edges"] == 0 and gap["motorcycle_faster_km"] == 0
    router = Router.from_pack(pack)
    at = (-73.9855, 40.7580)
    etas = unit_etas(
        router,
        [
            PursuitUnit("c", "patrol_car", "car", *at),
            PursuitUnit("m", "motorcycle", "motorcycle", *at),
        ],
    )
    assert np.array_equal(etas[0], etas[1])


def test_baltimore_alleys_are_motorcycle_only(baltimore: tuple[CityPack, Router]) -> None:
    pack, router = baltimore
    gap = mode_gap(pack)
    e = pack.network.edges
    alleys = int(e["service"].fillna("").eq("alley").sum())
    tracks = int(e["highway"].eq("track").sum())  # unpaved roads
    assert gap["motorcycle_only_edges"] == alleys + tracks and alleys > 20_000
    at = market_posts(pack, router, 1)[0]
    etas = unit_etas(
        router,
        [
            PursuitUnit("c", "patrol_car", "car", *at),
            PursuitUnit("m", "motorcycle", "motorcycle", *at),
        ],
    )
    reach_car, reach_moto = np.isfinite(etas[0]), np.isfinite(etas[1])
    assert reach_moto.sum() > reach_car.sum()  # alley-only nodes
    both = reach_car & reach_moto
    assert np.all(etas[1][both] <= etas[0][both] + 1e-6)  # never slower: same speeds, more ways


def test_market_posts_are_farthest_point_markets(baltimore: tuple[CityPack, Router]) -> None:
    pack, router = baltimore
    posts = market_posts(pack, router, 5)
    markets = {
        (p.geometry.centroid.x, p.geometry.centroid.y) for p in pack.places if p.kind == "market"
    }
    assert len(posts) == 5 and all(p in markets for p in posts)
    tr = Transformer.from_crs("EPSG:4326", router.crs, always_xy=True)
    xy = np.column_stack(tr.transform(*np.asarray(posts).T))
    # Each new post is the market farthest from those before: its distance never grows.
    gaps = [min(np.hypot(*(xy[i] - xy[j])) for j in range(i)) for i in range(1, 5)]
    assert gaps == sorted(gaps, reverse=True) and gaps[-1] > 0


def test_robberies_lie_near_markets_on_car_streets(baltimore: tuple[CityPack, Router]) -> None:
    pack, router = baltimore
    nodes = robbery_nodes(pack, router, 25, seed=3)
    assert len(set(nodes.tolist())) == 25
    assert np.array_equal(nodes, robbery_nodes(pack, router, 25, seed=3))
    assert not np.array_equal(nodes, robbery_nodes(pack, router, 25, seed=4))
    tr = Transformer.from_crs("EPSG:4326", router.crs, always_xy=True)
    mx, my = tr.transform(
        *np.asarray(
            [
                (p.geometry.centroid.x, p.geometry.centroid.y)
                for p in pack.places
                if p.kind == "market"
            ]
        ).T
    )
    nx, ny = tr.transform(pack.network.lon[nodes], pack.network.lat[nodes])
    d = np.hypot(nx[:, None] - mx[None, :], ny[:, None] - my[None, :]).min(axis=1)
    assert d.max() <= ROBBERY_RADIUS_M
    for j in nodes.tolist():  # every robbery is reachable by a patrol car
        router.snap((pack.network.lon[j], pack.network.lat[j]), "car", max_distance_m=1.0)


def test_bootstrap_matches_the_normal_interval() -> None:
    rng = np.random.default_rng(1)
    values = (rng.random(400) < 0.3).astype(float)
    out = bootstrap_mean(values, seed=0)
    half = 1.96 * np.sqrt(values.mean() * (1 - values.mean()) / len(values))
    assert out["mean"] == pytest.approx(values.mean())
    assert out["ci_high"] - out["ci_low"] == pytest.approx(2 * half, rel=0.1)
    flat = bootstrap_mean(np.full(10, 0.25), seed=0)
    assert flat == {"mean": 0.25, "ci_low": 0.25, "ci_high": 0.25}


def test_flights_compare_fleets_on_the_same_robberies(
    baltimore: tuple[CityPack, Router], tmp_path: Path
) -> None:
    pack, router = baltimore
    s = FlightScenario(robberies=3, routes=40, k=2, teams=2, cars_per_station=1, seed=5)
    res = run_flights(pack, s, router=router)
    doc = res.as_dict()
    assert doc["fleets"] == {"cars": 9, "cars+motorcycle teams": 11, "cars+market cars": 11}
    for name, summary in doc["summary"].items():
        shares = [r[name]["share"] for r in doc["robberies"]]
        assert summary["plan"]["mean"] == pytest.approx(np.mean(shares))
        assert summary["plan"]["ci_low"] <= summary["plan"]["mean"] <= summary["plan"]["ci_high"]
    for r in doc["robberies"]:
        # A larger fleet never plans worse on the same routes (exact MILP).
        assert r["cars+market cars"]["in_sample"] >= r["cars"]["in_sample"] - 1e-12
        assert r["cars+motorcycle teams"]["in_sample"] >= r["cars"]["in_sample"] - 1e-12
        assert r["cars"]["motorcycles"] == 0
    diff = doc["differences"]["cars+motorcycle teams - cars+market cars"]["mean"]
    want = np.mean(
        [
            r["cars+motorcycle teams"]["share"] - r["cars+market cars"]["share"]
            for r in doc["robberies"]
        ]
    )
    assert diff == pytest.approx(want)
    json.dumps(doc)  # JSON-ready
    table = pd.read_csv(write_robberies_csv(doc, tmp_path / "r.csv"))
    assert len(table) == 3
    assert table["cars:share"].mean() == pytest.approx(doc["summary"]["cars"]["plan"]["mean"])


def test_flights_need_markets_and_sane_input() -> None:
    # The Shenzhen pack bundles no places (docs/city-packs.md); Manhattan now has 42 markets.
    with pytest.raises(DataError, match="no market places"):
        run_flights(load_pack("shenzhen"), FlightScenario(robberies=2, routes=10))
    with pytest.raises(ValidationError):
        FlightScenario(robberies=1)
    with pytest.raises(ValidationError):
        FlightScenario(offender_mode="tank")  # type: ignore[arg-type]


def test_cli_flights_errors(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["simulate", "flights", "shenzhen", "--robberies", "2"], capsys)
    assert code == 1 and "no market places" in err and "Traceback" not in err
    code, _, err = run(["simulate", "flights", "baltimore", "--time", "20:30"], capsys)
    assert code != 0 and "ISO 8601" in err
