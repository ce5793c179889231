"""Where a fleeing offender can be: the street network reachable within 1, 3, 5 and 10 minutes.

From the incident (or the last sighting, which moves the origin and the clock), one bounded
search of :class:`citywatch.routing.Router` in the offender's mode gives the fastest time to
every node, with the mode's speeds, usable ways and one-way rules.  A segment is reached from
each end by the time left at that end: the reachable part of a segment is ``[0, ca]`` from its
end ``a`` and ``[1 - cb, 1]`` from ``b`` (plus the stretch around the origin on its own
segment).  The **isochrone polygon** of a horizon is the union of those partial segments
buffered by :data:`RING_BUFFER_M` (half a street width plus pavement): an area an offender can
be in, drawn around the streets he can use, not a convex hull over blocks he cannot cross.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import shapely
from pyproj import Transformer
from shapely.geometry import mapping
from shapely.ops import substring

from citywatch.errors import ValidationError
from citywatch.routing import Router
from citywatch.routing.graph import ModeGraph
from citywatch.routing.speeds import MODES, Mode

__all__ = [
    "HORIZONS_MIN",
    "RING_BUFFER_M",
    "Incident",
    "Reach",
    "Ring",
    "reachable",
    "segment_sets",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: Minutes after the last known position for which rings are drawn.
HORIZONS_MIN: tuple[int, ...] = (1, 3, 5, 10)
#: Metres each side of a reachable street that the isochrone polygon takes in.
RING_BUFFER_M = 25.0


@dataclass(frozen=True)
class Incident:
    """The last known position of a fleeing offender.

    Attributes
    ----------
    lon, lat : float
        WGS-84 position (the incident, or the latest sighting).
    at : datetime
        Time at that position (timezone-aware).
    mode : str
        The offender's travel mode: ``foot``, ``bicycle`` (also e-bikes), ``motorcycle``, ``car``.
    heading_deg : float, optional
        Direction first seen, degrees clockwise from north.
    """

    lon: float
    lat: float
    at: datetime
    mode: Mode
    heading_deg: float | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValidationError(
                f"unknown offender mode {self.mode!r}; choose from {', '.join(MODES)}",
                field="mode",
            )
        if self.at.tzinfo is None:
            raise ValidationError("the incident time needs a timezone", field="time")
        if self.heading_deg is not None and not np.isfinite(self.heading_deg):
            raise ValidationError("the heading must be a finite angle", field="heading")

    def sighted(
        self, lon: float, lat: float, at: datetime, heading_deg: float | None = None
    ) -> Incident:
        """The same flight from a later sighting: its position and time replace the origin.

        The direction first seen belongs to the incident's position, so it is replaced by the
        sighting's own ``heading_deg`` (the direction the offender was seen moving there), or
        cleared when the sighting gives none.
        """
        if at.tzinfo is None:
            raise ValidationError("the sighting time needs a timezone", field="time")
        if at < self.at:
            raise ValidationError("a sighting cannot come before the incident", field="time")
        return replace(self, lon=lon, lat=lat, at=at, heading_deg=heading_deg)


@dataclass(frozen=True)
class Ring:
    """The streets reachable within one horizon."""

    minutes: int
    segments: IntArray
    reached: FloatArray
    street_km: float
    polygon: Any

    def feature(self) -> dict[str, Any]:
        """The isochrone polygon as a GeoJSON Feature (WGS-84)."""
        return {
            "type": "Feature",
            "properties": {
                "minutes": self.minutes,
                "segments": len(self.segments),
                "street_km": round(self.street_km, 3),
            },
            "geometry": mapping(self.polygon),
        }


@dataclass(frozen=True)
class Reach:
    """Rings of reachable streets around one origin, and the fastest time to every node."""

    incident: Incident
    node_seconds: FloatArray
    rings: list[Ring]

    def to_geojson(self) -> dict[str, Any]:
        """All rings as a GeoJSON FeatureCollection, largest first (for drawing order)."""
        return {
            "type": "FeatureCollection",
            "features": [r.feature() for r in sorted(self.rings, key=lambda r: -r.minutes)],
        }

    def summary(self) -> list[dict[str, Any]]:
        """One row per ring: minutes, segments (how many), street km."""
        return [
            {
                "minutes": r.minutes,
                "segments": len(r.segments),
                "street_km": round(r.street_km, 3),
            }
            for r in self.rings
        ]


def reachable(
    router: Router,
    incident: Incident,
    minutes: Sequence[int] = HORIZONS_MIN,
    *,
    buffer_m: float = RING_BUFFER_M,
) -> Reach:
    """The streets an offender can reach from ``incident`` within each horizon.

    Parameters
    ----------
    router : Router
        The pack's router (the offender's mode decides speeds, ways and one-way rules).
    incident : Incident
        Last known position, time and mode.
    minutes : sequence of int
        Horizons in minutes (default 1, 3, 5, 10).
    buffer_m : float
        Half-width of the isochrone polygons around reachable streets.

    Returns
    -------
    Reach

    Raises
    ------
    SnapError
        If the position is off the network of that mode.
    """
    horizons = sorted({int(m) for m in minutes})
    if not horizons or horizons[0] <= 0:
        raise ValidationError("horizons must be positive minutes", field="minutes")
    mode = incident.mode
    g = router.graph(mode)
    origin = (incident.lon, incident.lat)
    snap = router.snap(np.asarray(origin), mode)
    seconds, _ = router.node_times_from(origin, mode, limit_s=60.0 * horizons[-1])
    to_wgs = Transformer.from_crs(router.crs, "EPSG:4326", always_xy=True)
    start = (int(snap.segment[0]), float(snap.fraction[0]))
    rings = [_ring(g, seconds, start, m, buffer_m, to_wgs) for m in horizons]
    return Reach(incident, seconds, rings)


def segment_sets(router: Router, reach: Reach) -> list[dict[str, Any]]:
    """The segment set of every ring, one row per reached street segment.

    Each row holds ``minutes`` (the ring), ``edge`` (the row of the pack's edge table whose
    geometry the segment is), ``u`` and ``v`` (the pack's ids of the segment's end nodes, in the
    direction the shares are measured) and ``reached`` (the share of the segment reachable
    within the ring's horizon, 0-1).
    """
    g = router.graph(reach.incident.mode)
    node_id = router.network.nodes["node_id"].astype(str).to_numpy()
    return [
        {
            "minutes": ring.minutes,
            "edge": int(g.seg_edge[s]),
            "u": str(node_id[g.seg_a[s]]),
            "v": str(node_id[g.seg_b[s]]),
            "reached": round(float(share), 4),
        }
        for ring in reach.rings
        for s, share in zip(ring.segments.tolist(), ring.reached.tolist(), strict=True)
    ]


def reached_intervals(
    g: ModeGraph, seconds: FloatArray, start: tuple[int, float], limit_s: float
) -> list[tuple[int, float, float]]:
    """The reachable stretches of every segment: ``(segment, from, to)`` in fractions a -> b.

    A segment is entered at ``a`` with the time left there (``[0, lo]``) and at ``b``
    (``[hi, 1]``); the origin's own segment also has the stretch driven straight from the start
    point.  Overlapping stretches of one segment are merged.
    """
    ta, tb = seconds[g.seg_a], seconds[g.seg_b]
    with np.errstate(invalid="ignore", divide="ignore"):
        lo = np.nan_to_num(np.clip((limit_s - ta) / g.seg_fwd_s, 0.0, 1.0), nan=0.0)
        hi = 1.0 - np.nan_to_num(np.clip((limit_s - tb) / g.seg_bwd_s, 0.0, 1.0), nan=0.0)
    seg, f = start
    with np.errstate(divide="ignore"):
        ahead = min(1.0, f + limit_s / g.seg_fwd_s[seg])
        behind = max(0.0, f - limit_s / g.seg_bwd_s[seg])
    out: list[tuple[int, float, float]] = []
    for s in np.flatnonzero((lo > 0) | (hi < 1) | (np.arange(len(lo)) == seg)).tolist():
        pieces = [(0.0, float(lo[s])), (float(hi[s]), 1.0)]
        if s == seg:
            pieces.append((float(behind), float(ahead)))
        out.extend((s, a, b) for a, b in _merge(pieces))
    return out


def _merge(pieces: list[tuple[float, float]]) -> list[tuple[float, float]]:
    merged: list[tuple[float, float]] = []
    for a, b in sorted(p for p in pieces if p[1] > p[0]):
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


def _ring(
    g: ModeGraph,
    seconds: FloatArray,
    start: tuple[int, float],
    minutes: int,
    buffer_m: float,
    to_wgs: Transformer,
) -> Ring:
    stretches = reached_intervals(g, seconds, start, 60.0 * minutes)
    share = np.zeros(len(g.seg_a))
    parts: list[Any] = []
    for s, a, b in stretches:
        share[s] += b - a
        line = g.seg_lines[s]
        parts.append(line if (a, b) == (0.0, 1.0) else substring(line, a, b, normalized=True))
    segments = np.flatnonzero(share > 0)
    lengths = shapely.length(g.seg_lines[segments])
    if parts:
        # Buffer each stretch then union: GEOS buffers one big MultiLineString ~100x slower.
        polygon = shapely.union_all(shapely.buffer(np.asarray(parts), buffer_m, quad_segs=2))
        polygon = shapely.transform(polygon, lambda xy: np.column_stack(to_wgs.transform(*xy.T)))
    else:
        polygon = shapely.Polygon()
    return Ring(
        minutes,
        segments,
        share[segments],
        float(np.sum(lengths * share[segments]) / 1000.0),
        polygon,
    )
