from __future__ import annotations

import itertools

import networkx as nx
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from citywatch.city import load_pack
from citywatch.city.network import RoadNetwork, haversine_m
from citywatch.errors import SnapError, ValidationError
from citywatch.routing import MODES, Router
from tests.routing.brute import brute_many_to_one, mode_digraph

PACKS = ["manhattan", "shenzhen"]


@pytest.fixture(scope="module", params=PACKS)
def router(request: pytest.FixtureRequest) -> Router:
    return Router.from_pack(load_pack(request.param))


def _random_points(router: Router, n: int, seed: int) -> np.ndarray:
    # Random points near the network: node positions jittered by up to ~40 m.
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(router.network.nodes), n)
    jitter = rng.normal(0, 0.0002, (n, 2))
    return np.column_stack([router.network.lon[idx], router.network.lat[idx]]) + jitter


@pytest.mark.parametrize("mode", MODES)
def test_node_to_node_equals_networkx(router: Router, mode: str) -> None:
    graph = mode_digraph(router, mode)
    rng = np.random.default_rng(7)
    nodes = np.array(sorted(graph.nodes))
    for source in rng.choice(nodes, 4, replace=False):
        expected = nx.single_source_dijkstra_path_length(graph, int(source), weight="seconds")
        targets = rng.choice(nodes, 50, replace=False)
        got = router.one_to_many(
            (router.network.lon[source], router.network.lat[source]),
            np.column_stack([router.network.lon[targets], router.network.lat[targets]]),
            mode,  # type: ignore[arg-type]
        )
        want = np.array([expected.get(int(t), np.inf) for t in targets])
        np.testing.assert_allclose(got.seconds, want, atol=1e-6)


@pytest.mark.parametrize("mode", MODES)
def test_many_to_one_points_equal_brute_force(router: Router, mode: str) -> None:
    sources = _random_points(router, 60, seed=11)
    for k, target in enumerate(_random_points(router, 3, seed=12)):
        got = router.many_to_one(sources, (target[0], target[1]), mode)  # type: ignore[arg-type]
        want = brute_many_to_one(router, mode, sources, (target[0], target[1]))
        np.testing.assert_allclose(got.seconds, want, atol=1e-6, err_msg=f"target {k}")


def test_limit_cuts_far_sources(router: Router) -> None:
    sources = _random_points(router, 100, seed=3)
    target = tuple(_random_points(router, 1, seed=4)[0])
    full = router.many_to_one(sources, target, "car")  # type: ignore[arg-type]
    cut = router.many_to_one(sources, target, "car", limit_s=120.0)  # type: ignore[arg-type]
    near = full.seconds <= 120.0
    np.testing.assert_allclose(cut.seconds[near], full.seconds[near])
    assert np.isinf(cut.seconds[~near]).all()


def test_route_path_and_metres_are_consistent(router: Router) -> None:
    a, b = _random_points(router, 2, seed=5)
    route = router.route(tuple(a), tuple(b), "car")  # type: ignore[arg-type]
    single = router.many_to_one(a[None, :], tuple(b), "car")  # type: ignore[arg-type]
    assert route.seconds == pytest.approx(single.seconds[0])
    assert route.metres == pytest.approx(single.metres[0])
    assert len(route.coords) >= 2


def test_manhattan_one_way_and_modes() -> None:
    router = Router.from_pack(load_pack("manhattan"))
    g = router.graph("car")
    one_way = np.flatnonzero(~np.isfinite(g.seg_bwd_s))
    assert len(one_way) > 1000  # Manhattan's grid is mostly one-way streets
    seg = int(one_way[0])
    a, b = int(g.seg_a[seg]), int(g.seg_b[seg])
    lon, lat = router.network.lon, router.network.lat
    to_b = router.one_to_many((lon[a], lat[a]), np.array([[lon[b], lat[b]]]), "car")
    back = router.one_to_many((lon[b], lat[b]), np.array([[lon[a], lat[a]]]), "car")
    assert back.seconds[0] > to_b.seconds[0]  # against the one-way street a car goes round
    walk = router.one_to_many((lon[b], lat[b]), np.array([[lon[a], lat[a]]]), "foot")
    assert walk.metres[0] == pytest.approx(g.seg_fwd_m[seg])  # on foot, straight back
    # 40.2 km/h (NYC's 25 mph limit) for cars, 5 km/h on foot.
    assert to_b.seconds[0] == pytest.approx(g.seg_fwd_m[seg] / (40.2 / 3.6))
    assert walk.seconds[0] == pytest.approx(g.seg_fwd_m[seg] / (5 / 3.6))


