"""Exact travel times over a city's road network, per mode, with points snapped onto edges.

Dispatch asks "how long from each unit to this incident?": a many-to-one query, answered with one
Dijkstra search on the reversed graph from the incident's edge (scipy's compiled
``scipy.sparse.csgraph.dijkstra``), then combined with each unit's position along its own edge.
Points are snapped to the nearest usable edge (not the nearest node), so a unit halfway along a
one-way street must drive on to its end.  The walk from the point to the road (the snap distance)
is reported but not added to travel times.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import shapely
from pyproj import Transformer

from citywatch.city.network import RoadNetwork
from citywatch.domain import LAT_RANGE, LON_RANGE
from citywatch.errors import SnapError, ValidationError
from citywatch.routing.graph import ModeGraph, build_mode_graph, part_cost, segment_costs
from citywatch.routing.search import SearchTree, VirtualSourceGraph
from citywatch.routing.speeds import MODES, Mode

if TYPE_CHECKING:
    from citywatch.city.pack import CityPack

__all__ = ["Route", "Router", "Snap", "TravelTimes"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

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
    _snaps: dict[str, _SnapCache] = field(default_factory=dict, repr=False)
    _searches: dict[tuple[str, bool], VirtualSourceGraph] = field(default_factory=dict, repr=False)

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

    def graph(self, mode: Mode) -> ModeGraph:
        """The compiled graph of ``mode`` (built once, then cached)."""
        if mode not in MODES:
            raise ValidationError(f"unknown travel mode {mode!r}; choose from {', '.join(MODES)}")
        if mode not in self._graphs:
            if self._lines is None:
                self._lines = self.network.edge_geometries(self.crs)
            self._graphs[mode] = build_mode_graph(
                self.network, mode, self._lines, self.speed_overrides
            )
        return self._graphs[mode]

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
        cache = self._snaps.setdefault(mode, _SnapCache())
        keys = list(zip(pts[:, 0].tolist(), pts[:, 1].tolist(), strict=True))
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

    def _snap_new(self, pts: FloatArray, mode: Mode) -> FloatArray:
        # GEOS nearest-segment queries cost ~15 us a point; units that stand still or are asked
        # about again (every recommendation) are answered from the cache instead.
        g = self.graph(mode)
        x, y = self._to_metric.transform(pts[:, 0], pts[:, 1])
        points = shapely.points(x, y)
        idx, dist = g.tree.query_nearest(points, return_distance=True, all_matches=False)
        seg = np.zeros(len(pts), dtype=np.int64)
        d = np.full(len(pts), np.inf)
        seg[idx[0]] = idx[1]
        d[idx[0]] = dist
        lines = g.seg_lines[seg]
        frac = shapely.line_locate_point(lines, points, normalized=True)
        on_road = shapely.line_interpolate_point(lines, frac, normalized=True)
        slon, slat = self._to_wgs.transform(shapely.get_x(on_road), shapely.get_y(on_road))
        return np.column_stack([seg, frac, d, slon, slat]).astype(np.float64)

    # ----------------------------------------------------------------------------- queries
    def node_times_to(
        self, target: tuple[float, float], mode: Mode = "car", limit_s: float | None = None
    ) -> tuple[FloatArray, FloatArray]:
        """Seconds and metres from every network node to ``target`` (``inf`` if unreachable)."""
        return self._node_times(
            self._search(mode, self.snap(np.asarray(target), mode), True, limit_s)
        )

    def node_times_from(
        self, origin: tuple[float, float], mode: Mode = "car", limit_s: float | None = None
    ) -> tuple[FloatArray, FloatArray]:
        """Seconds and metres from ``origin`` to every network node (``inf`` if unreachable)."""
        return self._node_times(
            self._search(mode, self.snap(np.asarray(origin), mode), False, limit_s)
        )

    def _search(self, mode: Mode, snap: Snap, reverse: bool, limit_s: float | None) -> SearchTree:
        # One search from the point as a virtual source.  Reverse search (to a point): enter its
        # segment at a and drive f*fwd, or at b and drive (1-f)*bwd.  Forward search (from a
        # point): leave towards b or, if allowed, towards a.
        g = self.graph(mode)
        seg, f = int(snap.segment[0]), float(snap.fraction[0])
        a, b = int(g.seg_a[seg]), int(g.seg_b[seg])
        if reverse:
            raw = [
                (a, f, g.seg_fwd_s[seg], g.seg_fwd_m[seg]),
                (b, 1 - f, g.seg_bwd_s[seg], g.seg_bwd_m[seg]),
            ]
        else:
            raw = [
                (b, 1 - f, g.seg_fwd_s[seg], g.seg_fwd_m[seg]),
                (a, f, g.seg_bwd_s[seg], g.seg_bwd_m[seg]),
            ]
        entries = [(node, float(part_cost(x, s)), float(part_cost(x, m))) for node, x, s, m in raw]
        key = (mode, reverse)
        if key not in self._searches:
            self._searches[key] = VirtualSourceGraph(
                g.seconds_rev if reverse else g.seconds, g.metres_rev if reverse else g.metres
            )
        return self._searches[key].search(entries, limit_s)

    def _node_times(self, tree: SearchTree) -> tuple[FloatArray, FloatArray]:
        return tree.seconds, tree.metres(np.arange(len(tree.seconds)))

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
        anchor_snap = self.snap(np.asarray(anchor), mode)
        tree = self._search(mode, anchor_snap, reverse, limit_s)
        s = self.snap(pts, mode)
        secs, metres, _, _ = self._finish(mode, tree, anchor_snap, s, reverse, limit_s)
        return TravelTimes(secs, metres, s.distance_m)

    def _finish(
        self,
        mode: Mode,
        tree: SearchTree,
        anchor: Snap,
        others: Snap,
        reverse: bool,
        limit_s: float | None,
    ) -> tuple[FloatArray, FloatArray, npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
        # From the anchor's search tree to each other point along its own segment: returns the
        # seconds, metres, whether the point's segment is entered (or left) at its end a, and
        # whether the trip runs straight along a segment shared with the anchor.
        g = self.graph(mode)
        a, b = g.seg_a[others.segment], g.seg_b[others.segment]
        secs, metres, take_a, direct = segment_costs(
            g,
            others.segment,
            others.fraction,
            (tree.seconds[a], None),
            (tree.seconds[b], None),
            (int(anchor.segment[0]), float(anchor.fraction[0])),
            reverse=reverse,
            end_metres=tree.metres,
        )
        if limit_s is not None:
            beyond = secs > limit_s
            secs = np.where(beyond, np.inf, secs)
            metres = np.where(beyond, np.inf, metres)
        return secs, metres, take_a, direct

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
        tree = self._search(mode, o, False, None)
        secs, metres, take_a, direct = self._finish(mode, tree, o, d, False, None)
        if not np.isfinite(secs[0]):
            raise ValidationError(f"the destination cannot be reached from the origin by {mode}")
        coords = [(float(o.lon[0]), float(o.lat[0]))]
        if not direct[0]:
            # Walk the search tree back from the end of the destination's segment we enter by.
            dseg = int(d.segment[0])
            node = int(g.seg_a[dseg] if take_a[0] else g.seg_b[dseg])
            pred = tree.pred
            path = [node]
            while pred[path[-1]] != tree.virtual:
                path.append(int(pred[path[-1]]))
            path.reverse()
            lon, lat = self.network.lon, self.network.lat
            coords += [(float(lon[n]), float(lat[n])) for n in path]
        coords.append((float(d.lon[0]), float(d.lat[0])))
        return Route(
            seconds=float(secs[0]),
            metres=float(metres[0]),
            coords=coords,
            snap_distance_m=(float(o.distance_m[0]), float(d.distance_m[0])),
        )
