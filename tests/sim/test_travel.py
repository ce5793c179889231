"""The simulator's bounded searches give the Router's exact answers (and networkx's)."""

from __future__ import annotations

import numpy as np
import pytest

from citywatch.city import CityPack
from citywatch.dispatch.policy import (
    IncidentView,
    Policy,
    UnitView,
    nearest,
    recommend,
    router_travel,
    station_first,
)
from citywatch.routing import Router
from citywatch.sim.travel import SearchTravel
from tests.routing.brute import brute_many_to_one


def near_nodes(pack: CityPack, rng: np.random.Generator, n: int) -> np.ndarray:
    """Points beside random network nodes (up to ~30 m away), so they snap mid-segment."""
    i = rng.integers(0, len(pack.network.lon), n)
    jitter = rng.uniform(-2.5e-4, 2.5e-4, (n, 2))
    return np.c_[pack.network.lon[i], pack.network.lat[i]] + jitter


def test_search_travel_equals_router(
    pack: CityPack, router: Router, car_travel: SearchTravel
) -> None:
    rng = np.random.default_rng(3)
    sources = near_nodes(pack, rng, 200)
    for target in near_nodes(pack, rng, 15):
        want = router.many_to_one(sources, (target[0], target[1]), "car")
        secs, metres = car_travel(sources, "car", (target[0], target[1]), None)
        np.testing.assert_array_equal(np.isfinite(secs), np.isfinite(want.seconds))
        np.testing.assert_allclose(secs, want.seconds, rtol=1e-9, atol=1e-6)
        np.testing.assert_allclose(metres, want.metres, rtol=1e-9, atol=1e-6)


def test_same_segment_and_one_way_cases(
    pack: CityPack, router: Router, car_travel: SearchTravel
) -> None:
    g = router.graph("car")
    one_way = np.flatnonzero(~np.isfinite(g.seg_bwd_s))[:5]
    assert len(one_way) == 5
    lines = g.seg_lines[one_way]
    import shapely
    from pyproj import Transformer

    to_wgs = Transformer.from_crs(pack.crs, "EPSG:4326", always_xy=True)
    for line in lines:
        pts = [shapely.line_interpolate_point(line, f, normalized=True) for f in (0.2, 0.8)]
        lonlat = np.array([to_wgs.transform(p.x, p.y) for p in pts])
        for a, b in ((0, 1), (1, 0)):  # along the one-way direction, and against it
            want = router.many_to_one(lonlat[[a]], tuple(lonlat[b]), "car").seconds[0]
            got = car_travel(lonlat[[a]], "car", tuple(lonlat[b]), None)[0][0]
            assert got == pytest.approx(want, rel=1e-9, abs=1e-6)
        forward = car_travel(lonlat[[0]], "car", tuple(lonlat[1]), None)[0][0]
        backward = car_travel(lonlat[[1]], "car", tuple(lonlat[0]), None)[0][0]
        assert backward > forward  # against a one-way street the car must go round


def test_points_exactly_at_nodes_equal_the_router(
    pack: CityPack, router: Router, car_travel: SearchTravel
) -> None:
    # A unit parked exactly at a node snaps to fraction 0 or 1 of a segment; it may leave that
    # node in any direction, even where its segment is one-way the other way (0 * inf is 0).
    rng = np.random.default_rng(5)
    nodes = rng.integers(0, len(pack.network.lon), 200)
    sources = np.c_[pack.network.lon[nodes], pack.network.lat[nodes]]
    for target in near_nodes(pack, rng, 10):
        want = router.many_to_one(sources, (target[0], target[1]), "car")
        secs, _ = car_travel(sources, "car", (target[0], target[1]), None)
        np.testing.assert_array_equal(np.isfinite(secs), np.isfinite(want.seconds))
        np.testing.assert_allclose(secs, want.seconds, rtol=1e-9, atol=1e-6)