def test_motorcycles_reach_ways_cars_cannot() -> None:
    router = Router.from_pack(load_pack("shenzhen"))
    edges = router.network.edges
    lanes = edges[edges["highway"].isin(["living_street", "pedestrian"])]
    assert len(lanes) > 100
    mid = lanes.iloc[:20]
    pts = np.column_stack(
        [
            (router.network.lon[mid["u"]] + router.network.lon[mid["v"]]) / 2,
            (router.network.lat[mid["u"]] + router.network.lat[mid["v"]]) / 2,
        ]
    )
    car = router.snap(pts, "car", max_distance_m=1e6)
    moto = router.snap(pts, "motorcycle", max_distance_m=1e6)
    # Chord midpoints of curved lanes lie a few metres off the lane itself.
    assert (moto.distance_m < 20.0).all()
    assert (car.distance_m > moto.distance_m + 20.0).any()


def test_snap_errors() -> None:
    router = Router.from_pack(load_pack("manhattan"))
    with pytest.raises(SnapError, match="from the nearest road"):
        router.snap((-74.05, 40.70), "car")
    with pytest.raises(ValidationError):
        router.snap((200.0, 40.7), "car")
    with pytest.raises(ValidationError, match="unknown travel mode"):
        router.graph("hovercraft")  # type: ignore[arg-type]
    snap = router.snap((-73.9855, 40.7580), "car")
    assert 0 <= snap.distance_m[0] < 60


@st.composite
def random_networks(draw: st.DrawFn) -> tuple[RoadNetwork, np.ndarray]:
    n = draw(st.integers(4, 12))
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    lon = -73.99 + rng.uniform(0, 0.01, n)
    lat = 40.75 + rng.uniform(0, 0.01, n)
    rows = []
    for _ in range(draw(st.integers(n, 3 * n))):
        u, v = rng.choice(n, 2, replace=False)
        highway = ["primary", "residential", "living_street", "footway"][rng.integers(0, 4)]
        length = float(rng.uniform(50, 800))
        rows.append((u, v, length, highway))
        if rng.random() < 0.6:
            rows.append((v, u, length, highway))
    edges = pd.DataFrame(rows, columns=["u", "v", "length_m", "highway"])
    for column in ("service", "access", "name", "geometry"):
        edges[column] = None
    edges["maxspeed_kph"] = np.nan
    net = RoadNetwork(
        pd.DataFrame({"node_id": [str(i) for i in range(n)], "lon": lon, "lat": lat}), edges
    )
    pts = np.column_stack([lon, lat])[rng.integers(0, n, 6)] + rng.normal(0, 0.0005, (6, 2))
    return net, pts


@settings(max_examples=40, deadline=None)
@given(random_networks(), st.sampled_from(MODES))
def test_random_graphs_equal_brute_force(case: tuple[RoadNetwork, np.ndarray], mode: str) -> None:
    net, pts = case
    router = Router.from_network(net, "EPSG:32618", max_snap_m=1e7)
    try:
        router.graph(mode)  # type: ignore[arg-type]
    except Exception:  # a random network may have no way usable by this mode
        return
    got = router.many_to_one(pts[:-1], tuple(pts[-1]), mode)  # type: ignore[arg-type]
    want = brute_many_to_one(router, mode, pts[:-1], tuple(pts[-1]))
    np.testing.assert_allclose(got.seconds, want, atol=1e-6)


def test_node_times_equal_networkx_both_ways(router: Router) -> None:
    graph = mode_digraph(router, "car")
    node = int(sorted(graph.nodes)[len(graph) // 2])
    point = (router.network.lon[node], router.network.lat[node])
    to_s, to_m = router.node_times_to(point, "car")
    from_s, _ = router.node_times_from(point, "car")
    want_to = nx.single_source_dijkstra_path_length(
        graph.reverse(copy=False), node, weight="seconds"
    )
    want_from = nx.single_source_dijkstra_path_length(graph, node, weight="seconds")
    for got, want in ((to_s, want_to), (from_s, want_from)):
        expected = np.array([want.get(i, np.inf) for i in range(len(got))])
        np.testing.assert_allclose(got, expected, atol=1e-6)
    # Metres follow the fastest path: networkx's metres along its own path tree agree.
    paths = nx.single_source_dijkstra_path(graph.reverse(copy=False), node, weight="seconds")
    far = max(paths, key=lambda n: want_to[n])
    metres = sum(graph[a][b]["metres"] for b, a in itertools.pairwise(paths[far]))
    assert to_m[far] == pytest.approx(metres, rel=1e-9)


def test_route_path_follows_the_streets_it_is_timed_on() -> None:
    # Manhattan's edges are straight segments whose length is the distance between their nodes,
    # so the drawn path must measure exactly the route's metres.
    router = Router.from_pack(load_pack("manhattan"))
    for a, b in _random_points(router, 20, seed=21).reshape(10, 2, 2):
        for mode in ("car", "foot"):
            route = router.route(tuple(a), tuple(b), mode)  # type: ignore[arg-type]
            xy = np.asarray(route.coords)
            drawn = haversine_m(xy[:-1, 0], xy[:-1, 1], xy[1:, 0], xy[1:, 1]).sum()
            assert drawn == pytest.approx(route.metres, rel=1e-6)
