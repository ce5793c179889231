"""Events in metres and the surfaces forecasts are made on: a square grid or street segments.

A :class:`Surface` is a set of *cells* (grid squares or street segments), each with a centroid,
a measure (area in m² for squares, length in m for segments) and a way to assign points to
cells. Every predictor returns one risk value per cell; the evaluation ranks cells by risk per
unit measure, so squares and segments are handled alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
import shapely
from pyproj import Transformer
from scipy.spatial import cKDTree

from citywatch.errors import DataError, InsufficientPrecisionError, ValidationError
from citywatch.incidents.record import TIME_PRECISIONS

__all__ = [
    "DAY_S",
    "Events",
    "Surface",
    "events_from_frame",
    "forecast_periods",
    "grid_surface",
    "local_time",
    "near_pairs",
    "next_local_midnight",
    "require_precision",
    "segment_surface",
    "to_days",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

DAY_S: Final = 86_400.0
# Time precisions from finest to coarsest, and the shortest horizon (days) each supports.
_PRECISION_RANK: Final = {p: i for i, p in enumerate(TIME_PRECISIONS)}
_SHORTEST_HORIZON_DAYS: Final = {"exact": 0.0, "day": 1.0, "month": 28.0}


def to_days(when: pd.Timestamp | str, timezone: str = "UTC") -> float:
    """A time as days since 1970-01-01 UTC; a time without a zone is read in ``timezone``.

    A forecast's days are the city's days: ``2017-01-01`` in New York is 05:00 UTC.

    Raises
    ------
    ValidationError
        For text that is not a date or date-time (``2017-01-01``, ``2017-01-01T06:00``), or a
        local time that does not exist or is ambiguous in ``timezone`` (a DST change).
    """
    try:
        ts = pd.Timestamp(when)
    except (ValueError, TypeError, OverflowError) as exc:
        raise ValidationError(
            f"not a date or date-time: {when!r} (use YYYY-MM-DD or ISO 8601)", field="date"
        ) from exc
    if pd.isna(ts):
        raise ValidationError(f"not a date or date-time: {when!r}", field="date")
    if ts.tzinfo is None:
        try:
            ts = ts.tz_localize(timezone)
        except (ValueError, OverflowError) as exc:  # pytz's DST errors are ValueErrors
            raise ValidationError(f"{when!r} is not one time in {timezone}: {exc}") from exc
    return float(ts.tz_convert("UTC").value) / 1e9 / DAY_S


def local_time(day: float, timezone: str = "UTC") -> pd.Timestamp:
    """Days since the epoch as a time in ``timezone``."""
    return pd.Timestamp(day * DAY_S, unit="s", tz="UTC").tz_convert(timezone)


def next_local_midnight(day: float, timezone: str = "UTC") -> float:
    """The first midnight in ``timezone`` after ``day`` (the default forecast origin)."""
    local = local_time(day, timezone).tz_localize(None).normalize() + pd.Timedelta(days=1)
    return to_days(local, timezone)


def forecast_periods(
    start: float, end: float, horizon_days: float, step_days: float, timezone: str = "UTC"
) -> tuple[FloatArray, FloatArray]:
    """Origins and ends of the forecast periods in ``[start, end)``.

    Whole-day horizons and steps count calendar days in ``timezone``: a daily forecast runs
    from local midnight to local midnight, 23 or 25 hours across a DST change. Shorter ones
    step in elapsed time.
    """
    whole = float(horizon_days).is_integer() and float(step_days).is_integer()
    if not whole:
        origins = np.arange(start, end - horizon_days + 1e-9, step_days)
        return origins, origins + horizon_days
    first = local_time(start, timezone).tz_localize(None)
    last = local_time(end, timezone).tz_localize(None)
    days = pd.date_range(first, last, freq=f"{int(step_days)}D")
    ends = days + pd.Timedelta(days=int(horizon_days))
    keep = ends <= last
    starts = [to_days(d, timezone) for d in days[keep]]
    stops = [to_days(d, timezone) for d in ends[keep]]
    return np.asarray(starts, dtype=np.float64), np.asarray(stops, dtype=np.float64)


@dataclass(frozen=True)
class Events:
    """Point events in a metric CRS.

    Attributes
    ----------
    xy
        ``(n, 2)`` coordinates in metres (``crs``).
    t
        Times in days since 1970-01-01 UTC, sorted ascending.
    precision
        The coarsest time precision among the events (``exact``, ``day`` or ``month``).
    crs
        The metric CRS of ``xy``.
    """

    xy: FloatArray
    t: FloatArray
    precision: str
    crs: str

    def __post_init__(self) -> None:
        if self.xy.shape != (len(self.t), 2):
            raise ValidationError(f"xy must have shape (n, 2) with n = {len(self.t)} times")
        if len(self.t) > 1 and np.any(np.diff(self.t) < 0):
            raise ValidationError("event times must be sorted")

    def __len__(self) -> int:
        return len(self.t)

    def between(self, start: float, end: float) -> Events:
        """The events with ``start <= t < end``."""
        lo, hi = np.searchsorted(self.t, [start, end], side="left")
        return Events(self.xy[lo:hi], self.t[lo:hi], self.precision, self.crs)

    @classmethod
    def from_arrays(
        cls, xy: npt.ArrayLike, t: npt.ArrayLike, precision: str = "exact", crs: str = "local"
    ) -> Events:
        """Events from unsorted arrays (sorted here by time, stably)."""
        xy_a = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        t_a = np.asarray(t, dtype=np.float64)
        order = np.argsort(t_a, kind="stable")
        return cls(xy_a[order], t_a[order], precision, crs)


def events_from_frame(frame: pd.DataFrame, crs: str) -> tuple[Events, int]:
    """Project canonical incidents (``received_at``, ``lon``, ``lat``, ``time_precision``).

    Returns
    -------
    tuple of (Events, int)
        The located events and the number of incidents dropped for having no location.
    """
    for col in ("received_at", "lon", "lat"):
        if col not in frame.columns:
            raise DataError(f"incidents lack the column {col!r}")
    located = frame["lon"].notna() & frame["lat"].notna() & frame["received_at"].notna()
    data = frame[located]
    if data.empty:
        raise DataError("no incident has both a time and a location")
    x, y = Transformer.from_crs("EPSG:4326", crs, always_xy=True).transform(
        data["lon"].to_numpy(np.float64), data["lat"].to_numpy(np.float64)
    )
    times = pd.to_datetime(data["received_at"], utc=True)
    # Whatever the datetime resolution (ns, us, s), count days from the epoch.
    t = ((times - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(days=1)).to_numpy(np.float64)
    precisions = data.get("time_precision", pd.Series("exact", index=data.index)).fillna("exact")
    coarsest = max(precisions.unique(), key=lambda p: _PRECISION_RANK.get(str(p), 0))
    events = Events.from_arrays(np.column_stack([x, y]), t, str(coarsest), crs)
    return events, int((~located).sum())


def near_pairs(
    points: FloatArray, centroids: FloatArray, radius: float
) -> tuple[IntArray, IntArray, FloatArray]:
    """All (point, centroid) pairs at most ``radius`` apart, zero distances included.

    Returns
    -------
    tuple of arrays
        Point index, centroid index and distance of every pair.
    """
    if len(points) == 0 or len(centroids) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty.copy(), np.zeros(0)
    lists = cKDTree(centroids).query_ball_point(points, radius)
    sizes = np.fromiter((len(x) for x in lists), dtype=np.int64, count=len(lists))
    i = np.repeat(np.arange(len(points), dtype=np.int64), sizes)
    c = np.fromiter((k for x in lists for k in x), dtype=np.int64, count=int(sizes.sum()))
    d = np.hypot(*(points[i] - centroids[c]).T)
    return i, c, d


def require_precision(events: Events, horizon_days: float, *, time_of_day: bool = False) -> None:
    """Refuse a forecast finer than the data's time precision.

    Raises
    ------
    InsufficientPrecisionError
        For a time-of-day model (or a horizon shorter than a day) on day- or month-precision
        data, or a horizon shorter than 28 days on month-precision data (police.uk).
    """
    shortest = _SHORTEST_HORIZON_DAYS.get(events.precision, 0.0)
    if (time_of_day or horizon_days < 1.0) and events.precision != "exact":
        raise InsufficientPrecisionError(
            f"a time-of-day model (here a {horizon_days * 24:g}-hour horizon) needs exact times; "
            f"these incidents have {events.precision}-precision times (e.g. police.uk publishes "
            "months only, see the time_precision column)"
        )
    if horizon_days < shortest:
        raise InsufficientPrecisionError(
            f"a {horizon_days:g}-day horizon needs times finer than the data's "
            f"{events.precision} precision (shortest horizon: {shortest:g} days)"
        )


@dataclass(frozen=True)
class Surface:
    """Cells a forecast is made on.

    Attributes
    ----------
    kind
        ``grid`` (square cells) or ``segments`` (street segments).
    centroids
        ``(m, 2)`` cell centres (segment midpoints) in metres.
    measure
        Cell area in m² (grid) or length in m (segments).
    cell_size
        Grid cell width in m; for segments the distance unit of distance-decay weights.
    crs
        Metric CRS of the coordinates.
    geometries
        One shapely geometry per cell, in ``crs`` (squares or line strings).
    origin, shape
        Grid only: lower-left corner of cell (0, 0) and the full grid's ``(ny, nx)``;
        ``flat`` maps a full-grid index to a cell number (-1 for cells outside the study area).
    """

    kind: Literal["grid", "segments"]
    centroids: FloatArray
    measure: FloatArray
    cell_size: float
    crs: str
    geometries: npt.NDArray[np.object_]
    origin: tuple[float, float] = (0.0, 0.0)
    shape: tuple[int, int] = (0, 0)
    flat: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    max_snap_m: float = 0.0

    def __len__(self) -> int:
        return len(self.centroids)

    @cached_property
    def _tree(self) -> shapely.STRtree:
        # Built once: predictors assign points to segments at every fit and forecast.
        return shapely.STRtree(self.geometries)

    def assign(self, xy: FloatArray) -> IntArray:
        """Cell number of every point; -1 for points outside every cell."""
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        if self.kind == "grid":
            ny, nx = self.shape
            col = np.floor((xy[:, 0] - self.origin[0]) / self.cell_size).astype(np.int64)
            row = np.floor((xy[:, 1] - self.origin[1]) / self.cell_size).astype(np.int64)
            inside = (col >= 0) & (col < nx) & (row >= 0) & (row < ny)
            out = np.full(len(xy), -1, dtype=np.int64)
            out[inside] = self.flat[row[inside] * nx + col[inside]]
            return out
        idx = self._tree.query_nearest(
            shapely.points(xy), max_distance=self.max_snap_m, all_matches=False
        )
        out = np.full(len(xy), -1, dtype=np.int64)
        out[idx[0]] = idx[1]
        return out

    def counts(self, events: Events) -> FloatArray:
        """Number of events in every cell (events outside every cell are not counted)."""
        cells = self.assign(events.xy)
        return np.bincount(cells[cells >= 0], minlength=len(self)).astype(np.float64)

    def lonlat(self) -> FloatArray:
        """Cell centroids as WGS-84 ``(lon, lat)``."""
        lon, lat = Transformer.from_crs(self.crs, "EPSG:4326", always_xy=True).transform(
            self.centroids[:, 0], self.centroids[:, 1]
        )
        return np.column_stack([lon, lat])

    def geometries_wgs84(self) -> npt.NDArray[np.object_]:
        """Cell geometries in WGS-84."""
        tr = Transformer.from_crs(self.crs, "EPSG:4326", always_xy=True)
        return shapely.transform(self.geometries, lambda c: np.column_stack(tr.transform(*c.T)))

    def as_dict(self) -> dict[str, Any]:
        """Summary for reports."""
        return {
            "kind": self.kind,
            "cells": len(self),
            "cell_size_m": self.cell_size,
            "crs": self.crs,
            "measure_total": float(self.measure.sum()),
        }


def grid_surface(
    cell_size: float,
    crs: str,
    *,
    study_area: Any | None = None,
    points: FloatArray | None = None,
) -> Surface:
    """A square grid covering a study area, keeping only the cells that matter.

    Parameters
    ----------
    cell_size
        Cell width in metres.
    crs
        Metric CRS.
    study_area
        A shapely (multi)polygon in ``crs``: the grid covers its bounds and keeps the cells that
        intersect it.
    points
        Without a study area: the grid covers these points and keeps the cells holding at least
        one (pass training events only, so the test period does not shape the grid).
    """
    if cell_size <= 0:
        raise ValidationError("cell size must be positive", field="cell_size")
    if study_area is None and (points is None or len(points) == 0):
        raise ValidationError("a grid needs a study area or points")
    if study_area is not None:
        x0, y0, x1, y1 = shapely.bounds(study_area)
    else:
        assert points is not None
        x0, y0 = points.min(axis=0)
        x1, y1 = points.max(axis=0)
    nx = int(np.floor((x1 - x0) / cell_size)) + 1
    ny = int(np.floor((y1 - y0) / cell_size)) + 1
    if nx * ny > 4_000_000:
        raise ValidationError(f"{nx * ny:,} grid cells: choose a larger cell size")
    cols, rows = np.meshgrid(np.arange(nx), np.arange(ny))
    lx = x0 + cols.ravel() * cell_size
    ly = y0 + rows.ravel() * cell_size
    boxes = shapely.box(lx, ly, lx + cell_size, ly + cell_size)
    if study_area is not None:
        keep = shapely.intersects(boxes, study_area)
    else:
        assert points is not None
        c = np.floor((points[:, 0] - x0) / cell_size).astype(np.int64)
        r = np.floor((points[:, 1] - y0) / cell_size).astype(np.int64)
        keep = np.zeros(nx * ny, dtype=bool)
        keep[r * nx + c] = True
    flat = np.full(nx * ny, -1, dtype=np.int64)
    flat[keep] = np.arange(int(keep.sum()))
    centroids = np.column_stack([lx[keep] + cell_size / 2, ly[keep] + cell_size / 2])
    return Surface(
        kind="grid",
        centroids=centroids,
        measure=np.full(len(centroids), cell_size**2),
        cell_size=float(cell_size),
        crs=crs,
        geometries=boxes[keep],
        origin=(float(x0), float(y0)),
        shape=(ny, nx),
        flat=flat,
    )


def segment_surface(pack: Any, *, unit_m: float = 100.0) -> Surface:
    """The street segments of a city pack (one cell per undirected edge).

    Parameters
    ----------
    pack
        A :class:`citywatch.city.pack.CityPack`.
    unit_m
        Distance unit of distance-decay weights (the "cell size" of segments).
    """
    lines = pack.network.edge_geometries(pack.crs)
    edges = pack.network.edges
    u = edges["u"].to_numpy()
    v = edges["v"].to_numpy()
    # One cell per street, not per direction: keep the first of (u, v) and (v, u).
    key = pd.Series([f"{min(a, b)}|{max(a, b)}" for a, b in zip(u, v, strict=True)])
    first = ~key.duplicated().to_numpy()
    lines = lines[first]
    length = shapely.length(lines)
    keep = length > 0
    lines = lines[keep]
    mid = shapely.line_interpolate_point(lines, 0.5, normalized=True)
    return Surface(
        kind="segments",
        centroids=shapely.get_coordinates(mid),
        measure=length[keep].astype(np.float64),
        cell_size=float(unit_m),
        crs=pack.crs,
        geometries=lines,
        max_snap_m=float(pack.max_snap_m),
    )
