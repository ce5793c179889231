"""Places of a city pack: markets, urban villages, schools, hospitals, transit stations, parks.

Places change how police respond (motorcycles and foot officers in markets and urban villages,
see ``dispatch/data/requirements.toml``) and where a fleeing offender may hide.  They come from
two sources:

* **OpenStreetMap tags**, when a pack is built from an OSM file: :data:`OSM_PLACE_TAGS` is the
  documented mapping from a tag to a place kind (read by
  :func:`citywatch.city.osm.read_osm_places`);
* **files** (GeoJSON or CSV) for everything OSM does not tag, above all urban villages (城中村):
  ``[[places]] file = ...`` in a build spec, or ``citywatch city places import PACK FILE`` into a
  built pack (:func:`import_places`).
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import shapely
from shapely.errors import ShapelyError
from shapely.geometry import shape

from citywatch.city.coords import CoordinateSystem, to_wgs84
from citywatch.city.network import check_near_network
from citywatch.city.pack import PLACE_KINDS, Place, feature_collection, read_pack
from citywatch.errors import DataError, writes_to

__all__ = [
    "OSM_PLACE_TAGS",
    "import_places",
    "merge_places",
    "read_json",
    "read_place_file",
    "surface_xy",
    "to_wgs",
]

#: OSM tag -> place kind, checked in this order (the first match wins).  ``landuse=retail`` is a
#: shopping district and ``shop=wholesale`` a wholesale market: both are market-like for
#: patrol (crowds, stalls, narrow lanes), as the pursuit issue's wholesale markets are.
OSM_PLACE_TAGS: tuple[tuple[str, str, str], ...] = (
    ("amenity", "marketplace", "market"),
    ("shop", "wholesale", "market"),
    ("landuse", "retail", "market"),
    ("amenity", "school", "school"),
    ("amenity", "hospital", "hospital"),
    ("public_transport", "station", "transit"),
    ("railway", "station", "transit"),
    ("amenity", "bus_station", "transit"),
    ("leisure", "park", "park"),
)


def read_json(path: Path) -> Any:
    """Read a JSON (or gzip-compressed ``.gz`` JSON) file; :class:`DataError` if unreadable."""
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        return json.loads(raw.decode("utf-8"))
    except (OSError, EOFError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc


def to_wgs(geometry: Any, system: CoordinateSystem) -> Any:
    """``geometry`` converted from ``system`` to WGS-84 (unchanged for ``"wgs84"``)."""
    if system == "wgs84":
        return geometry
    return shapely.transform(
        geometry, lambda xy: np.column_stack(to_wgs84(xy[:, 0], xy[:, 1], system))
    )


def _kind(value: object, where: str) -> str:
    kind = str(value).strip()
    if kind not in PLACE_KINDS:
        raise DataError(f"{where}: place kind {kind!r} is not one of {', '.join(PLACE_KINDS)}")
    return kind


def read_place_file(
    path: Path,
    *,
    kind: str | None = None,
    id_field: str = "id",
    name_field: str = "name",
    lon_field: str = "lon",
    lat_field: str = "lat",
    system: CoordinateSystem = "wgs84",
) -> list[Place]:
    """Read places from a GeoJSON FeatureCollection or a CSV of points.

    Parameters
    ----------
    path : Path
        ``.geojson``/``.json`` (optionally ``.gz``) with polygon or point features, or ``.csv``
        with one point per row.
    kind : str, optional
        The kind of every place (one of ``PLACE_KINDS``); without it each feature or row needs a
        ``kind`` property/column.
    id_field, name_field : str
        Property/column holding the id (default ``id``; the row number when absent) and name.
    lon_field, lat_field : str
        CSV columns of the coordinates.
    system : str
        Coordinate system of the file (``gcj02`` for Amap/Tencent, ``bd09`` for Baidu data).

    Raises
    ------
    DataError
        If the file cannot be read, or a kind or coordinate is missing or invalid.
    """
    if kind is not None:
        kind = _kind(kind, str(path))
    if path.suffix.lower() == ".csv" or path.name.lower().endswith(".csv.gz"):
        rows = _csv_rows(path, lon_field, lat_field)
    else:
        doc = read_json(path)
        if not isinstance(doc, dict) or "features" not in doc:
            raise DataError(f"{path} is not a GeoJSON FeatureCollection")
        features = doc["features"]
        if not isinstance(features, list):
            raise DataError(f"{path}: 'features' is not a list")
        rows = [_geojson_row(path, n, f) for n, f in enumerate(features, start=1)]
    out = []
    for n, (props, geometry) in enumerate(rows, start=1):
        where = f"{path} feature {n}"
        place_kind = kind or _kind(props.get("kind", ""), where)
        pid = props.get(id_field)
        out.append(
            Place(
                id=str(n if pid is None or pid != pid else pid),  # NaN id: the row number
                kind=place_kind,
                name=str(props.get(name_field) or ""),
                geometry=to_wgs(geometry, system),
            )
        )
    return out


def _geojson_row(path: Path, n: int, feature: object) -> tuple[dict[str, Any], Any]:
    """The properties and shapely geometry of GeoJSON feature ``n`` (1-based, for messages)."""
    where = f"{path} feature {n}"
    if not isinstance(feature, dict):
        raise DataError(f"{where} is not a GeoJSON Feature")
    props = feature.get("properties") or {}
    if not isinstance(props, dict):
        raise DataError(f"{where}: its properties are not an object")
    raw = feature.get("geometry")
    if not raw:
        raise DataError(f"{where} has no geometry")
    try:
        geometry = shape(raw)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, ShapelyError) as exc:
        raise DataError(f"{where}: invalid geometry ({exc})") from None
    if geometry.is_empty:
        raise DataError(f"{where} has an empty geometry")
    return props, geometry


def _csv_rows(path: Path, lon: str, lat: str) -> list[tuple[dict[str, Any], Any]]:
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc
    missing = [c for c in (lon, lat) if c not in frame.columns]
    if missing:
        raise DataError(f"{path} lacks the coordinate columns {missing}")
    try:
        x = frame[lon].astype(float).to_numpy()
        y = frame[lat].astype(float).to_numpy()
    except ValueError as exc:
        raise DataError(f"{path}: a {lon}/{lat} value is not a number ({exc})") from exc
    bad = (np.abs(x) > 180) | (np.abs(y) > 90) | ~np.isfinite(x) | ~np.isfinite(y)
    if bad.any():
        line = int(np.argmax(bad)) + 2  # the header is line 1
        raise DataError(f"{path} line {line}: ({x[line - 2]}, {y[line - 2]}) is not a lon/lat")
    records = frame.drop(columns=[lon, lat]).to_dict("records")
    return [
        ({str(k): v for k, v in r.items()}, shapely.Point(float(a), float(b)))
        for r, a, b in zip(records, x, y, strict=True)
    ]


def merge_places(old: Sequence[Place], new: Sequence[Place]) -> list[Place]:
    """``old`` with ``new`` added; a new place replaces an old one with the same id."""
    fresh = {p.id for p in new}
    return [p for p in old if p.id not in fresh] + list(new)


def import_places(folder: Path, places: Sequence[Place]) -> int:
    """Add places to a built pack folder's ``places.geojson``; return how many it now holds.

    A place whose id is already in the pack replaces it.  Places outside the pack's city
    polygon are kept (a market on the border serves both sides), but the pack must exist and,
    as in a build, no place may lie more than 5 km outside its road network's bounding box.

    Raises
    ------
    DataError
        If the pack cannot be read, a place lies far outside the network (with a hint when
        its longitude and latitude look swapped), or ``places.geojson`` cannot be written.
    """
    pack = read_pack(folder)
    check_near_network("place", [(q.id, *surface_xy(q.geometry)) for q in places], pack.network)
    merged = merge_places(pack.places, places)
    path = pack.path / "places.geojson"
    with writes_to(path):
        path.write_text(
            json.dumps(feature_collection([p.feature() for p in merged]), ensure_ascii=False),
            encoding="utf-8",
        )
    pack.places[:] = merged  # the loaded (cached) pack sees them too
    return len(merged)


def surface_xy(geometry: Any) -> tuple[float, float]:
    """A point on a place's geometry (its location for distance checks)."""
    point = shapely.point_on_surface(geometry)
    return float(point.x), float(point.y)
