"""A seeded route-choice simulation of a fleeing offender.

Model (documented assumptions, no person-level or demographic input):

* the offender leaves the last known position in his mode (speeds, ways, one-way rules of
  :mod:`citywatch.routing.speeds`) towards a destination within ``horizon_s`` of it;
* destinations are network nodes, drawn with weights: 1, times :data:`HIDING_KIND_WEIGHT` within
  :data:`PLACE_RADIUS_M` of a place of a kind in :data:`HIDING_KINDS` (markets, urban villages:
  "roads in every direction, weak camera coverage"), times :data:`COVERED_WEIGHT` where a working
  camera sees the street at that hour (optional input), times ``exp(kappa (cos d - 1))`` for the
  angle ``d`` between the destination's bearing and the direction first seen (von Mises,
  :data:`HEADING_KAPPA`);
* he takes the fastest path under perceived edge costs: the true travel times times a
  log-normal factor per edge with mean 1 and log-sd ``sigma`` (:data:`NOISE_SIGMA`), drawn anew
  every ``routes_per_draw`` routes, so routes are shortest and near-shortest paths;
* he moves at the mode's true speed along that path: the time he passes each node is the true
  cumulated travel time.

Each perceived-cost search is one bounded Dijkstra of :class:`citywatch.routing.search.
SearchGraph` (the router's own search, from the entries the router makes for a point:
:func:`citywatch.routing.graph.point_entries`), not a second implementation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
import shapely

from citywatch.city.pack import Place
from citywatch.errors import ValidationError
from citywatch.pursuit.reach import Incident
from citywatch.routing import Router
from citywatch.routing.graph import point_entries
from citywatch.routing.search import SearchGraph, SearchTree

__all__ = [
    "COVERED_WEIGHT",
    "HEADING_KAPPA",
    "HIDING_KINDS",
    "HIDING_KIND_WEIGHT",
    "NOISE_SIGMA",
    "PLACE_RADIUS_M",
    "RouteSet",
    "destination_weights",
    "node_xy",
    "simulate_routes",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

HIDING_KINDS: tuple[str, ...] = ("market", "urban_village")
HIDING_KIND_WEIGHT = 4.0
PLACE_RADIUS_M = 150.0
COVERED_WEIGHT = 0.25
CAMERA_RADIUS_M = 30.0
HEADING_KAPPA = 2.0
NOISE_SIGMA = 0.3
DEFAULT_HORIZON_S = 600.0


@dataclass(frozen=True)
class RouteSet:
    """Simulated flight routes, stored as CSR rows of (node, seconds since the origin time).

    ``indptr[r]:indptr[r+1]`` are the nodes of route ``r`` in travel order; ``end`` its last.
    """

    indptr: IntArray
    nodes: IntArray
    seconds: FloatArray
    n_nodes: int
    seed: int

    @property
    def n_routes(self) -> int:
        """Number of routes."""
        return len(self.indptr) - 1

    @property
    def end(self) -> IntArray:
        """The destination node of each route."""
        return self.nodes[self.indptr[1:] - 1]

    @property
    def route_of(self) -> IntArray:
        """The route index of each stored (node, seconds) entry."""
        return np.repeat(np.arange(self.n_routes), np.diff(self.indptr))

    def passes(self) -> sp.csr_array:
        """Routes x nodes matrix, 1 where a route passes a node."""
        ones = np.ones(len(self.nodes))
        m = sp.csr_array((ones, (self.route_of, self.nodes)), shape=(self.n_routes, self.n_nodes))
        m.data[:] = 1.0  # a route passing a node twice counts once
        return m


def node_xy(router: Router) -> FloatArray:
    """Node coordinates in the pack's metric CRS, shape (n, 2)."""
    nodes = router.network.nodes
    x, y = router._to_metric.transform(nodes["lon"].to_numpy(), nodes["lat"].to_numpy())
    return np.column_stack([x, y])


def destination_weights(
    xy: FloatArray,
    origin_xy: tuple[float, float],
    *,
    places: Sequence[Place] = (),
    place_xy: Sequence[object] = (),
    covered_xy: FloatArray | None = None,
    heading_deg: float | None = None,
) -> FloatArray:
    """Relative weight of every node as a destination (see the module docstring).

    Parameters
    ----------
    xy : ndarray, shape (n, 2)
        Node coordinates (metric CRS).
    origin_xy : tuple of float
        The origin (metric CRS).
    places : sequence of Place
        The pack's places; only kinds in :data:`HIDING_KINDS` raise weights.
    place_xy : sequence of shapely geometries
        The same places' geometries in the metric CRS.
    covered_xy : ndarray, shape (m, 2), optional
        Street points a working camera sees at the hour.
    heading_deg : float, optional
        Direction first seen, degrees clockwise from north.
    """
    w = np.ones(len(xy))
    pts = shapely.points(xy[:, 0], xy[:, 1])
    hiding = [g for p, g in zip(places, place_xy, strict=True) if p.kind in HIDING_KINDS]
    if hiding:
        tree = shapely.STRtree(np.asarray(hiding, dtype=object))
        near, _ = tree.query(pts, predicate="dwithin", distance=PLACE_RADIUS_M)
        w[np.unique(near)] *= HIDING_KIND_WEIGHT
    if covered_xy is not None and len(covered_xy):
        cams = shapely.STRtree(np.asarray(shapely.points(covered_xy[:, 0], covered_xy[:, 1])))
        seen, _ = cams.query(pts, predicate="dwithin", distance=CAMERA_RADIUS_M)
        w[np.unique(seen)] *= COVERED_WEIGHT
    if heading_deg is not None:
        bearing = np.arctan2(xy[:, 0] - origin_xy[0], xy[:, 1] - origin_xy[1])
        w *= np.exp(HEADING_KAPPA * (np.cos(bearing - np.radians(heading_deg)) - 1.0))
    return w


