"""Which street points a camera sees: the visibility approximation along streets.

No building data is bundled, so sight lines are approximated from the street network itself.
A camera at street point ``c`` sees street point ``p`` when all of these hold:

1. **range**: the straight distance ``|cp|`` is at most the camera's range;
2. **field of view**: the bearing from ``c`` to ``p`` lies within half the field-of-view angle of
   the camera's direction (always true for 360°);
3. **down the street**: the shortest street path from ``c`` to ``p`` is at most
   ``SIGHT_DETOUR * |cp| + SIGHT_SLACK_M``.  A point along the same street (or across an
   intersection, or a few metres into a side street at a corner) has a path as short as the
   straight line; a point on the parallel street behind a block does not (the path goes round
   the corner), and there the buildings of the block would hide it.

Street points are the sample points of :class:`citywatch.surveillance.streets.Streets`, or any
snapped points (incidents).  The result is a sparse boolean matrix, points by cameras.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from scipy.sparse.csgraph import dijkstra
from scipy.spatial import cKDTree

from citywatch.errors import ValidationError
from citywatch.surveillance.streets import Streets

__all__ = ["SIGHT_DETOUR", "SIGHT_SLACK_M", "StreetPoints", "Viewpoints", "visibility_matrix"]

#: A point is "down the street" when the street path is at most this times the straight line...
SIGHT_DETOUR = 1.05
#: ...plus this many metres (about half a street's width: the corner of a side street).
SIGHT_SLACK_M = 10.0
#: Cameras per shortest-path batch: bounds the dense distance rows held at once.
_BATCH = 64

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class StreetPoints:
    """Points on the streets: segment, offset from its ``u`` end (m), metric x/y."""

    segment: IntArray
    offset_m: FloatArray
    x: FloatArray
    y: FloatArray

    def __len__(self) -> int:
        return len(self.segment)


@dataclass(frozen=True)
class Viewpoints:
    """Cameras placed on the streets with their range and field of view.

    ``direction_deg`` is the compass bearing of the view's centre (NaN when the camera sees all
    round); ``fov_deg`` the full angle (360 for all round).
    """

    at: StreetPoints
    range_m: FloatArray
    fov_deg: FloatArray
    direction_deg: FloatArray

    def __post_init__(self) -> None:
        n = len(self.at)
        if not (len(self.range_m) == len(self.fov_deg) == len(self.direction_deg) == n):
            raise ValidationError("viewpoint arrays have inconsistent lengths")
        if np.any(~np.isfinite(self.range_m)) or np.any(self.range_m <= 0):
            raise ValidationError("camera ranges must be positive", field="range_m")

    def __len__(self) -> int:
        return len(self.at)


def _in_wedge(
    dx: FloatArray, dy: FloatArray, direction: FloatArray, fov: FloatArray
) -> npt.NDArray[np.bool_]:
    bearing = np.degrees(np.arctan2(dx, dy)) % 360.0  # compass: clockwise from north
    off = np.abs((bearing - direction + 180.0) % 360.0 - 180.0)
    at_camera = (dx == 0) & (dy == 0)
    inside: npt.NDArray[np.bool_] = (fov >= 360.0) | at_camera | (off <= fov / 2.0 + 1e-9)
    return inside


def _street_distance(
    streets: Streets,
    points: StreetPoints,
    cams: Viewpoints,
    pi: IntArray,
    cj: IntArray,
    limit: float,
) -> FloatArray:
    """Shortest street distance for pairs (point ``pi``, camera ``cj``) of one camera batch."""
    cam_seg = cams.at.segment[cj]
    batch_seg = np.unique(cam_seg)
    ends = np.unique(np.concatenate([streets.u[batch_seg], streets.v[batch_seg]]))
    dist = dijkstra(streets.graph, directed=False, indices=ends, limit=limit)
    L = streets.length_m
    cam_off = cams.at.offset_m[cj]
    starts = (  # rows of ``dist``: ``ends`` is sorted, so a node's row is a binary search
        (np.searchsorted(ends, streets.u[cam_seg]), cam_off),
        (np.searchsorted(ends, streets.v[cam_seg]), L[cam_seg] - cam_off),
    )
    seg = points.segment[pi]
    off = points.offset_m[pi]
    best = np.full(len(pi), np.inf)
    for r, start_cost in starts:
        via_u = start_cost + dist[r, streets.u[seg]] + off
        via_v = start_cost + dist[r, streets.v[seg]] + (L[seg] - off)
        best = np.minimum(best, np.minimum(via_u, via_v))
    same = seg == cam_seg
    best[same] = np.minimum(best[same], np.abs(off[same] - cam_off[same]))
    return best


def visibility_matrix(
    streets: Streets,
    points: StreetPoints,
    cams: Viewpoints,
    detour: float = SIGHT_DETOUR,
    slack_m: float = SIGHT_SLACK_M,
) -> sp.csr_array:
    """Boolean matrix ``V[i, j]``: camera ``j`` sees street point ``i`` (module docstring).

    Parameters
    ----------
    streets : Streets
        The street segments the points and cameras lie on.
    points : StreetPoints
        Street points to test (samples or snapped incidents).
    cams : Viewpoints
        The cameras.
    detour, slack_m : float
        The "down the street" tolerance.

    Returns
    -------
    scipy.sparse.csr_array
        Shape ``(len(points), len(cams))``, dtype bool.
    """
    n, m = len(points), len(cams)
    if m == 0 or n == 0:
        return sp.csr_array((n, m), dtype=bool)
    tree = cKDTree(np.column_stack([points.x, points.y]))
    rows: list[IntArray] = []
    cols: list[IntArray] = []
    for lo in range(0, m, _BATCH):
        batch = np.arange(lo, min(lo + _BATCH, m))
        near = tree.query_ball_point(
            np.column_stack([cams.at.x[batch], cams.at.y[batch]]), cams.range_m[batch]
        )
        counts = np.array([len(k) for k in near], dtype=np.int64)
        if counts.sum() == 0:
            continue
        pi = np.concatenate([np.asarray(k, dtype=np.int64) for k in near])
        cj = np.repeat(batch, counts)
        dx = points.x[pi] - cams.at.x[cj]
        dy = points.y[pi] - cams.at.y[cj]
        keep = _in_wedge(dx, dy, cams.direction_deg[cj], cams.fov_deg[cj])
        pi, cj, dx, dy = pi[keep], cj[keep], dx[keep], dy[keep]
        if len(pi) == 0:
            continue
        straight = np.hypot(dx, dy)
        limit = float(detour * cams.range_m[batch].max() + slack_m)
        path = _street_distance(streets, points, cams, pi, cj, limit)
        seen = path <= detour * straight + slack_m
        rows.append(pi[seen])
        cols.append(cj[seen])
    if not rows:
        return sp.csr_array((n, m), dtype=bool)
    r, c = np.concatenate(rows), np.concatenate(cols)
    return sp.csr_array((np.ones(len(r), dtype=bool), (r, c)), shape=(n, m))
