"""Exact travel times over a city's road network, per mode, with points snapped onto edges.

Dispatch asks "how long from each unit to this incident?": a many-to-one query, answered with one
bounded Dijkstra search on the reversed graph from the incident's edge (compiled, touching only
the nodes it reaches: :mod:`citywatch.routing.search`), then combined with each unit's position
along its own edge (computed once per AVL fix: :func:`~citywatch.routing.graph.segment_parts`).
Points are snapped to the nearest usable edge (not the nearest node), so a unit halfway along a
one-way street must drive on to its end.  The walk from the point to the road (the snap distance)
is reported but not added to travel times.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

import numpy as np
import numpy.typing as npt
from pyproj import Transformer

from citywatch.city.network import RoadNetwork
from citywatch.domain import LAT_RANGE, LON_RANGE
from citywatch.errors import SnapError, ValidationError
from citywatch.routing.graph import (
    ModeGraph,
    SegmentParts,
    build_mode_graph,
    point_entries,
    segment_parts,
    trip_costs,
)
from citywatch.routing.search import SearchGraph, SearchTree
from citywatch.routing.snapping import EdgeIndex
from citywatch.routing.speeds import MODES, Mode

if TYPE_CHECKING:
    from citywatch.city.pack import CityPack

__all__ = ["Route", "Router", "Snap", "TravelTimes"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
T = TypeVar("T")
ScalarT = TypeVar("ScalarT", bound=np.generic)

DEFAULT_SNAP_M = 250.0
_SNAP_CACHE_SIZE = 200_000  # points per mode; about 100 bytes each


@dataclass(frozen=True)
class Snap:
    """Points placed on the road network: segment index, fraction along it, distance to it."""

    segment: IntArray
    fraction: FloatArray
    distance_m: FloatArray
    lon: FloatArray
    lat: FloatArray

    def with_rows(self, rows: IntArray, new: Snap) -> Snap:
        """A copy with the points at ``rows`` replaced by those of ``new``."""

        def put(old: npt.NDArray[ScalarT], value: npt.NDArray[ScalarT]) -> npt.NDArray[ScalarT]:
            out = old.copy()
            out[rows] = value
            return out

        return Snap(
            put(self.segment, new.segment),
            put(self.fraction, new.fraction),
            put(self.distance_m, new.distance_m),
            put(self.lon, new.lon),
            put(self.lat, new.lat),
        )


@dataclass(frozen=True)
class TravelTimes:
    """Travel times (s) and road distances (m); ``inf`` where unreachable or beyond the limit."""

    seconds: FloatArray
    metres: FloatArray
    snap_distance_m: FloatArray


@dataclass(frozen=True)
class Route:
    """The fastest route between two points."""

    seconds: float
    metres: float
    coords: list[tuple[float, float]]
    snap_distance_m: tuple[float, float]


class _SnapCache:
    """Snapped positions by exact (lon, lat): a dict of row numbers into one float array, so a
    lookup of many points is one gather (units are snapped once per AVL fix, then reused)."""

    def __init__(self) -> None:
        self.index: dict[tuple[float, float], int] = {}
        self.rows = np.empty((0, 5))
        self.used = 0

    def __len__(self) -> int:
        return len(self.index)

    def clear(self) -> None:
        self.index.clear()
        self.used = 0

    def find(self, keys: list[tuple[float, float]]) -> IntArray:
        get = self.index.get
        return np.fromiter((get(k, -1) for k in keys), dtype=np.int64, count=len(keys))

    def add(self, keys: list[tuple[float, float]], rows: FloatArray) -> None:
        start = self.used
        if start + len(rows) > len(self.rows):  # grow by doubling: amortised O(1) a point
            grown = np.empty((max(2 * len(self.rows), start + len(rows), 1024), 5))
            grown[:start] = self.rows[:start]
            self.rows = grown
        self.rows[start : start + len(rows)] = rows
        self.used = start + len(rows)
        for i, key in enumerate(keys):
            self.index[key] = start + i


@dataclass(frozen=True)
class _Fix:
    """The last positions asked about in one mode (a fleet's AVL fixes), with their snaps and
    segment parts: reused as long as the positions are the same, re-snapped row by row when
    some of them move."""

    pts: FloatArray
    snap: Snap
    parts: dict[bool, SegmentParts]


@dataclass
class Router:
    """Travel times and routes over one road network, for every travel mode.

    Build with :meth:`from_pack` or :meth:`from_network`; mode graphs are compiled on first use.
    """

    network: RoadNetwork
    crs: str
    speed_overrides: Mapping[str, float] = field(default_factory=dict)
    max_snap_m: float = DEFAULT_SNAP_M
    _graphs: dict[str, ModeGraph] = field(default_factory=dict, repr=False)
    _lines: npt.NDArray[np.object_] | None = field(default=None, repr=False)
    _index: EdgeIndex | None = field(default=None, repr=False)
    _snaps: dict[str, _SnapCache] = field(default_factory=dict, repr=False)
    _searches: dict[tuple[str, bool], SearchGraph] = field(default_factory=dict, repr=False)
    _fixes: dict[str, _Fix] = field(default_factory=dict, repr=False)
    # The service routes from many threads: the lazily built graphs, index and snap caches
    # change under this lock (seen: a unit's mode looked up in an index still being built).
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    def __post_init__(self) -> None:
        self._to_metric = Transformer.from_crs("EPSG:4326", self.crs, always_xy=True)
        self._to_wgs = Transformer.from_crs(self.crs, "EPSG:4326", always_xy=True)

    @classmethod
    def from_pack(cls, pack: CityPack) -> Router:
        """The router of a city pack, with the pack's speed overrides and snap distance."""
        return cls(
            network=pack.network,
            crs=pack.crs,
            speed_overrides=pack.speed_overrides,
            max_snap_m=pack.max_snap_m,
        )

    @classmethod
    def from_network(
        cls,
        network: RoadNetwork,
        crs: str,
        *,
        speed_overrides: Mapping[str, float] | None = None,
        max_snap_m: float = DEFAULT_SNAP_M,
    ) -> Router:
        """A router over a bare network in the given metric CRS."""
        return cls(network, crs, dict(speed_overrides or {}), max_snap_m)

    def prepare(self) -> None:
        """Build every mode's graph and the snapping index now (a service does this at start,
        so the first emergency call does not pay for it)."""
        for mode in MODES:
            self.graph(mode)
        self._edge_index()

    def _edge_index(self) -> EdgeIndex:
        """The snapping index over every edge, with every built mode (made once, complete
        before other threads can see it)."""
        with self._lock:
            if self._index is None:
                index = EdgeIndex(self._edge_lines())
                for m, g in self._graphs.items():
                    index.add_mode(m, g.seg_edge, g.seg_flip)
                self._index = index
            return self._index

    def graph(self, mode: Mode) -> ModeGraph:
        """The compiled graph of ``mode`` (built once, then cached)."""
        if mode not in MODES:
            raise ValidationError(f"unknown travel mode {mode!r}; choose from {', '.join(MODES)}")
        g = self._graphs.get(mode)
        if g is None:
            with self._lock:
                g = self._graphs.get(mode)
                if g is None:
                    g = build_mode_graph(
                        self.network, mode, self._edge_lines(), self.speed_overrides
                    )
                    if self._index is not None:
                        self._index.add_mode(mode, g.seg_edge, g.seg_flip)
                    self._graphs[mode] = g
        return g

    def _edge_lines(self) -> npt.NDArray[np.object_]:
        with self._lock:
            if self._lines is None:
                self._lines = self.network.edge_geometries(self.crs)
            return self._lines

    # ----------------------------------------------------------------------------- snapping
    def snap(
        self,
        lonlat: npt.ArrayLike,
        mode: Mode = "car",
        max_distance_m: float | None = None,
    ) -> Snap:
        """Snap points to the nearest edge usable by ``mode``.

        Parameters
        ----------
        lonlat : array_like, shape (n, 2) or (2,)
            WGS-84 longitude/latitude.
        mode : str
            Travel mode whose edges are candidates.
        max_distance_m : float, optional
            Reject points farther than this from every usable edge (default: the pack's
            ``max_snap_m``, 250 m unless set).

        Raises
        ------
        SnapError
            If a point is farther than ``max_distance_m`` from the network.
        """
        pts = np.atleast_2d(np.asarray(lonlat, dtype=np.float64))
        if pts.shape[1] != 2 or not np.all(np.isfinite(pts)):
            raise ValidationError("coordinates must be finite (lon, lat) pairs")
        (lon_lo, lon_hi), (lat_lo, lat_hi) = LON_RANGE, LAT_RANGE
        lon, lat = pts[:, 0], pts[:, 1]
        if np.any((lon < lon_lo) | (lon > lon_hi)) or np.any((lat < lat_lo) | (lat > lat_hi)):
            raise ValidationError("longitude must be within ±180 and latitude within ±90")
        limit = self.max_snap_m if max_distance_m is None else max_distance_m
        keys = list(zip(pts[:, 0].tolist(), pts[:, 1].tolist(), strict=True))
        with self._lock:
            cache = self._snaps.setdefault(mode, _SnapCache())
            where = cache.find(keys)
            missing = np.flatnonzero(where < 0)
            if len(missing):
                if len(cache) + len(missing) > _SNAP_CACHE_SIZE:
                    cache.clear()
                new_keys = [keys[i] for i in missing.tolist()]
                cache.add(new_keys, self._snap_new(pts[missing], mode))
                where = cache.find(keys)
            rows = cache.rows[where]
        seg, frac, d, slon, slat = rows.T
        far = d > limit
        if far.any():
            i = int(np.argmax(far))
            raise SnapError(
                f"point ({pts[i, 0]:.6f}, {pts[i, 1]:.6f}) is {d[i]:.0f} m from the nearest road "
                f"usable by {mode} (limit {limit:.0f} m): outside the city pack or off the network"
            )
        return Snap(seg.astype(np.int64), frac, d, slon, slat)

    def _snap_point(self, point: tuple[float, float], mode: Mode) -> Snap:
        """:meth:`snap` of one point without its per-call array work (an incident's location is
        snapped once per mode, then answered from the cache)."""
        key = (float(point[0]), float(point[1]))
        valid = math.isfinite(key[0] + key[1]) and abs(key[0]) <= 180 and abs(key[1]) <= 90
        with self._lock:
            cache = self._snaps.setdefault(mode, _SnapCache())
            at = cache.index.get(key)
            if at is None and valid:  # otherwise snap() below raises the error
                self._snap_point_all_modes(key, mode)
                at = cache.index[key]
            row = None if at is None else cache.rows[at : at + 1].copy()
        if row is None or row[0, 2] > self.max_snap_m:
            return self.snap(np.asarray(point), mode)  # raises the error
        return Snap(row[:, 0].astype(np.int64), row[:, 1], row[:, 2], row[:, 3], row[:, 4])

    def _snap_point_all_modes(self, key: tuple[float, float], mode: Mode) -> None:
        """Snap one new point for ``mode`` and every other mode whose graph is built, at once.

        A new incident is asked about once per travel mode of the fleet: its candidate edges
        are found and measured once for all modes (:class:`EdgeIndex`), instead of one
        spatial query and projection per mode.
        """
        self.graph(mode)
        modes: list[Mode] = [mode] + [
            m
            for m in MODES
            if m != mode and m in self._graphs and key not in self._snaps.get(m, _SnapCache()).index
        ]
        rows = self._snap_rows(np.array([key], dtype=np.float64), modes)
        for j, m in enumerate(modes):
            cache = self._snaps.setdefault(m, _SnapCache())
            if len(cache) >= _SNAP_CACHE_SIZE:
                cache.clear()
            cache.add([key], rows[j])

    def _snap_new(self, pts: FloatArray, mode: Mode) -> FloatArray:
        # Units that stand still or are asked about again (every recommendation) are answered
        # from the cache instead.
        self.graph(mode)
        rows: FloatArray = self._snap_rows(pts, [mode])[0]
        return rows

    def _snap_rows(self, pts: FloatArray, modes: list[Mode]) -> FloatArray:
        """Snap cache rows (segment, fraction, distance, lon, lat) of ``pts`` in each of
        ``modes`` (built), shape (modes, points, 5)."""
        x, y = self._to_metric.transform(pts[:, 0], pts[:, 1])
        near = self._edge_index().nearest(np.column_stack([x, y]), list(modes))
        slon, slat = self._to_wgs.transform(near.x.ravel(), near.y.ravel())
        return np.stack(
            [
                near.segment.astype(np.float64),
                near.fraction,
                near.distance_m,
                np.reshape(slon, near.x.shape),
                np.reshape(slat, near.x.shape),
            ],
            axis=-1,
        )

    # ----------------------------------------------------------------------------- queries
    def node_times_to(
        self, target: tuple[float, float], mode: Mode = "car", limit_s: float | None = None
    ) -> tuple[FloatArray, FloatArray]:
        """Seconds and metres from every network node to ``target`` (``inf`` if unreachable)."""
        snap = self.snap(np.asarray(target), mode)
        return self._search(mode, snap, True, limit_s, _all_nodes)

    def node_times_from(
        self, origin: tuple[float, float], mode: Mode = "car", limit_s: float | None = None
    ) -> tuple[FloatArray, FloatArray]:
        """Seconds and metres from ``origin`` to every network node (``inf`` if unreachable)."""
        snap = self.snap(np.asarray(origin), mode)
        return self._search(mode, snap, False, limit_s, _all_nodes)

    def _search(
        self,
        mode: Mode,
        snap: Snap,
        reverse: bool,
        limit_s: float | None,
        read: Callable[[SearchTree], T],
    ) -> T:
        # One search from the point's segment ends, with the point's offsets.
        g = self.graph(mode)
        entries = point_entries(g, int(snap.segment[0]), float(snap.fraction[0]), reverse=reverse)
        return self._search_graph(mode, reverse).search(entries, limit_s, read)

    def _search_graph(self, mode: Mode, reverse: bool) -> SearchGraph:
        key = (mode, reverse)
        search = self._searches.get(key)
        if search is None:
            g = self.graph(mode)
            with self._lock:
                search = self._searches.setdefault(
                    key,
                    SearchGraph(
                        g.seconds_rev if reverse else g.seconds,
                        g.metres_rev if reverse else g.metres,
                    ),
                )
        return search

    def node_reach(
        self, mode: Mode, sources: npt.ArrayLike, limit_s: float
    ) -> tuple[IntArray, IntArray, FloatArray]:
        """Every node reached from each source node within ``limit_s`` (inclusive).

        One bounded search per source that touches only the nodes it reaches, so the cost and
        the memory follow the pairs within the limit, not sources x network size.

        Parameters
        ----------
        mode : str
            Travel mode.
        sources : array_like of int
            Network node positions to search from.
        limit_s : float
            Travel-time limit in seconds.

        Returns
        -------
        tuple of ndarray
            ``(source, node, seconds)`` of every reached pair: ``source`` indexes ``sources``.
        """
        start = np.asarray(sources, dtype=np.int64).reshape(-1)
        graph = self._search_graph(mode, False)
        zero = np.zeros(1)

        def read(tree: SearchTree) -> tuple[IntArray, FloatArray]:
            nodes = tree.touched.copy()
            return nodes, tree.seconds(nodes)

        found = [
            graph.search((start[i : i + 1], zero, zero), limit_s, read) for i in range(len(start))
        ]
        counts = np.array([len(n) for n, _ in found], dtype=np.int64)
        if not found:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0)
        return (
            np.repeat(np.arange(len(start)), counts),
            np.concatenate([n for n, _ in found]),
            np.concatenate([t for _, t in found]),
        )

    def _fixed(self, pts: FloatArray, mode: Mode, reverse: bool) -> tuple[Snap, SegmentParts]:
        """Snaps and segment parts of ``pts``, reused from the last call of this mode for the
        positions that have not moved (one vectorised comparison, no loop over points)."""
        last = self._fixes.get(mode)
        if last is not None and last.pts.shape == pts.shape:
            moved = np.flatnonzero((last.pts != pts).any(axis=1))
            if not len(moved):
                if reverse not in last.parts:
                    g = self.graph(mode)
                    s = last.snap
                    last.parts[reverse] = segment_parts(g, s.segment, s.fraction, reverse=reverse)
                return last.snap, last.parts[reverse]
            if len(moved) < len(pts):
                snap = last.snap.with_rows(moved, self.snap(pts[moved], mode))
            else:
                snap = self.snap(pts, mode)
        else:
            snap = self.snap(pts, mode)
        parts = segment_parts(self.graph(mode), snap.segment, snap.fraction, reverse=reverse)
        self._fixes[mode] = _Fix(pts.copy(), snap, {reverse: parts})
        return snap, parts

    def many_to_one(
        self,
        sources: npt.ArrayLike,
        target: tuple[float, float],
        mode: Mode = "car",
        limit_s: float | None = None,
    ) -> TravelTimes:
        """Travel time from each source point to one target, for one mode (exact).

        Parameters
        ----------
        sources : array_like, shape (n, 2)
            WGS-84 longitude/latitude of the sources (e.g. every available unit of this mode).
        target : tuple of float
            WGS-84 longitude/latitude of the destination (e.g. the incident).
        mode : str
            Travel mode: speeds, usable ways and one-way rules.
        limit_s : float, optional
            Stop searching beyond this many seconds; farther sources get ``inf``.

        Returns
        -------
        TravelTimes
            Seconds and metres per source, and each source's snap distance.
        """
        return self._many(sources, target, mode, limit_s, reverse=True)

    def one_to_many(
        self,
        source: tuple[float, float],
        targets: npt.ArrayLike,
        mode: Mode = "car",
        limit_s: float | None = None,
    ) -> TravelTimes:
        """Travel time from one source point to each target point, for one mode (exact)."""
        return self._many(targets, source, mode, limit_s, reverse=False)

    def _many(
        self,
        others: npt.ArrayLike,
        anchor: tuple[float, float],
        mode: Mode,
        limit_s: float | None,
        *,
        reverse: bool,
    ) -> TravelTimes:
        pts = np.atleast_2d(np.asarray(others, dtype=np.float64))
        if pts.size == 0:
            empty = np.zeros(0)
            return TravelTimes(empty, empty, empty)
        anchor_snap = self._snap_point(anchor, mode)
        snap, parts = self._fixed(pts, mode, reverse)
        secs, metres, _, _ = self._search(
            mode, anchor_snap, reverse, limit_s, lambda t: _finish(t, parts, anchor_snap)
        )
        if limit_s is not None:
            beyond = secs > limit_s
            secs = np.where(beyond, np.inf, secs)
            metres = np.where(beyond, np.inf, metres)
        return TravelTimes(secs, metres, snap.distance_m)

    def matrix(
        self,
        origins: npt.ArrayLike,
        destinations: npt.ArrayLike,
        mode: Mode = "car",
        limit_s: float | None = None,
    ) -> tuple[FloatArray, FloatArray]:
        """Seconds and metres from every origin to every destination, shape (n, m)."""
        o = np.atleast_2d(np.asarray(origins, dtype=np.float64))
        d = np.atleast_2d(np.asarray(destinations, dtype=np.float64))
        secs = np.empty((len(o), len(d)))
        metres = np.empty((len(o), len(d)))
        for j, dest in enumerate(d):
            res = self.many_to_one(o, (float(dest[0]), float(dest[1])), mode, limit_s)
            secs[:, j], metres[:, j] = res.seconds, res.metres
        return secs, metres

    def route(
        self, origin: tuple[float, float], destination: tuple[float, float], mode: Mode = "car"
    ) -> Route:
        """The fastest route from ``origin`` to ``destination``, with its path as coordinates.

        Raises
        ------
        SnapError
            If either point is off the network.
        ValidationError
            If the destination cannot be reached by this mode.
        """
        g = self.graph(mode)
        o = self.snap(np.asarray(origin), mode)
        d = self.snap(np.asarray(destination), mode)
        parts = segment_parts(g, d.segment, d.fraction, reverse=False)

        def read(tree: SearchTree) -> tuple[float, float, list[int]]:
            secs, metres, take_a, direct = _finish(tree, parts, o)
            if not np.isfinite(secs[0]) or direct[0]:
                return float(secs[0]), float(metres[0]), []
            # Walk the search tree back from the end of the destination's segment we enter by.
            return (
                float(secs[0]),
                float(metres[0]),
                tree.path_to(int(parts.a[0] if take_a[0] else parts.b[0])),
            )

        secs, metres, path = self._search(mode, o, False, None, read)
        if not np.isfinite(secs):
            raise ValidationError(f"the destination cannot be reached from the origin by {mode}")
        coords = [(float(o.lon[0]), float(o.lat[0]))]
        lon, lat = self.network.lon, self.network.lat
        coords += [(float(lon[n]), float(lat[n])) for n in path]
        coords.append((float(d.lon[0]), float(d.lat[0])))
        return Route(
            seconds=secs,
            metres=metres,
            coords=coords,
            snap_distance_m=(float(o.distance_m[0]), float(d.distance_m[0])),
        )


def _all_nodes(tree: SearchTree) -> tuple[FloatArray, FloatArray]:
    return tree.all_seconds(), tree.all_metres()


def _finish(
    tree: SearchTree, parts: SegmentParts, anchor: Snap
) -> tuple[FloatArray, FloatArray, npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    # From the anchor's search tree to each other point along its own segment: the seconds,
    # metres, whether the point's segment is entered (or left) at its end a, and whether the
    # trip runs straight along a segment shared with the anchor.
    return trip_costs(
        parts, tree.dist, tree.metres_to, (int(anchor.segment[0]), float(anchor.fraction[0]))
    )
