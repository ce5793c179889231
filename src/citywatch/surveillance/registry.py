"""Sensor files in and out: the registry's own CSV/GeoJSON and the real camera lists.

Readers for the published camera lists (``../shared/data/cameras/``):

==================== ============================================== ==========================
format               file                                           becomes
==================== ============================================== ==========================
``nyc_dot``          NYC DOT traffic cameras                        fixed cameras, owner city
``baltimore_cctv``   Baltimore registered CCTV                      fixed cameras, owner from
                                                                    ``RegistrationType``
``baltimore_citiwatch`` BPD CitiWatch cameras (WKT points)          PTZ cameras, owner police
``nola_rtcc``        New Orleans Real-Time Crime Center cameras     fixed cameras, owner city
``citywatch``        this module's own CSV or GeoJSON               as written
==================== ============================================== ==========================

No list gives directions, angles or ranges, so those stay empty (see the defaults in
:mod:`citywatch.surveillance.sensors`).  Every row is accounted for: a row that cannot become a
sensor is returned with its line number and reason, never dropped silently.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import shapely
from pyproj import Transformer

from citywatch.city import CityPack
from citywatch.city.pack import feature_collection
from citywatch.errors import CityWatchError, DataError
from citywatch.surveillance.sensors import RECORD_FIELDS, Owner, Sensor, SensorKind, optional_text
from citywatch.surveillance.streets import Streets

__all__ = [
    "FORMATS",
    "REGISTRY_COLUMNS",
    "ReadResult",
    "SnapResult",
    "detect_format",
    "read_sensors",
    "sensors_geojson",
    "snap_sensors",
    "write_sensors",
]

#: Columns of the registry CSV, in order (the snapped point is recomputed on import).
REGISTRY_COLUMNS = tuple(f for f in RECORD_FIELDS if not f.startswith("snap_"))

#: Header columns that identify each source format.
_SIGNATURES: dict[str, frozenset[str]] = {
    "citywatch": frozenset({"id", "kind", "lon", "lat", "owner"}),
    "nyc_dot": frozenset({"camera_id", "name", "lat", "lon", "nypd_precinct"}),
    "baltimore_cctv": frozenset({"ID", "CameraName", "RegistrationType", "Latitude", "Longitude"}),
    "baltimore_citiwatch": frozenset({"the_geom", "Name"}),
    "nola_rtcc": frozenset({"latitude", "longitude", "random_id"}),
}
FORMATS = ("auto", *_SIGNATURES)


@dataclass(frozen=True)
class ReadResult:
    """Sensors read from a file and the rows refused: ``(line number, reason)``."""

    sensors: list[Sensor]
    rejected: list[tuple[int, str]]
    format: str

    @property
    def rows(self) -> int:
        """Data rows read."""
        return len(self.sensors) + len(self.rejected)


@dataclass(frozen=True)
class SnapResult:
    """Sensors placed on the pack's streets, and those refused: ``(id, reason)``."""

    sensors: list[Sensor]
    refused: list[tuple[str, str]]


def detect_format(columns: Sequence[str]) -> str:
    """The source format whose signature columns the header holds.

    Raises
    ------
    DataError
        When no format matches.
    """
    present = set(columns)
    for name, signature in _SIGNATURES.items():
        if signature <= present:
            return name
    raise DataError(
        "unrecognised sensor file: expected the registry columns "
        f"({', '.join(sorted(_SIGNATURES['citywatch']))}) or a known camera list"
    )


def _nyc_dot(row: dict[str, Any]) -> Sensor:
    return Sensor(
        id=f"nycdot-{int(row['camera_id'])}",
        kind=SensorKind.FIXED_CAMERA,
        lon=float(row["lon"]),
        lat=float(row["lat"]),
        owner=Owner.CITY,
        name=optional_text(row["name"]),
        source="nyc_dot",
    )


def _baltimore_cctv(row: dict[str, Any]) -> Sensor:
    business = str(row["RegistrationType"]).strip().lower() == "business"
    return Sensor(
        id=f"bmore-cctv-{int(row['ID'])}",
        kind=SensorKind.FIXED_CAMERA,
        lon=float(row["Longitude"]),
        lat=float(row["Latitude"]),
        owner=Owner.BUSINESS if business else Owner.PRIVATE_REGISTERED,
        name=optional_text(row["CameraName"]),
        source="baltimore_cctv",
    )


def _baltimore_citiwatch(row: dict[str, Any]) -> Sensor:
    point = shapely.from_wkt(str(row["the_geom"]))
    if not isinstance(point, shapely.Point):
        raise ValueError("the_geom is not a POINT")
    # Names repeat in the list (a junction with two cameras): the id is the row number.
    return Sensor(
        id=f"citiwatch-{int(row['_line'])}",
        kind=SensorKind.PTZ,
        lon=float(point.x),
        lat=float(point.y),
        owner=Owner.POLICE,
        name=optional_text(row["Name"]),
        source="baltimore_citiwatch",
    )


def _nola_rtcc(row: dict[str, Any]) -> Sensor:
    return Sensor(
        id=f"nola-rtcc-{int(row['_line'])}",
        kind=SensorKind.FIXED_CAMERA,
        lon=float(row["longitude"]),
        lat=float(row["latitude"]),
        owner=Owner.CITY,
        source="nola_rtcc",
    )


_READERS: dict[str, Callable[[dict[str, Any]], Sensor]] = {
    "citywatch": Sensor.from_record,
    "nyc_dot": _nyc_dot,
    "baltimore_cctv": _baltimore_cctv,
    "baltimore_citiwatch": _baltimore_citiwatch,
    "nola_rtcc": _nola_rtcc,
}


