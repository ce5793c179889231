"""Streets as undirected segments in the pack's metric CRS, sampled for visibility.

A two-way street is two directed edges of the road network and one street here: coverage is a
share of street *length*, and a metre of street is seen or not whatever the direction of travel.
Each segment is cut into pieces of at most :data:`SAMPLE_SPACING_M`; a piece counts as seen when
its midpoint is (the sampling error is at most half a piece at each end of a seen stretch).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
import shapely
from pyproj import Transformer

from citywatch.city import CityPack
from citywatch.city.network import RoadNetwork

__all__ = ["SAMPLE_SPACING_M", "StreetSamples", "Streets"]

#: Longest street piece (m) represented by one sample point.
SAMPLE_SPACING_M = 10.0

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class StreetSamples:
    """Sample points along the streets: one per piece.

    Attributes
    ----------
    segment : numpy.ndarray
        Street segment of each piece.
    offset_m : numpy.ndarray
        Distance of the piece's midpoint from the segment's ``u`` end, along the street.
    length_m : numpy.ndarray
        Length of the piece (the pieces of a segment add up to its length).
    x, y : numpy.ndarray
        Metric coordinates of the midpoint.
    """

    segment: IntArray
    offset_m: FloatArray
    length_m: FloatArray
    x: FloatArray
    y: FloatArray

    def __len__(self) -> int:
        return len(self.segment)


@dataclass(frozen=True)
class Streets:
    """Undirected street segments.

    Attributes
    ----------
    u, v : numpy.ndarray
        End node positions (network node indices).
    length_m : numpy.ndarray
        Street length of each segment.
    lines : numpy.ndarray
        Shapely lines in ``crs`` (from ``u`` to ``v``).
    node_x, node_y : numpy.ndarray
        Metric coordinates of the network's nodes.
    crs : str
        The metric CRS.
    """

    u: IntArray
    v: IntArray
    length_m: FloatArray
    lines: npt.NDArray[np.object_]
    node_x: FloatArray
    node_y: FloatArray
    crs: str

    @classmethod
    def from_network(cls, network: RoadNetwork, crs: str) -> Streets:
        """One segment per unordered node pair of the network (the first edge drawn)."""
        edges = network.edges
        u = edges["u"].to_numpy(dtype=np.int64)
        v = edges["v"].to_numpy(dtype=np.int64)
        n = len(network.nodes)
        key = np.minimum(u, v) * n + np.maximum(u, v)
        _, first = np.unique(key, return_index=True)
        first = np.sort(first)
        first = first[u[first] != v[first]]  # a loop edge has no length between two ends
        lines = network.edge_geometries(crs)[first]
        x, y = Transformer.from_crs("EPSG:4326", crs, always_xy=True).transform(
            network.lon, network.lat
        )
        return cls(
            u=u[first],
            v=v[first],
            length_m=np.asarray(shapely.length(lines), dtype=np.float64),
            lines=lines,
            node_x=np.asarray(x, dtype=np.float64),
            node_y=np.asarray(y, dtype=np.float64),
            crs=crs,
        )

    @classmethod
    def from_pack(cls, pack: CityPack) -> Streets:
        """The streets of a city pack in its metric CRS."""
        return cls.from_network(pack.network, pack.crs)

    def __len__(self) -> int:
        return len(self.u)

    @property
    def n_nodes(self) -> int:
        """Number of network nodes."""
        return len(self.node_x)

    @property
    def total_m(self) -> float:
        """Total street length."""
        return float(self.length_m.sum())

    @cached_property
    def tree(self) -> shapely.STRtree:
        """Spatial index of the segment lines."""
        return shapely.STRtree(self.lines)

    @cached_property
    def graph(self) -> sp.csr_array:
        """Symmetric node-by-node graph of street lengths (one segment per node pair)."""
        # csgraph reads an explicit zero as "no edge": keep zero-length segments as 1 um.
        w = np.maximum(self.length_m, 1e-6)
        rows = np.concatenate([self.u, self.v])
        cols = np.concatenate([self.v, self.u])
        n = self.n_nodes
        return sp.csr_array((np.concatenate([w, w]), (rows, cols)), shape=(n, n))

    def snap(self, x: FloatArray, y: FloatArray) -> tuple[IntArray, FloatArray, FloatArray]:
        """Nearest street point of metric points.

        Returns
        -------
        segment, offset_m, distance_m : numpy.ndarray
            Segment index, distance along it from ``u`` and the point's distance to it.
        """
        points = np.asarray(shapely.points(x, y), dtype=object)
        idx, dist = self.tree.query_nearest(points, return_distance=True, all_matches=False)
        segment = np.zeros(len(points), dtype=np.int64)
        distance = np.full(len(points), np.inf)
        segment[idx[0]] = idx[1]
        distance[idx[0]] = dist
        offset = shapely.line_locate_point(self.lines[segment], points)
        return segment, np.asarray(offset, dtype=np.float64), distance

    def point_at(self, segment: IntArray, offset_m: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Metric coordinates of points given by segment and offset."""
        pts = shapely.line_interpolate_point(self.lines[segment], offset_m)
        return np.asarray(shapely.get_x(pts)), np.asarray(shapely.get_y(pts))

    def samples(self, spacing_m: float = SAMPLE_SPACING_M) -> StreetSamples:
        """Cut every segment into equal pieces no longer than ``spacing_m``; one sample each."""
        pieces = np.maximum(np.ceil(self.length_m / spacing_m), 1).astype(np.int64)
        segment = np.repeat(np.arange(len(self)), pieces)
        start = np.concatenate([[0], np.cumsum(pieces)[:-1]])
        k = np.arange(len(segment)) - np.repeat(start, pieces)
        piece_len = (self.length_m / pieces)[segment]
        offset = (k + 0.5) * piece_len
        x, y = self.point_at(segment, offset)
        return StreetSamples(segment, offset, piece_len, x, y)

    def midpoints_wgs84(self) -> tuple[FloatArray, FloatArray]:
        """WGS-84 midpoint of every segment (for jurisdictions and maps)."""
        x, y = self.point_at(np.arange(len(self)), self.length_m / 2)
        lon, lat = Transformer.from_crs(self.crs, "EPSG:4326", always_xy=True).transform(x, y)
        return np.asarray(lon), np.asarray(lat)
