"""City packs: one folder describing one city, and the API to read it.

A pack folder holds ``city.toml`` (name, time zone, metric CRS, source coordinate system, credits,
speed overrides), ``nodes.parquet`` and ``edges.parquet`` (the road network),
``jurisdictions.geojson`` (the hierarchy city -> bureau -> station -> zone as polygons, each with
``id``, ``name``, ``name_zh``, ``level``, ``parent``), ``stations.geojson`` and, optionally,
``places.geojson`` (markets, urban villages, schools, hospitals).  Packs are build outputs of
:mod:`citywatch.city.build`, never edited by hand.  All geometry is stored in WGS-84.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import shapely
from pyproj import Geod
from shapely.geometry import mapping, shape

from citywatch.city.network import RoadNetwork
from citywatch.errors import DataError, NotFoundError

__all__ = [
    "LEVELS",
    "CityPack",
    "Jurisdiction",
    "Place",
    "Station",
    "jurisdiction_sort_key",
    "read_pack",
    "write_pack",
]

#: Jurisdiction levels, from the whole city down to patrol zones (sectors).
LEVELS = ("city", "bureau", "station", "zone")
PLACE_KINDS = ("market", "urban_village", "school", "hospital", "transit", "park", "other")
_GEOD = Geod(ellps="WGS84")


def _feature(props: dict[str, Any], geometry: Any, decimals: int | None) -> dict[str, Any]:
    if decimals is not None:
        geometry = shapely.set_precision(geometry, 10.0**-decimals)
    return {"type": "Feature", "properties": props, "geometry": mapping(geometry)}


def feature_collection(features: list[dict[str, Any]]) -> dict[str, Any]:
    """A GeoJSON FeatureCollection of ``features``."""
    return {"type": "FeatureCollection", "features": features}


@dataclass(frozen=True)
class Jurisdiction:
    """One polygon of the jurisdiction hierarchy (WGS-84 geometry)."""

    id: str
    name: str
    name_zh: str
    level: str
    parent: str | None
    geometry: Any

    def feature(self, decimals: int | None = None) -> dict[str, Any]:
        """This jurisdiction as a GeoJSON Feature (coordinates rounded to ``decimals`` if given)."""
        props = {
            "id": self.id,
            "name": self.name,
            "name_zh": self.name_zh,
            "level": self.level,
            "parent": self.parent,
        }
        return _feature(props, self.geometry, decimals)


@dataclass(frozen=True)
class Station:
    """A police station (precinct house, 派出所); ``synthetic`` if placed by a rule, not real."""

    id: str
    name: str
    name_zh: str
    lon: float
    lat: float
    jurisdiction: str
    address: str = ""
    synthetic: bool = False

    def feature(self, decimals: int | None = None) -> dict[str, Any]:
        """This station as a GeoJSON Point Feature."""
        props = {
            "id": self.id,
            "name": self.name,
            "name_zh": self.name_zh,
            "jurisdiction": self.jurisdiction,
            "address": self.address,
            "synthetic": self.synthetic,
        }
        return _feature(props, shapely.Point(self.lon, self.lat), decimals)


@dataclass(frozen=True)
class Place:
    """A place that changes how police respond (market, urban village, school, hospital)."""

    id: str
    kind: str
    name: str
    geometry: Any

    def feature(self, decimals: int | None = None) -> dict[str, Any]:
        """This place as a GeoJSON Feature."""
        return _feature(
            {"id": self.id, "kind": self.kind, "name": self.name}, self.geometry, decimals
        )


def jurisdiction_sort_key(value: str) -> tuple[Any, ...]:
    """Natural order for jurisdiction ids: ``"5" < "14" < "14A" < "PBMN"``."""
    parts = re.split(r"(\d+)", value)
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts if p)


def area_km2(geometry: Any) -> float:
    """Geodesic area of a WGS-84 polygon in km² (on the WGS-84 ellipsoid)."""
    return abs(_GEOD.geometry_area_perimeter(geometry)[0]) / 1e6


@dataclass
class CityPack:
    """A loaded city pack.  Use :func:`citywatch.city.load_pack` to get one."""

    path: Path
    meta: dict[str, Any]
    network: RoadNetwork
    jurisdictions: list[Jurisdiction]
    stations: list[Station]
    places: list[Place] = field(default_factory=list)

    @property
    def name(self) -> str:
        """Pack name (``manhattan``)."""
        return str(self.meta["name"])

    @property
    def timezone(self) -> str:
        """IANA time zone of the city (``America/New_York``)."""
        return str(self.meta["timezone"])

    @property
    def crs(self) -> str:
        """Metric CRS used for distances and snapping (``EPSG:32618``)."""
        return str(self.meta["crs"])

    @property
    def source_crs(self) -> str:
        """Coordinate system of the source data (``wgs84`` or ``gcj02``); packs store WGS-84."""
        return str(self.meta.get("source_crs", "wgs84"))

    @property
    def synthetic_stations(self) -> bool:
        """True when the stations were placed by a rule, not taken from real data."""
        return any(s.synthetic for s in self.stations)

    @property
    def speed_overrides(self) -> dict[str, float]:
        """Per-mode speed overrides (km/h) from ``city.toml``'s ``[speeds]``."""
        return {str(k): float(v) for k, v in self.meta.get("speeds", {}).items()}

    @property
    def max_snap_m(self) -> float:
        """Farthest distance (m) a point may lie from the road network."""
        return float(self.meta.get("max_snap_m", 250.0))

    def level(self, level: str) -> list[Jurisdiction]:
        """The jurisdictions of one level."""
        return [j for j in self.jurisdictions if j.level == level]

    def jurisdiction(self, jurisdiction_id: str) -> Jurisdiction:
        """The jurisdiction with this id (ids are unique across levels)."""
        for j in self.jurisdictions:
            if j.id == jurisdiction_id:
                return j
        raise NotFoundError(f"no jurisdiction {jurisdiction_id!r} in pack {self.name}")

    def area_km2(self, jurisdiction_id: str) -> float:
        """Area of a jurisdiction in km²."""
        return area_km2(self.jurisdiction(jurisdiction_id).geometry)

    @cached_property
    def _trees(self) -> dict[str, tuple[shapely.STRtree, list[Jurisdiction]]]:
        out = {}
        for lvl in LEVELS:
            items = self.level(lvl)
            if items:
                out[lvl] = (shapely.STRtree([j.geometry for j in items]), items)
        return out

    def locate_many(self, lon: npt.ArrayLike, lat: npt.ArrayLike) -> pd.DataFrame:
        """Jurisdiction ids at every level for many points (point-in-polygon, vectorised).

        Returns
        -------
        pandas.DataFrame
            One row per point, columns ``city``, ``bureau``, ``station``, ``zone``; None where a
            point lies in no polygon of that level (or the pack has no such level).
        """
        lon_a = np.asarray(lon, dtype=np.float64)
        lat_a = np.asarray(lat, dtype=np.float64)
        pts = shapely.points(lon_a, lat_a)
        out = pd.DataFrame(index=range(len(lon_a)), columns=list(LEVELS), dtype=object)
        for lvl, (tree, items) in self._trees.items():
            # Box candidates from the tree, then one vectorised test per prepared polygon: the
            # tree's own predicate test does not prepare the polygons, which is ~100x slower on
            # detailed boundaries (Baltimore's districts have up to 34,000 vertices).
            idx = tree.query(pts)
            hit = np.zeros(idx.shape[1], dtype=bool)
            for k in np.unique(idx[1]):
                sel = np.nonzero(idx[1] == k)[0]
                geom = items[k].geometry
                shapely.prepare(geom)
                hit[sel] = shapely.intersects_xy(geom, lon_a[idx[0][sel]], lat_a[idx[0][sel]])
            idx = idx[:, hit]
            ids = np.full(len(lon_a), None, dtype=object)
            # Keep the first polygon for a point on a shared border (deterministic).
            order = np.lexsort((idx[1], idx[0]))
            first = np.unique(idx[0][order], return_index=True)[1]
            ids[idx[0][order][first]] = [items[k].id for k in idx[1][order][first]]
            out[lvl] = ids
        return out

    def locate(self, lon: float, lat: float) -> dict[str, str | None]:
        """Jurisdiction id at every level for one point."""
        row = self.locate_many([lon], [lat]).iloc[0]
        return {lvl: (None if pd.isna(row[lvl]) else str(row[lvl])) for lvl in LEVELS}

    @cached_property
    def _city_area(self) -> Any:
        cities = self.level("city")
        area = shapely.union_all([c.geometry for c in cities])
        shapely.prepare(area)  # every AVL report and new incident asks: keep it fast
        return area

    def contains(self, lon: float, lat: float) -> bool:
        """Whether the point lies inside (or on the border of) the city polygon."""
        return bool(shapely.intersects_xy(self._city_area, lon, lat))

    def station(self, station_id: str) -> Station:
        """The station with this id."""
        for s in self.stations:
            if s.id == station_id:
                return s
        raise NotFoundError(f"no station {station_id!r} in pack {self.name}")

    def info(self) -> dict[str, Any]:
        """Summary for ``citywatch city info``: sizes, km of road, areas, stations, bbox."""
        lon, lat = self.network.lon, self.network.lat
        return {
            "name": self.name,
            "name_zh": self.meta.get("name_zh", ""),
            "timezone": self.timezone,
            "crs": self.crs,
            "source_crs": self.source_crs,
            "nodes": len(self.network.nodes),
            "directed_edges": len(self.network.edges),
            "road_km": round(self.network.total_km, 3),
            "bbox": [float(lon.min()), float(lat.min()), float(lon.max()), float(lat.max())],
            "jurisdictions": {
                lvl: [
                    {
                        "id": j.id,
                        "name": j.name,
                        "parent": j.parent,
                        "area_km2": round(area_km2(j.geometry), 3),
                    }
                    for j in self.level(lvl)
                ]
                for lvl in LEVELS
            },
            "stations": [
                {"id": s.id, "name": s.name, "lon": s.lon, "lat": s.lat, "synthetic": s.synthetic}
                for s in self.stations
            ],
            "synthetic_stations": self.synthetic_stations,
            "places": len(self.places),
            "place_kinds": {
                k: n for k in PLACE_KINDS if (n := sum(p.kind == k for p in self.places))
            },
            "credits": self.meta.get("credits", []),
        }


