"""Per-mode routing graphs: compiled sparse matrices and the snappable segments of a network."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numba
import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
import shapely

from citywatch.city.network import RoadNetwork
from citywatch.errors import DataError
from citywatch.routing.speeds import Mode, edge_speeds_kph, mode_allows

__all__ = [
    "ModeGraph",
    "SegmentParts",
    "build_mode_graph",
    "part_cost",
    "point_entries",
    "segment_parts",
    "trip_costs",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class ModeGraph:
    """The road graph of one travel mode.

    Attributes
    ----------
    mode : str
        The travel mode.
    seconds, metres : scipy.sparse.csr_array
        ``seconds[i, j]`` is the travel time of the fastest edge from node ``i`` to node ``j``,
        ``metres[i, j]`` its length (the same sparsity pattern).  Parallel edges are merged to the
        fastest one; explicit zeros are real edges (scipy's csgraph keeps them).
    seconds_rev, metres_rev : scipy.sparse.csr_array
        The transposes, for searches towards a destination.
    seg_a, seg_b : ndarray
        Endpoints of each snappable segment (one per street, whatever its directions); the
        segment runs from ``seg_a`` to ``seg_b`` along ``seg_lines``.
    seg_fwd_s, seg_bwd_s, seg_fwd_m, seg_bwd_m : ndarray
        Time and length from ``a`` to ``b`` and from ``b`` to ``a`` (``inf`` where that direction
        is not allowed, e.g. against a one-way street).
    seg_lines : ndarray of shapely.LineString
        Segment geometries in the pack's metric CRS.
    seg_edge, seg_flip : ndarray
        The network edge whose geometry each segment is, and whether the segment runs against
        it (for :class:`~citywatch.routing.snapping.EdgeIndex`, shared by every mode).
    """

    mode: Mode
    seconds: sp.csr_array
    metres: sp.csr_array
    seconds_rev: sp.csr_array
    metres_rev: sp.csr_array
    seg_a: IntArray
    seg_b: IntArray
    seg_fwd_s: FloatArray
    seg_bwd_s: FloatArray
    seg_fwd_m: FloatArray
    seg_bwd_m: FloatArray
    seg_lines: npt.NDArray[np.object_]
    seg_edge: IntArray
    seg_flip: npt.NDArray[np.bool_]

    @property
    def n_nodes(self) -> int:
        """Number of nodes of the underlying network (including nodes this mode cannot reach)."""
        return int(self.seconds.shape[0])

    @property
    def road_nodes(self) -> IntArray:
        """The nodes this mode can use (an end of one of its segments), sorted."""
        return np.unique(np.concatenate([self.seg_a, self.seg_b]))


def build_mode_graph(
    network: RoadNetwork,
    mode: Mode,
    lines: npt.NDArray[np.object_],
    speed_overrides: Mapping[str, float] | None = None,
) -> ModeGraph:
    """Compile the graph of ``mode`` over ``network``.

    Parameters
    ----------
    network : RoadNetwork
        The network.
    mode : str
        Travel mode; decides which edges are usable, their speed and whether one-way holds.
    lines : ndarray of shapely.LineString
        Edge geometries in a metric CRS, aligned with ``network.edges``.
    speed_overrides : mapping, optional
        Passed to :func:`~citywatch.routing.speeds.edge_speeds_kph`.
    """
    edges = network.edges
    allowed = mode_allows(edges, mode)
    if not allowed.any():
        raise DataError(f"no road of the network is usable by mode {mode!r}")
    kph = edge_speeds_kph(edges, mode, speed_overrides)[allowed]
    u = edges["u"].to_numpy(dtype=np.int64)[allowed]
    v = edges["v"].to_numpy(dtype=np.int64)[allowed]
    metres = edges["length_m"].to_numpy(dtype=np.float64)[allowed]
    seconds = metres / (kph / 3.6)
    geometry = lines[allowed]
    edge_id = np.flatnonzero(allowed).astype(np.int64)
    reversed_geom = np.zeros(len(u), dtype=bool)
    if mode == "foot":  # officers on foot walk both ways down a one-way street
        u, v = np.concatenate([u, v]), np.concatenate([v, u])
        metres = np.concatenate([metres, metres])
        seconds = np.concatenate([seconds, seconds])
        geometry = np.concatenate([geometry, geometry])
        edge_id = np.concatenate([edge_id, edge_id])
        reversed_geom = np.concatenate([reversed_geom, ~reversed_geom])

    # Keep the fastest of parallel edges: sort by (u, v, seconds) and take the first of each pair.
    order = np.lexsort((seconds, v, u))
    u, v, seconds, metres = u[order], v[order], seconds[order], metres[order]
    geometry, reversed_geom, edge_id = geometry[order], reversed_geom[order], edge_id[order]
    first = np.ones(len(u), dtype=bool)
    first[1:] = (u[1:] != u[:-1]) | (v[1:] != v[:-1])
    u, v, seconds, metres = u[first], v[first], seconds[first], metres[first]
    geometry, reversed_geom, edge_id = geometry[first], reversed_geom[first], edge_id[first]

    n = len(network.nodes)
    sec = sp.csr_array((seconds, (u, v)), shape=(n, n))
    met = sp.csr_array((metres, (u, v)), shape=(n, n))

    # One snappable segment per street: the edge with u < v, or the only direction there is.
    n64 = np.int64(n)
    key = np.minimum(u, v) * n64 + np.maximum(u, v)
    reverse_key = v * n64 + u
    edge_key = u * n64 + v
    lookup = {int(k): i for i, k in enumerate(edge_key)}
    _, rep = np.unique(key, return_index=True)
    seg_a, seg_b = u[rep], v[rep]
    back = np.array([lookup.get(int(k), -1) for k in reverse_key[rep]], dtype=np.int64)
    has_back = back >= 0
    seg_lines = geometry[rep].copy()
    flip = reversed_geom[rep]
    if flip.any():
        seg_lines[flip] = shapely.reverse(seg_lines[flip])
    return ModeGraph(
        mode=mode,
        seconds=sec,
        metres=met,
        seconds_rev=sec.T.tocsr(),
        metres_rev=met.T.tocsr(),
        seg_a=seg_a,
        seg_b=seg_b,
        seg_fwd_s=seconds[rep],
        seg_bwd_s=np.where(has_back, seconds[np.maximum(back, 0)], np.inf),
        seg_fwd_m=metres[rep],
        seg_bwd_m=np.where(has_back, metres[np.maximum(back, 0)], np.inf),
        seg_lines=seg_lines,
        seg_edge=edge_id[rep],
        seg_flip=flip,
    )


def part_cost(fraction: npt.ArrayLike, cost: npt.ArrayLike) -> FloatArray:
    """``fraction`` of an edge's ``cost``; zero when there is nothing to cover, even where the
    direction is not allowed (``0 * inf``): a point exactly at a node is at that node."""
    fraction = np.asarray(fraction, dtype=np.float64)
    # Zero the cost where nothing is covered first: 0 * 0 instead of 0 * inf, so no invalid-value
    # warning needs silencing (np.errstate costs more than the arithmetic on short arrays).
    return fraction * np.where(fraction == 0.0, 0.0, np.asarray(cost, dtype=np.float64))


def point_entries(
    g: ModeGraph, segment: int, fraction: float, *, reverse: bool
) -> tuple[IntArray, FloatArray, FloatArray]:
    """The entries (nodes, seconds, metres) of one search from or to a point on ``segment``.

    Forward search (from the point): leave towards ``b`` or, if allowed, towards ``a``.  Reverse
    search (to the point): enter its segment at ``a`` and drive ``f * fwd``, or at ``b`` and drive
    ``(1 - f) * bwd``.  The tuple is a :data:`citywatch.routing.search.Entries`.
    """
    seg, f = int(segment), float(fraction)
    a, b = int(g.seg_a[seg]), int(g.seg_b[seg])
    nodes, x = ([a, b], np.array([f, 1 - f])) if reverse else ([b, a], np.array([1 - f, f]))
    secs, mets = [g.seg_fwd_s[seg], g.seg_bwd_s[seg]], [g.seg_fwd_m[seg], g.seg_bwd_m[seg]]
    return np.array(nodes, dtype=np.int64), part_cost(x, secs), part_cost(x, mets)


@dataclass(frozen=True)
class SegmentParts:
    """What a trip covers of each point's own segment, towards each of its ends.

    It depends only on the points (not on the anchor), so a router computes it once per snap of
    a unit's position and reuses it for every incident.  ``to_a_s``/``to_a_m`` is the cost
    between the point and its segment's end ``a`` in the trip's direction (to ``a`` when
    ``reverse``, from ``a`` otherwise), likewise for ``b``; ``fwd_*``/``bwd_*`` are the
    segments' own costs, for trips straight along a segment shared with the anchor.
    """

    segment: IntArray
    fraction: FloatArray
    a: IntArray
    b: IntArray
    to_a_s: FloatArray
    to_a_m: FloatArray
    to_b_s: FloatArray
    to_b_m: FloatArray
    fwd_s: FloatArray
    bwd_s: FloatArray
    fwd_m: FloatArray
    bwd_m: FloatArray
    reverse: bool


def segment_parts(
    g: ModeGraph, segment: IntArray, fraction: FloatArray, *, reverse: bool
) -> SegmentParts:
    """The :class:`SegmentParts` of points on ``g``'s segments.

    Parameters
    ----------
    g : ModeGraph
        The mode's graph.
    segment, fraction : ndarray
        Each point's segment and fraction along it (from ``a`` to ``b``).
    reverse : bool
        True for trips from the points (to an anchor), False for trips to them.
    """
    f = fraction
    fwd_s, bwd_s = g.seg_fwd_s[segment], g.seg_bwd_s[segment]
    fwd_m, bwd_m = g.seg_fwd_m[segment], g.seg_bwd_m[segment]
    if reverse:  # from the point to its segment's ends: back to a, on to b
        a_s, a_m, b_s, b_m = bwd_s, bwd_m, fwd_s, fwd_m
    else:  # from the segment's ends along to the point
        a_s, a_m, b_s, b_m = fwd_s, fwd_m, bwd_s, bwd_m
    return SegmentParts(
        segment=segment,
        fraction=f,
        a=g.seg_a[segment],
        b=g.seg_b[segment],
        to_a_s=part_cost(f, a_s),
        to_a_m=part_cost(f, a_m),
        to_b_s=part_cost(1 - f, b_s),
        to_b_m=part_cost(1 - f, b_m),
        fwd_s=fwd_s,
        bwd_s=bwd_s,
        fwd_m=fwd_m,
        bwd_m=bwd_m,
        reverse=reverse,
    )


def trip_costs(
    parts: SegmentParts, seconds: FloatArray, metres: FloatArray, anchor: tuple[int, float]
) -> tuple[FloatArray, FloatArray, npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """Trip costs between an anchor and points, from their :class:`SegmentParts`.

    Parameters
    ----------
    parts : SegmentParts
        The points' parts of their own segments.
    seconds, metres : ndarray
        Seconds and road metres between the anchor and every node of the network (a search's
        arrays, ``inf`` where unreached): from the node to the anchor when ``parts.reverse``,
        from the anchor to it otherwise.
    anchor : tuple of (int, float)
        The anchor's own segment and fraction, for trips straight along a shared segment.

    Returns
    -------
    tuple
        Seconds, metres, whether the trip uses the point's end ``a`` (rather than ``b``), and
        whether it runs straight along the segment shared with the anchor.
    """
    p = parts
    return _trip_costs(
        p.a,
        p.b,
        p.segment,
        p.fraction,
        p.to_a_s,
        p.to_a_m,
        p.to_b_s,
        p.to_b_m,
        p.fwd_s,
        p.bwd_s,
        p.fwd_m,
        p.bwd_m,
        p.reverse,
        seconds,
        metres,
        anchor[0],
        anchor[1],
    )


@numba.njit(cache=True, nogil=True)
def _part(fraction: float, cost: float) -> float:  # pragma: no cover - compiled
    # part_cost of one value.
    return 0.0 if fraction == 0.0 else fraction * cost


@numba.njit(cache=True, nogil=True)
def _trip_costs(
    a: IntArray,
    b: IntArray,
    segment: IntArray,
    fraction: FloatArray,
    to_a_s: FloatArray,
    to_a_m: FloatArray,
    to_b_s: FloatArray,
    to_b_m: FloatArray,
    fwd_s: FloatArray,
    bwd_s: FloatArray,
    fwd_m: FloatArray,
    bwd_m: FloatArray,
    reverse: bool,
    seconds: FloatArray,
    metres: FloatArray,
    anchor_seg: int,
    anchor_f: float,
) -> tuple[
    FloatArray, FloatArray, npt.NDArray[np.bool_], npt.NDArray[np.bool_]
]:  # pragma: no cover
    # trip_costs, point by point: the cheaper of the point's two segment ends, or the direct
    # trip along a segment shared with the anchor when that is faster.
    n = len(a)
    secs, mets = np.empty(n), np.empty(n)
    take_a, direct = np.zeros(n, np.bool_), np.zeros(n, np.bool_)
    for i in range(n):
        via_a, via_b = to_a_s[i] + seconds[a[i]], to_b_s[i] + seconds[b[i]]
        take_a[i] = via_a < via_b
        if take_a[i]:
            secs[i], mets[i] = via_a, to_a_m[i] + metres[a[i]]
        else:
            secs[i], mets[i] = via_b, to_b_m[i] + metres[b[i]]
        if segment[i] != anchor_seg:
            continue
        start = fraction[i] if reverse else anchor_f
        end = anchor_f if reverse else fraction[i]
        if end >= start:
            direct_s, direct_m = _part(end - start, fwd_s[i]), _part(end - start, fwd_m[i])
        else:
            direct_s, direct_m = _part(start - end, bwd_s[i]), _part(start - end, bwd_m[i])
        if direct_s < secs[i]:
            secs[i], mets[i], direct[i] = direct_s, direct_m, True
    return secs, mets, take_a, direct
