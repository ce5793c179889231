"""The bounded search kernel against scipy's Dijkstra, the per-fix snap cache, and node reach."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from scipy.sparse.csgraph import dijkstra

from citywatch.city import load_pack
from citywatch.routing import MODES, Router
from citywatch.routing.search import ROOT, SearchGraph, SearchTree


@pytest.fixture(scope="module")
def router(bundled_router: Callable[[str], Router]) -> Router:
    return bundled_router("manhattan")


def _snapshot(tree: SearchTree) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    return tree.all_seconds(), tree.all_metres(), tree.pred.copy(), np.sort(tree.touched)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("limit", [None, 120.0, 600.0])
def test_search_equals_scipy_and_follows_its_tree(router: Router, mode: str, limit) -> None:  # type: ignore[no-untyped-def]
    g = router.graph(mode)  # type: ignore[arg-type]
    graph = SearchGraph(g.seconds, g.metres)
    rng = np.random.default_rng(3)
    nodes = g.road_nodes
    for source in nodes[rng.integers(0, len(nodes), 5)]:
        offset = float(rng.random() * 30)
        entries = (np.array([source]), np.array([offset]), np.array([2.0]))
        secs, metres, pred, touched = graph.search(entries, limit, _snapshot)
        want = dijkstra(
            g.seconds, indices=int(source), limit=np.inf if limit is None else limit - offset
        )
        np.testing.assert_allclose(secs, want + offset, rtol=0, atol=1e-9)
        np.testing.assert_array_equal(touched, np.flatnonzero(np.isfinite(want)))
        # Seconds and metres are those of one path of the predecessor tree, edge by edge.
        reached = touched[pred[touched] != ROOT]
        p = pred[reached]
        np.testing.assert_allclose(secs[reached], secs[p] + g.seconds[p, reached], atol=1e-9)
        np.testing.assert_allclose(metres[reached], metres[p] + g.metres[p, reached], atol=1e-9)
        assert metres[source] == 2.0
    # The buffers are left clean for the next search.
    after = graph.search((np.array([nodes[0]]), np.zeros(1), np.zeros(1)), 0.0, _snapshot)
    assert np.isfinite(after[0]).sum() >= 1 and len(after[3]) == np.isfinite(after[0]).sum()


def test_two_entries_take_the_faster_per_node(router: Router) -> None:
    g = router.graph("car")
    graph = SearchGraph(g.seconds, g.metres)
    a, b = int(g.seg_a[0]), int(g.seg_b[0])
    entries = (np.array([a, b]), np.array([5.0, 50.0]), np.array([1.0, 2.0]))
    secs, _, _, _ = graph.search(entries, None, _snapshot)
    want = np.minimum(dijkstra(g.seconds, indices=a) + 5.0, dijkstra(g.seconds, indices=b) + 50.0)
    np.testing.assert_allclose(secs, want, atol=1e-9)


def test_moved_units_are_resnapped_and_the_rest_reused(router: Router) -> None:
    rng = np.random.default_rng(11)
    lon, lat = router.network.lon, router.network.lat
    picks = rng.integers(0, len(lon), 60)
    pts = np.column_stack([lon[picks], lat[picks]]) + rng.normal(0, 1e-4, (60, 2))
    target = (float(lon[5]), float(lat[5]))
    router.many_to_one(pts, target, "car")
    moved = pts.copy()
    moved[::7] += 3e-4  # some units report a new AVL fix
    got = router.many_to_one(moved, target, "car")
    fresh = Router.from_pack(load_pack("manhattan")).many_to_one(moved, target, "car")
    np.testing.assert_array_equal(got.seconds, fresh.seconds)
    np.testing.assert_array_equal(got.metres, fresh.metres)
    np.testing.assert_array_equal(got.snap_distance_m, fresh.snap_distance_m)
    # The same positions asked again in the other direction reuse the snaps.
    back = router.one_to_many(target, moved, "car")
    fresh_back = Router.from_pack(load_pack("manhattan")).one_to_many(target, moved, "car")
    np.testing.assert_array_equal(back.seconds, fresh_back.seconds)


def test_node_reach_equals_scipy(router: Router) -> None:
    g = router.graph("motorcycle")
    sources = np.array([0, 17, 1000, 4000])
    src, node, secs = router.node_reach("motorcycle", sources, 240.0)
    dense = dijkstra(g.seconds, indices=sources, limit=240.0)
    i, j = np.nonzero(np.isfinite(dense))
    order = np.lexsort((node, src))
    np.testing.assert_array_equal(src[order], i)
    np.testing.assert_array_equal(node[order], j)
    np.testing.assert_allclose(secs[order], dense[i, j], atol=1e-9)