def _features(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    try:
        return list(json.loads(path.read_text(encoding="utf-8"))["features"])
    except (json.JSONDecodeError, KeyError) as exc:
        raise DataError(f"{path} is not a GeoJSON FeatureCollection: {exc}") from exc


def _read(folder: Path) -> CityPack:
    try:
        meta = tomllib.loads((folder / "city.toml").read_text(encoding="utf-8"))["city"]
    except FileNotFoundError as exc:
        raise NotFoundError(f"{folder} is not a city pack (no city.toml)") from exc
    except (tomllib.TOMLDecodeError, KeyError) as exc:
        raise DataError(f"{folder / 'city.toml'} is invalid: {exc}") from exc
    jurisdictions = [
        Jurisdiction(
            id=str(f["properties"]["id"]),
            name=str(f["properties"].get("name", "")),
            name_zh=str(f["properties"].get("name_zh", "")),
            level=str(f["properties"]["level"]),
            parent=f["properties"].get("parent"),
            geometry=shape(f["geometry"]),
        )
        for f in _features(folder / "jurisdictions.geojson")
    ]
    stations = [
        Station(
            id=str(p["id"]),
            name=str(p.get("name", "")),
            name_zh=str(p.get("name_zh", "")),
            lon=float(f["geometry"]["coordinates"][0]),
            lat=float(f["geometry"]["coordinates"][1]),
            jurisdiction=str(p.get("jurisdiction", p["id"])),
            address=str(p.get("address", "")),
            synthetic=bool(p.get("synthetic", False)),
        )
        for f in _features(folder / "stations.geojson")
        for p in [f["properties"]]
    ]
    places = [
        Place(
            id=str(f["properties"]["id"]),
            kind=str(f["properties"]["kind"]),
            name=str(f["properties"].get("name", "")),
            geometry=shape(f["geometry"]),
        )
        for f in _features(folder / "places.geojson")
    ]
    return CityPack(folder, meta, RoadNetwork.from_parquet(folder), jurisdictions, stations, places)


def _write_features(path: Path, features: list[dict[str, Any]]) -> None:
    path.write_text(json.dumps(feature_collection(features), ensure_ascii=False), encoding="utf-8")


def write_pack(
    folder: Path,
    meta: dict[str, Any],
    network: RoadNetwork,
    jurisdictions: list[Jurisdiction],
    stations: list[Station],
    places: list[Place],
) -> None:
    """Write a pack folder (overwriting the files it writes)."""
    import tomli_w

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "city.toml").write_text(tomli_w.dumps({"city": meta}), encoding="utf-8")
    network.to_parquet(folder)
    _write_features(folder / "jurisdictions.geojson", [j.feature() for j in jurisdictions])
    _write_features(folder / "stations.geojson", [s.feature() for s in stations])
    if places:
        _write_features(folder / "places.geojson", [p.feature() for p in places])


_CACHE: dict[tuple[Path, int], CityPack] = {}


def read_pack(folder: Path) -> CityPack:
    """Read the pack in ``folder`` once per process and build: later calls return the same
    object until the folder is rebuilt (a new ``city.toml``).

    Bundled pack names are resolved by :func:`citywatch.city.bundled.load_pack`.

    Raises
    ------
    NotFoundError
        If ``folder`` holds no pack.
    """
    path = Path(folder).resolve()
    try:
        key = (path, (path / "city.toml").stat().st_mtime_ns)
    except OSError:
        raise NotFoundError(f"{folder} is not a city pack (no city.toml)") from None
    if key not in _CACHE:
        _CACHE[key] = _read(path)
    return _CACHE[key]
