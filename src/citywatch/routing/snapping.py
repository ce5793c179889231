"""The nearest road segment of every travel mode for many points, in one spatial query.

Each mode snaps to its own segments (:class:`~citywatch.routing.graph.ModeGraph`), but the
segments of all modes are the network's own edge geometries (one edge, possibly reversed, per
segment).  So one index over the edges answers every mode: a point's candidate edges and their
exact distances are computed once, then each mode takes its nearest usable one.  A new incident
is asked about in every mode of the fleet, and this is what its snapping costs.

The index is a KD-tree (:class:`scipy.spatial.cKDTree`) over the midpoints of short *pieces*
of the edges (every edge split at its vertices, then into pieces of at most :data:`PIECE_M`).
A piece within distance ``d`` of a point has its midpoint within ``d + h`` of it (``h``: the
longest half piece), so the nearest usable piece among the midpoints within radius ``r`` is the
nearest of all when its distance is at most ``r - h``; otherwise the radius doubles.  The
distances and positions along the pieces are the exact point-to-segment projections.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
import numpy.typing as npt
import shapely
from scipy.spatial import cKDTree

__all__ = ["PIECE_M", "EdgeIndex", "Nearest"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: Longest piece (m) of an edge in the index: longer pieces mean fewer points in the tree but
#: more candidates per query (every piece whose midpoint is within its half length).
PIECE_M = 40.0
#: First search radius (m) beyond two half pieces: most points lie this close to a road.
START_RADIUS_M = 30.0


@dataclass(frozen=True)
class Nearest:
    """The nearest segment of each asked mode (rows) for each point (columns).

    ``segment`` is the mode's segment index, ``fraction`` the position along it (from its end
    ``a`` to ``b``), ``distance_m`` the distance to it (``inf`` and segment 0 when the mode has
    no segment at all), ``x``/``y`` the nearest point on it, in the metric CRS.
    """

    segment: IntArray
    fraction: FloatArray
    distance_m: FloatArray
    x: FloatArray
    y: FloatArray


class EdgeIndex:
    """Snapping of points onto the segments of several modes (see the module documentation).

    Parameters
    ----------
    lines : ndarray of shapely.LineString
        Every edge of the network, in a metric CRS.
    """

    def __init__(self, lines: npt.NDArray[np.object_]) -> None:
        coords, owner = shapely.get_coordinates(lines, return_index=True)
        inner = np.flatnonzero(owner[1:] == owner[:-1])  # consecutive vertices of one edge
        start, vec = coords[inner], coords[inner + 1] - coords[inner]
        edge = owner[inner].astype(np.int64)
        length = np.hypot(vec[:, 0], vec[:, 1])
        # Distance along its edge at which each vertex pair starts.
        total = np.cumsum(length) - length
        first = np.ones(len(edge), dtype=bool)
        first[1:] = edge[1:] != edge[:-1]
        offset = total - np.maximum.accumulate(np.where(first, total, 0.0))
        self.edge_m: FloatArray = np.bincount(edge, weights=length, minlength=len(lines)).astype(
            np.float64
        )
        # Pieces: each vertex pair cut into ceil(length / PIECE_M) equal parts.
        parts = np.maximum(1, np.ceil(length / PIECE_M)).astype(np.int64)
        pair = np.repeat(np.arange(len(edge)), parts)
        j = np.arange(len(pair)) - np.repeat(np.cumsum(parts) - parts, parts)
        t0, t1 = j / parts[pair], (j + 1) / parts[pair]
        # The vertices themselves where a piece starts or ends at one: a point at a vertex then
        # projects onto it exactly (t = 0 or 1), as onto the edge's own vertex pair.
        end = coords[inner + 1]
        piece_start = np.where(
            (t0 == 0)[:, None], start[pair], start[pair] + t0[:, None] * vec[pair]
        )
        piece_end = np.where((t1 == 1)[:, None], end[pair], start[pair] + t1[:, None] * vec[pair])
        piece_vec = piece_end - piece_start
        self.piece_edge = edge[pair]
        # The piece that ends its edge: a point projected onto its end is at fraction 1 exactly.
        last = np.ones(len(pair), dtype=bool)
        last[:-1] = self.piece_edge[1:] != self.piece_edge[:-1]
        #: Per piece: start x, y, vector x, y, squared length, metres along its edge where it
        #: starts, its length, whether it ends its edge (the columns of _nearest_pieces).
        self.pieces = np.column_stack(
            [
                piece_start,
                piece_vec,
                np.einsum("ij,ij->i", piece_vec, piece_vec),
                offset[pair] + t0 * length[pair],
                (t1 - t0) * length[pair],
                last,
            ]
        )
        self.half_m = float(np.sqrt(self.pieces[:, 4].max()) / 2) if len(pair) else 0.0
        self.tree = cKDTree(piece_start + piece_vec / 2)
        #: Row of each snappable mode in ``code``: ``2 * segment + reversed`` of the mode's
        #: segment on each edge (reversed: it runs against the edge's geometry), -1 where none.
        self.rows: dict[str, int] = {}
        self.code = np.zeros((0, len(self.edge_m)), dtype=np.int64)

    def add_mode(self, mode: str, seg_edge: IntArray, seg_flip: npt.NDArray[np.bool_]) -> None:
        """Make ``mode`` snappable: its segment ``s`` lies on edge ``seg_edge[s]``, reversed
        where ``seg_flip[s]``."""
        code = np.full(len(self.edge_m), -1, dtype=np.int64)
        code[seg_edge] = 2 * np.arange(len(seg_edge)) + seg_flip
        # The row exists before it is named: a concurrent nearest() never sees a missing row.
        self.code = np.vstack([self.code, code[None, :]])
        self.rows[mode] = len(self.code) - 1

    def nearest(self, xy: FloatArray, modes: list[str]) -> Nearest:
        """The nearest segment of each of ``modes`` for each point of ``xy`` (shape (n, 2))."""
        n, m = len(xy), len(modes)
        rows = np.array([self.rows[mode] for mode in modes], dtype=np.int64)
        # segment, fraction, distance, x, y of each mode and point; nan distance: not decided.
        out = np.full((5, m, n), np.nan)
        radius = np.full(n, START_RADIUS_M + 2 * self.half_m)
        finite = np.isfinite(xy).all(axis=1)
        out[:, :, ~finite] = np.array([0.0, 0.0, np.inf, np.nan, np.nan])[:, None, None]
        todo = np.flatnonzero(finite)  # a point the projection cannot place is on no road
        while len(todo):
            found = self.tree.query_ball_point(xy[todo], radius[todo], return_sorted=True)
            counts = np.fromiter(map(len, found), np.int64, len(found))
            piece = np.concatenate([*found, []]).astype(np.int64)
            _nearest_pieces(
                xy,
                todo,
                radius,
                counts,
                piece,
                self.pieces,
                self.piece_edge,
                self.edge_m,
                self.code,
                rows,
                self.half_m,
                out,
            )
            todo = todo[np.isnan(out[2][:, todo]).any(axis=0)]
            radius[todo] *= 2
        return Nearest(out[0].astype(np.int64), out[1], out[2], out[3], out[4])


@numba.njit(cache=True, nogil=True)
def _nearest_pieces(
    xy: FloatArray,
    todo: IntArray,
    radius: FloatArray,
    counts: IntArray,
    piece: IntArray,
    pieces: FloatArray,
    piece_edge: IntArray,
    edge_m: FloatArray,
    code: IntArray,
    rows: IntArray,
    half_m: float,
    out: FloatArray,
) -> None:  # pragma: no cover - compiled
    """Decide the nearest segment of each mode (``rows`` of ``code``) for the points ``todo``
    from their candidate pieces (``counts[k]`` of ``piece`` for point ``todo[k]``).

    A result is written into ``out`` (see :meth:`EdgeIndex.nearest`) where it is sure: within
    the radius less a half piece, or when the candidates are every piece (then segment 0 and
    ``inf`` when none is the mode's).  Of equal distances the first candidate wins.
    """
    j0 = 0
    for k in range(len(todo)):
        i = todo[k]
        x, y = xy[i, 0], xy[i, 1]
        every = counts[k] >= len(pieces)
        for r in range(len(rows)):
            if not np.isnan(out[2, r, i]):
                continue
            best, best_j, best_t, best_x, best_y = np.inf, -1, 0.0, np.nan, np.nan
            for j in range(j0, j0 + counts[k]):
                p = piece[j]
                if code[rows[r], piece_edge[p]] < 0:
                    continue
                sx, sy, vx, vy, len2 = (
                    pieces[p, 0],
                    pieces[p, 1],
                    pieces[p, 2],
                    pieces[p, 3],
                    pieces[p, 4],
                )
                t = ((x - sx) * vx + (y - sy) * vy) / len2 if len2 > 0 else 0.0
                t = min(max(t, 0.0), 1.0)
                qx, qy = sx + t * vx, sy + t * vy
                d = np.hypot(x - qx, y - qy)
                if d < best:
                    best, best_j, best_t, best_x, best_y = d, j, t, qx, qy
            if not (best <= radius[i] - half_m or every):
                continue
            out[2, r, i], out[3, r, i], out[4, r, i] = best, best_x, best_y
            out[0, r, i], out[1, r, i] = 0.0, 0.0
            if best_j < 0:
                continue
            p = piece[best_j]
            e = piece_edge[p]
            c = code[rows[r], e]
            # Exact ends: a point projected onto an edge's end is at that node, not a rounding
            # error short of it (which would make a one-way segment's far end unreachable).
            if best_t == 1.0 and pieces[p, 7] > 0:
                f = 1.0
            else:
                a = pieces[p, 5] + best_t * pieces[p, 6]
                f = min(max(a / edge_m[e], 0.0), 1.0) if edge_m[e] > 0 and a > 0 else 0.0
            out[0, r, i] = c >> 1
            out[1, r, i] = 1.0 - f if c & 1 else f
        j0 += counts[k]