def simulate_routes(
    router: Router,
    incident: Incident,
    weights: FloatArray | None = None,
    *,
    n_routes: int = 2000,
    horizon_s: float = DEFAULT_HORIZON_S,
    sigma: float = NOISE_SIGMA,
    routes_per_draw: int = 10,
    seed: int = 0,
) -> RouteSet:
    """Simulate ``n_routes`` flight routes from ``incident`` (seeded: same seed, same routes).

    Parameters
    ----------
    router : Router
        The pack's router.
    incident : Incident
        Origin, time and the offender's mode.
    weights : ndarray, optional
        Destination weight per node (:func:`destination_weights`; default: equal).
    n_routes, horizon_s, sigma, routes_per_draw, seed
        Routes to draw; destinations lie within ``horizon_s`` of the origin at true speed;
        log-sd of the perceived-cost noise; routes sharing one noise draw; random seed.

    Returns
    -------
    RouteSet
    """
    if n_routes <= 0 or routes_per_draw <= 0 or horizon_s <= 0 or sigma < 0:
        raise ValidationError("routes, draws and horizon must be positive, sigma >= 0")
    mode = incident.mode
    g = router.graph(mode)
    snap = router.snap(np.asarray((incident.lon, incident.lat)), mode)
    entries = point_entries(g, int(snap.segment[0]), float(snap.fraction[0]), reverse=False)
    # True speed: the router's own (cached) search graph from the same point.
    true_s, _ = router.node_times_from((incident.lon, incident.lat), mode, limit_s=horizon_s)
    w = np.ones(g.n_nodes) if weights is None else np.asarray(weights, dtype=np.float64)
    w = np.where(np.isfinite(true_s), w, 0.0)
    if w.sum() <= 0:
        raise ValidationError("no street is reachable from the origin within the horizon")
    p = w / w.sum()
    rng = np.random.default_rng(seed)
    entry_s: dict[int, float] = {}
    for node, secs in zip(entries[0].tolist(), entries[1].tolist(), strict=True):
        entry_s[node] = min(secs, entry_s.get(node, np.inf))  # the search keeps the faster
    rows: list[IntArray] = []
    times: list[FloatArray] = []
    while len(rows) < n_routes:
        noisy = g.seconds.copy()
        noisy.data = noisy.data * rng.lognormal(-(sigma**2) / 2, sigma, len(noisy.data))
        search = SearchGraph(noisy, g.metres)  # copies the noisy costs: one graph per draw
        dests = rng.choice(g.n_nodes, size=routes_per_draw, p=p)
        wanted = dests[: n_routes - len(rows)]
        # Bounded: a perceived cost beyond horizon * exp(4 sigma) needs many edges each drawn
        # above the 99.997th percentile; an unreached destination falls back to a full search.
        paths = search.search(entries, horizon_s * float(np.exp(4 * sigma)), _paths(dests, wanted))
        if paths is None:
            paths = search.search(entries, None, _paths(dests, wanted))
        assert paths is not None  # the full search reaches every destination of weight > 0
        for path in paths:
            step = np.zeros(0)
            if len(path) > 1:
                step = np.asarray(g.seconds[path[:-1], path[1:]], dtype=np.float64).ravel()
            t = entry_s[int(path[0])] + np.concatenate([[0.0], np.cumsum(step)])
            rows.append(path)
            times.append(t)
    indptr = np.concatenate([[0], np.cumsum([len(r) for r in rows])]).astype(np.int64)
    return RouteSet(indptr, np.concatenate(rows), np.concatenate(times), g.n_nodes, seed)


def _paths(dests: IntArray, wanted: IntArray) -> Callable[[SearchTree], list[IntArray] | None]:
    """A search's ``read``: the fastest paths to ``wanted``, or None if one of ``dests`` (the
    draw's destinations, ``wanted`` among them) was not reached within the search's limit."""

    def read(tree: SearchTree) -> list[IntArray] | None:
        if not np.all(np.isfinite(tree.seconds(dests))):
            return None
        return [np.asarray(tree.path_to(int(d)), dtype=np.int64) for d in wanted.tolist()]

    return read