def _geojson_rows(path: Path) -> list[dict[str, Any]]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not a readable GeoJSON file ({exc})") from exc
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection":
        raise DataError(f"{path}: expected a GeoJSON FeatureCollection")
    rows = []
    for feature in doc.get("features", []):
        props = dict(feature.get("properties") or {})
        coords = (feature.get("geometry") or {}).get("coordinates") or [None, None]
        props.setdefault("lon", coords[0])
        props.setdefault("lat", coords[1])
        rows.append(props)
    return rows


def _csv_rows(path: Path) -> list[dict[str, Any]]:
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise DataError(f"{path}: not a readable CSV file ({exc})") from exc
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"{path}: the file is empty") from exc
    return [{str(k): v for k, v in row.items()} for row in frame.to_dict(orient="records")]


def read_sensors(path: Path | str, fmt: str = "auto") -> ReadResult:
    """Read a sensor file: the registry's CSV or GeoJSON, or one of the real camera lists.

    Parameters
    ----------
    path : path
        ``.csv`` or ``.geojson``/``.json``.
    fmt : str
        One of :data:`FORMATS`; ``auto`` detects it from the header.

    Raises
    ------
    DataError
        On an unreadable file, an unknown format or duplicate sensor ids.
    """
    path = Path(path)
    if fmt not in FORMATS:
        raise DataError(f"unknown sensor format {fmt!r}; choose one of {', '.join(FORMATS)}")
    is_geojson = path.suffix.lower() in (".geojson", ".json")
    rows = _geojson_rows(path) if is_geojson else _csv_rows(path)
    if fmt == "auto":
        fmt = "citywatch" if is_geojson else detect_format(list(rows[0]) if rows else [])
    reader = _READERS[fmt]
    sensors: list[Sensor] = []
    rejected: list[tuple[int, str]] = []
    seen: set[str] = set()
    for k, row in enumerate(rows):
        line = k + (1 if is_geojson else 2)  # CSV line numbers count the header
        row["_line"] = line
        try:
            sensor = reader(row)
        except (CityWatchError, ValueError, KeyError, TypeError) as exc:
            reason = exc.message if isinstance(exc, CityWatchError) else f"bad value: {exc}"
            rejected.append((line, reason))
            continue
        if sensor.id in seen:
            raise DataError(f"{path}: duplicate sensor id {sensor.id!r} (line {line})")
        seen.add(sensor.id)
        sensors.append(sensor)
    return ReadResult(sensors, rejected, fmt)


def snap_sensors(
    sensors: Sequence[Sensor],
    pack: CityPack,
    streets: Streets | None = None,
    max_snap_m: float | None = None,
) -> SnapResult:
    """Place sensors on the nearest street of the pack and fill their jurisdictions.

    Sensors outside the pack's city polygon, or farther than ``max_snap_m`` (default: the
    pack's ``max_snap_m``) from every street, are returned in ``refused`` with the reason.
    """
    if not sensors:
        return SnapResult([], [])
    streets = streets or Streets.from_pack(pack)
    limit = pack.max_snap_m if max_snap_m is None else max_snap_m
    lon = np.array([s.lon for s in sensors])
    lat = np.array([s.lat for s in sensors])
    x, y = Transformer.from_crs("EPSG:4326", streets.crs, always_xy=True).transform(lon, lat)
    segment, offset, distance = streets.snap(np.asarray(x), np.asarray(y))
    sx, sy = streets.point_at(segment, offset)
    slon, slat = Transformer.from_crs(streets.crs, "EPSG:4326", always_xy=True).transform(sx, sy)
    where = pack.locate_many(slon, slat)
    inside = pack.locate_many(lon, lat)["city"].notna().to_numpy()
    placed: list[Sensor] = []
    refused: list[tuple[str, str]] = []
    for i, sensor in enumerate(sensors):
        if not inside[i]:
            refused.append((sensor.id, f"outside the {pack.name} city area"))
            continue
        if not distance[i] <= limit:
            refused.append((sensor.id, f"{distance[i]:.0f} m from the nearest street"))
            continue
        row = where.iloc[i]
        placed.append(
            replace(
                sensor,
                snap_lon=float(slon[i]),
                snap_lat=float(slat[i]),
                snap_m=float(distance[i]),
                bureau=optional_text(row["bureau"]),
                station=optional_text(row["station"]),
                zone=optional_text(row["zone"]),
            )
        )
    return SnapResult(placed, refused)


def _registry_record(sensor: Sensor) -> dict[str, Any]:
    record = sensor.to_dict()
    return {column: record[column] for column in REGISTRY_COLUMNS}


def sensors_geojson(sensors: Sequence[Sensor]) -> dict[str, Any]:
    """GeoJSON FeatureCollection of sensors (at the snapped point when snapped)."""
    features = []
    for sensor in sensors:
        lon = sensor.snap_lon if sensor.snap_lon is not None else sensor.lon
        lat = sensor.snap_lat if sensor.snap_lat is not None else sensor.lat
        features.append(
            {
                "type": "Feature",
                "properties": _registry_record(sensor),
                "geometry": {"type": "Point", "coordinates": [lon, lat]},
            }
        )
    return feature_collection(features)


def write_sensors(sensors: Sequence[Sensor], path: Path | str) -> Path:
    """Write sensors as the registry CSV or, for ``.geojson``/``.json``, GeoJSON.

    ``lon``/``lat`` are the recorded location (the GeoJSON point is the snapped one), so a file
    written here reads back to the same sensors.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() in (".geojson", ".json"):
        path.write_text(json.dumps(sensors_geojson(sensors)), encoding="utf-8")
    else:
        frame = pd.DataFrame([_registry_record(s) for s in sensors], columns=REGISTRY_COLUMNS)
        frame.to_csv(path, index=False)
    return path
