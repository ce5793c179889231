"""The shared edge index snaps exactly as a brute-force scan of every segment of the mode."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import shapely
from pyproj import Transformer

from citywatch.city import load_pack
from citywatch.routing import MODES, Mode, Router
from citywatch.routing.snapping import EdgeIndex


@pytest.fixture(scope="module", params=["manhattan", "shenzhen"])
def router(request: pytest.FixtureRequest) -> Router:
    return Router.from_pack(load_pack(request.param))


def _points(router: Router, seed: int) -> np.ndarray:
    # Jittered nodes (up to ~100 m off), nodes exactly, and points a few km outside the city.
    rng = np.random.default_rng(seed)
    lon, lat = router.network.lon, router.network.lat
    idx = rng.integers(0, len(lon), 120)
    near = np.column_stack([lon[idx], lat[idx]]) + rng.normal(0, 0.0004, (120, 2))
    exact = np.column_stack([lon[idx[:30]], lat[idx[:30]]])
    far = np.column_stack([lon.max() + rng.uniform(0.01, 0.05, 5), lat[idx[:5]]])
    return np.vstack([near, exact, far])


@pytest.mark.parametrize("mode", MODES)
def test_snap_equals_brute_force_scan(router: Router, mode: str) -> None:
    pts = _points(router, seed=MODES.index(mode))
    snap = router.snap(pts, mode, max_distance_m=1e7)  # type: ignore[arg-type]
    g = router.graph(mode)  # type: ignore[arg-type]
    x, y = Transformer.from_crs("EPSG:4326", router.crs, always_xy=True).transform(
        pts[:, 0], pts[:, 1]
    )
    points = shapely.points(x, y)
    dist = shapely.distance(points[:, None], g.seg_lines[None, :])
    np.testing.assert_allclose(snap.distance_m, dist.min(axis=1), rtol=1e-9, atol=1e-6)
    chosen = g.seg_lines[snap.segment]
    # The chosen segment is a nearest one (ties: any of them), at the same position along it.
    np.testing.assert_allclose(shapely.distance(points, chosen), snap.distance_m, atol=1e-6)
    want = shapely.line_locate_point(chosen, points, normalized=True)
    np.testing.assert_allclose(snap.fraction, want, atol=1e-9)


def test_points_at_nodes_sit_exactly_at_segment_ends(router: Router) -> None:
    # Exactly 0 or 1: a rounding error short of a one-way street's end would make it unreachable.
    lon, lat = router.network.lon, router.network.lat
    g = router.graph("car")
    nodes = g.road_nodes[:: max(1, len(g.road_nodes) // 200)]
    snap = router.snap(np.column_stack([lon[nodes], lat[nodes]]), "car")
    at_a = snap.fraction == 0.0
    at_b = snap.fraction == 1.0
    straight = shapely.get_num_coordinates(g.seg_lines[snap.segment]) == 2
    assert (at_a | at_b)[straight & (snap.distance_m == 0)].all()
    assert (g.seg_a[snap.segment][at_a] == nodes[at_a]).all()
    assert (g.seg_b[snap.segment][at_b] == nodes[at_b]).all()


def test_new_incident_snapped_for_all_modes_as_for_each_alone(router: Router) -> None:
    # A new target is snapped for every built mode at once; each mode gets its own answer.
    targets = _points(router, seed=99)[:25]
    together = Router.from_network(router.network, router.crs, max_snap_m=1e7)
    for m in MODES:
        together.graph(m)
    for t in targets:
        together.many_to_one(targets[:1], (float(t[0]), float(t[1])), "car")
    for m in MODES:
        alone = Router.from_network(router.network, router.crs, max_snap_m=1e7)
        want = alone.snap(targets, m)  # type: ignore[arg-type]
        got = together.snap(targets, m)  # type: ignore[arg-type]
        np.testing.assert_array_equal(got.segment, want.segment)
        np.testing.assert_array_equal(got.fraction, want.fraction)
        np.testing.assert_array_equal(got.distance_m, want.distance_m)


def test_point_the_projection_cannot_place_is_on_no_road(router: Router) -> None:
    g = router.graph("car")
    index = EdgeIndex(router.network.edge_geometries(router.crs))
    index.add_mode("car", g.seg_edge, g.seg_flip)
    near = index.nearest(np.array([[np.inf, 0.0], [np.nan, np.nan]]), ["car"])
    assert np.isinf(near.distance_m).all() and (near.segment == 0).all()


def test_first_snaps_from_many_threads_equal_one_thread() -> None:
    # The service snaps from its thread pool: the graphs, the edge index and the snap caches
    # are built on first use by whichever requests come first.  Unlocked, 4 of 10 fresh routers
    # raised KeyError on a mode missing from an index another thread had just published (a 500
    # in the first seconds of a loaded service).
    pack = load_pack("manhattan")
    alone = Router.from_pack(pack)
    loc = (-73.99, 40.736)
    want = {m: alone.snap(loc, mode=m).distance_m[0] for m in ("car", "foot")}

    def work(k: int, router: Router, got: list[tuple[str, float]], errors: list[Exception]) -> None:
        mode: Mode = "car" if k % 2 else "foot"
        try:
            got.append((mode, router.snap(np.array([loc] * 4), mode=mode).distance_m[0]))
            got.append((mode, router._snap_point(loc, mode).distance_m[0]))
        except Exception as exc:  # any error fails the test below
            errors.append(exc)

    for _ in range(8):
        shared = Router.from_pack(pack)
        got: list[tuple[str, float]] = []
        errors: list[Exception] = []
        threads = [threading.Thread(target=work, args=(k, shared, got, errors)) for k in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        assert len(got) == 12 and all(d == want[m] for m, d in got), got


def test_prepare_builds_every_graph_and_the_index(router: Router) -> None:
    fresh = Router.from_network(router.network, router.crs)
    fresh.prepare()
    assert fresh._index is not None and sorted(fresh._index.rows) == sorted(MODES)
    assert sorted(fresh._graphs) == sorted(MODES)
