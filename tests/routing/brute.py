"""Brute-force reference routing with networkx, independent of the Router's snapping arithmetic.

Points are inserted into the graph by physically splitting the street they lie on, then plain
networkx Dijkstra answers the query.
"""

from __future__ import annotations

import itertools
from collections import defaultdict

import networkx as nx
import numpy as np

from citywatch.routing import Router


def mode_digraph(router: Router, mode: str) -> nx.DiGraph:
    """The mode's graph as a networkx DiGraph with the same weights (seconds, metres)."""
    g = router.graph(mode)  # type: ignore[arg-type]
    coo = g.seconds.tocoo()
    met = g.metres.tocsr()
    graph = nx.DiGraph()
    for u, v, s in zip(coo.row, coo.col, coo.data, strict=True):
        graph.add_edge(int(u), int(v), seconds=float(s), metres=float(met[u, v]))
    return graph


def split_graph(router: Router, mode: str, points: np.ndarray) -> tuple[nx.DiGraph, list[str]]:
    """Insert every point as a node ``p<i>`` on its snapped segment; return the graph and names."""
    g = router.graph(mode)  # type: ignore[arg-type]
    snap = router.snap(points, mode)  # type: ignore[arg-type]
    graph = mode_digraph(router, mode)
    on_segment: dict[int, list[tuple[float, str]]] = defaultdict(list)
    names = []
    for i, (seg, f) in enumerate(zip(snap.segment, snap.fraction, strict=True)):
        name = f"p{i}"
        names.append(name)
        on_segment[int(seg)].append((float(f), name))
    for seg, items in on_segment.items():
        a, b = int(g.seg_a[seg]), int(g.seg_b[seg])
        chain = [(0.0, a), *sorted(items), (1.0, b)]
        fwd_s, fwd_m = float(g.seg_fwd_s[seg]), float(g.seg_fwd_m[seg])
        bwd_s, bwd_m = float(g.seg_bwd_s[seg]), float(g.seg_bwd_m[seg])
        for (f1, n1), (f2, n2) in itertools.pairwise(chain):
            graph.add_edge(n1, n2, seconds=(f2 - f1) * fwd_s, metres=(f2 - f1) * fwd_m)
            if np.isfinite(bwd_s):
                graph.add_edge(n2, n1, seconds=(f2 - f1) * bwd_s, metres=(f2 - f1) * bwd_m)
            elif f2 == f1:  # two names for one spot (a point exactly at a node)
                graph.add_edge(n2, n1, seconds=0.0, metres=0.0)
    return graph, names


def brute_many_to_one(
    router: Router, mode: str, sources: np.ndarray, target: tuple[float, float]
) -> np.ndarray:
    """Seconds from each source to the target by networkx Dijkstra on the split graph."""
    pts = np.vstack([sources, np.asarray(target)[None, :]])
    graph, names = split_graph(router, mode, pts)
    lengths = nx.single_source_dijkstra_path_length(
        graph.reverse(copy=False), names[-1], weight="seconds"
    )
    return np.array([lengths.get(n, np.inf) for n in names[:-1]])
