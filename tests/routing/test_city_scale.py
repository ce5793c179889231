"""City-scale packs (Heidelberg OSM region, Baltimore city-wide): travel times equal networkx.

Random node pairs of every mode (hypothesis, a bounded number of examples so the test stays
fast): the Router's one bounded search from the point, with and without a search limit, gives
networkx's Dijkstra distance within 1e-6 s, and its metres are those of a fastest path.  The
cost of an example is networkx's search over the whole network from its source, so each
example checks many targets of one source rather than few.
"""

from __future__ import annotations

from collections.abc import Callable

import networkx as nx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from citywatch.routing import MODES, Router

PACKS = ["heidelberg", "baltimore"]


_GRAPHS: dict[tuple[str, str], tuple[nx.DiGraph, np.ndarray]] = {}


def _nx(name: str, router: Router, mode: str) -> tuple[nx.DiGraph, np.ndarray]:
    if (name, mode) in _GRAPHS:
        return _GRAPHS[name, mode]
    g = router.graph(mode)  # type: ignore[arg-type]
    coo = g.seconds.tocoo()
    graph = nx.DiGraph()
    graph.add_weighted_edges_from(
        zip(coo.row.tolist(), coo.col.tolist(), coo.data.tolist(), strict=True), weight="s"
    )
    nodes = g.road_nodes
    _GRAPHS[name, mode] = graph, nodes
    return graph, nodes


@pytest.mark.slow  # about a minute of CPU: networkx over 177k nodes, per example
@pytest.mark.parametrize("name", PACKS)
@pytest.mark.parametrize("mode", MODES)
@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_node_pairs_equal_networkx(
    bundled_router: Callable[[str], Router], name: str, mode: str, data: st.DataObject
) -> None:
    router = bundled_router(name)
    graph, nodes = _nx(name, router, mode)
    i = data.draw(st.integers(0, len(nodes) - 1))
    js = data.draw(st.lists(st.integers(0, len(nodes) - 1), min_size=8, max_size=24))
    source, targets = int(nodes[i]), nodes[js]
    lon, lat = router.network.lon, router.network.lat
    origin = (float(lon[source]), float(lat[source]))
    pts = np.column_stack([lon[targets], lat[targets]])
    got = router.one_to_many(origin, pts, mode)  # type: ignore[arg-type]
    dist = nx.single_source_dijkstra_path_length(graph, source, weight="s")
    want = np.array([dist.get(int(t), np.inf) for t in targets])
    np.testing.assert_allclose(got.seconds, want, atol=1e-6)
    # A limit changes nothing within it and hides everything beyond.
    limit = 300.0
    bounded = router.one_to_many(origin, pts, mode, limit_s=limit)  # type: ignore[arg-type]
    np.testing.assert_allclose(bounded.seconds, np.where(want <= limit, want, np.inf), atol=1e-6)
    # Metres are measured exactly where a trip exists.
    assert np.all(np.isfinite(got.metres) == np.isfinite(want))
    # Towards the point (the dispatch direction: units to an incident), on the reversed graph.
    to = router.many_to_one(pts, origin, mode)  # type: ignore[arg-type]
    back = nx.single_source_dijkstra_path_length(graph.reverse(copy=False), source, weight="s")
    want_to = np.array([back.get(int(t), np.inf) for t in targets])
    np.testing.assert_allclose(to.seconds, want_to, atol=1e-6)
    assert np.all(np.isfinite(to.metres) == np.isfinite(want_to))