def test_search_travel_equals_networkx_brute_force(
    pack: CityPack, router: Router, car_travel: SearchTravel
) -> None:
    rng = np.random.default_rng(9)
    sources = near_nodes(pack, rng, 30)
    target = near_nodes(pack, rng, 1)[0]
    want = brute_many_to_one(router, "car", sources, (target[0], target[1]))
    got, _ = car_travel(sources, "car", (target[0], target[1]), None)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-6)


def test_limit_and_factor(pack: CityPack, car_travel: SearchTravel) -> None:
    rng = np.random.default_rng(4)
    sources = near_nodes(pack, rng, 50)
    target = tuple(near_nodes(pack, rng, 1)[0])
    free, _ = car_travel(sources, "car", target, None)
    limit = float(np.median(free))
    capped, metres = car_travel(sources, "car", target, limit)
    np.testing.assert_array_equal(np.isinf(capped), free > limit)
    assert np.isinf(metres[free > limit]).all()
    car_travel.factor = 1.5
    try:
        slow, _ = car_travel(sources, "car", target, None)
    finally:
        car_travel.factor = 1.0
    np.testing.assert_allclose(slow, 1.5 * free)


@pytest.mark.parametrize("policy", [nearest(), station_first(240.0)])
def test_policy_gives_the_same_recommendation_with_either_travel(
    pack: CityPack, router: Router, car_travel: SearchTravel, policy
) -> None:
    rng = np.random.default_rng(12)
    pos = near_nodes(pack, rng, 40)
    stations = [s.id for s in pack.stations]
    units = [
        UnitView(f"u{i}", "patrol_car", "car", stations[i % len(stations)], float(x), float(y))
        for i, (x, y) in enumerate(pos)
    ]
    for j, (x, y) in enumerate(near_nodes(pack, rng, 10)):
        where = pack.locate(float(x), float(y))
        inc = IncidentView(f"i{j}", "robbery", 1, float(x), float(y), where["station"])
        a = recommend(inc, units, router_travel(router), policy, k=10)
        b = recommend(inc, units, car_travel, policy, k=10)
        assert a.team == b.team and a.status == b.status
        assert [c.unit_id for c in a.candidates] == [c.unit_id for c in b.candidates]
        np.testing.assert_allclose(
            [c.eta_s for c in a.candidates], [c.eta_s for c in b.candidates], atol=1e-3
        )


@pytest.mark.parametrize("policy", [nearest(), station_first(240.0, limit_s=600.0)])
def test_position_keys_give_the_coordinates_answer(
    pack: CityPack, car_travel: SearchTravel, policy: Policy
) -> None:
    """Units and incidents carrying their location ids are ranked exactly as by coordinates."""
    rng = np.random.default_rng(13)
    pos = near_nodes(pack, rng, 60)
    locs = car_travel.register(pos)
    stations = [s.id for s in pack.stations]
    plain, keyed = [], []
    for i, (x, y) in enumerate(pos):
        args = (f"u{i}", "patrol_car", "car", stations[i % len(stations)], float(x), float(y))
        plain.append(UnitView(*args))
        keyed.append(UnitView(*args, position_key=int(locs[i])))
    for j, (x, y) in enumerate(near_nodes(pack, rng, 10)):
        station = pack.locate(float(x), float(y))["station"]
        loc = int(car_travel.register([(x, y)])[0])
        inc = IncidentView(f"i{j}", "robbery", 1, float(x), float(y), station)
        inc_keyed = IncidentView(
            f"i{j}", "robbery", 1, float(x), float(y), station, position_key=loc
        )
        secs, metres = car_travel(pos, "car", (float(x), float(y)), 600.0)
        by_key = car_travel.by_key(locs, "car", (float(x), float(y)), loc, 600.0)
        np.testing.assert_array_equal(secs, by_key[0])
        np.testing.assert_array_equal(metres, by_key[1])
        a = recommend(inc, plain, car_travel, policy, k=10)
        b = recommend(inc_keyed, keyed, car_travel, policy, k=10)
        assert a == b
