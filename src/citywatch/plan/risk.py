"""Risk surfaces as demand: the one reader of ``plan posts --demand`` and ``simulate --demand``.

``citywatch forecast predict`` writes its risk surface as GeoJSON (``--geojson``: one feature per
grid square or street segment, with ``risk`` and ``rank``) and as CSV (``--csv``:
``lon,lat,weight`` per cell centre).  :func:`read_risk_surface` reads either (and any CSV with
``lon``, ``lat`` and an optional ``weight``, or GeoJSON points with ``weight``/``risk``):

* ``plan posts --demand`` places the weights at the cells' centres
  (:meth:`RiskSurface.frame`);
* the simulator draws incident locations from it (:meth:`RiskSurface.sample`): a cell with
  probability proportional to its weight, then a point uniformly inside the cell (a square:
  uniform over its area; a street segment: uniform along its length; a point: the point).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import shapely

from citywatch.errors import DataError, NotFoundError

__all__ = ["RiskSurface", "read_risk_surface"]

FloatArray = npt.NDArray[np.float64]
#: Rejection rounds when drawing uniform points in polygons (a square in lon/lat fills about
#: all of its bounding box, so one or two rounds suffice).
_MAX_ROUNDS = 64


@dataclass(frozen=True)
class RiskSurface:
    """Cells with a non-negative weight (expected incidents or any relative risk), in WGS-84.

    Attributes
    ----------
    lon, lat
        Cell centres (the point of point cells, a polygon's centroid, a line's midpoint).
    weight
        Non-negative weights, not all zero.
    geometries
        One shapely geometry per cell (points, polygons or lines).
    meta
        What the file says of itself (``forecast predict``: predictor, origin, horizon, backtest).
    """

    lon: FloatArray
    lat: FloatArray
    weight: FloatArray
    geometries: npt.NDArray[np.object_]
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.weight)

    @property
    def probabilities(self) -> FloatArray:
        """Weights normalised to sum to 1: the chance that an incident falls in each cell."""
        p: FloatArray = self.weight / self.weight.sum()
        return p

    def frame(self) -> pd.DataFrame:
        """``lon, lat, weight`` per cell centre (what ``plan posts --demand`` counts)."""
        return pd.DataFrame({"lon": self.lon, "lat": self.lat, "weight": self.weight})

    def sample(self, n: int, rng: np.random.Generator) -> tuple[npt.NDArray[np.int64], FloatArray]:
        """Draw ``n`` locations: cells with probability ∝ weight, points uniform in the cell.

        Returns
        -------
        tuple of arrays
            The cell of each draw and its ``(n, 2)`` lon/lat.
        """
        cells = rng.choice(len(self), size=n, p=self.probabilities).astype(np.int64)
        out = np.empty((n, 2))
        kinds = shapely.get_type_id(self.geometries)
        geoms = self.geometries[cells]
        k = kinds[cells]
        point = k == 0
        out[point] = shapely.get_coordinates(geoms[point])
        line = (k == 1) | (k == 5)
        if line.any():
            at = shapely.line_interpolate_point(geoms[line], rng.random(int(line.sum())), True)
            out[line] = shapely.get_coordinates(at)
        area = ~(point | line)
        if area.any():
            out[area] = _uniform_in(geoms[area], rng)
        return cells, out


def _uniform_in(polygons: npt.NDArray[np.object_], rng: np.random.Generator) -> FloatArray:
    """One uniform point inside each polygon (rejection in its bounding box)."""
    bounds = shapely.bounds(polygons)
    out = np.full((len(polygons), 2), np.nan)
    todo = np.arange(len(polygons))
    for _ in range(_MAX_ROUNDS):
        b = bounds[todo]
        x = b[:, 0] + rng.random(len(todo)) * (b[:, 2] - b[:, 0])
        y = b[:, 1] + rng.random(len(todo)) * (b[:, 3] - b[:, 1])
        hit = shapely.contains_xy(polygons[todo], x, y)
        out[todo[hit], 0], out[todo[hit], 1] = x[hit], y[hit]
        todo = todo[~hit]
        if not len(todo):
            return out
    centre = shapely.get_coordinates(shapely.point_on_surface(polygons[todo]))
    out[todo] = centre  # slivers: their representative point
    return out


def _from_geojson(path: Path) -> RiskSurface:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read GeoJSON ({exc})") from exc
    features = doc.get("features") if isinstance(doc, dict) else None
    if not isinstance(features, list) or not features:
        raise DataError(f"{path}: not a GeoJSON FeatureCollection with features")
    weights, geoms = [], []
    for k, f in enumerate(features):
        props = f.get("properties") or {}
        value = props.get("weight", props.get("risk"))
        if value is None:
            raise DataError(f"{path}: feature {k} has no 'risk' or 'weight' property")
        weights.append(float(value))
        try:
            geoms.append(shapely.from_geojson(json.dumps(f["geometry"])))
        except (KeyError, shapely.errors.GEOSException) as exc:
            raise DataError(f"{path}: feature {k} has no valid geometry ({exc})") from exc
    geometries = np.asarray(geoms, dtype=object)
    kinds = shapely.get_type_id(geometries)
    centre = shapely.centroid(geometries)
    lines = (kinds == 1) | (kinds == 5)
    if lines.any():
        centre[lines] = shapely.line_interpolate_point(geometries[lines], 0.5, normalized=True)
    xy = shapely.get_coordinates(centre)
    meta = doc.get("citywatch", {}) if isinstance(doc.get("citywatch"), dict) else {}
    return _checked(path, xy[:, 0], xy[:, 1], np.asarray(weights), geometries, meta)


def _from_csv(path: Path) -> RiskSurface:
    try:
        frame = pd.read_csv(path, encoding="utf-8-sig")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read CSV ({exc})") from exc
    for column in ("lon", "lat"):
        if column not in frame.columns:
            raise DataError(f"{path}: missing column {column!r}")
    frame = frame.dropna(subset=["lon", "lat"])
    lon = frame["lon"].to_numpy(np.float64)
    lat = frame["lat"].to_numpy(np.float64)
    weight = frame["weight"].to_numpy(np.float64) if "weight" in frame else np.ones(len(frame))
    points = np.asarray(shapely.points(lon, lat), dtype=object)
    return _checked(path, lon, lat, weight, points, {})


def _checked(
    path: Path,
    lon: FloatArray,
    lat: FloatArray,
    weight: FloatArray,
    geometries: npt.NDArray[np.object_],
    meta: dict[str, Any],
) -> RiskSurface:
    if not len(weight):
        raise DataError(f"{path}: no cells")
    if not np.isfinite(weight).all() or (weight < 0).any():
        raise DataError(f"{path}: weights must be finite and non-negative")
    if not weight.sum() > 0:
        raise DataError(f"{path}: every weight is zero")
    return RiskSurface(lon, lat, weight, geometries, meta)


def read_risk_surface(path: Path) -> RiskSurface:
    """Read a risk surface: ``.geojson``/``.json`` (FeatureCollection with ``risk`` or
    ``weight``) or CSV (``lon``, ``lat``, optional ``weight``).

    Raises
    ------
    NotFoundError
        When the file does not exist.
    DataError
        When it is no risk surface (no cells, negative or all-zero weights, bad geometry).
    """
    if not path.is_file():
        raise NotFoundError(f"file not found: {path}")
    if path.suffix.lower() in (".geojson", ".json"):
        return _from_geojson(path)
    return _from_csv(path)
