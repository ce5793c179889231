"""Police stations of a pack: read from GeoJSON or CSV, filled by a documented rule, checked.

* :func:`read_station_file` reads station points from a GeoJSON FeatureCollection or a CSV
  (``[stations] file``), with id/name/address templates over the properties and a ``where``
  filter;
* :func:`fill_stations` gives every jurisdiction of a level that holds no real station a
  **synthetic** one by the ``road_centre`` rule: the road node nearest the mean position (in the
  metric CRS) of the road nodes inside the polygon, labelled synthetic (the Baltimore pack's
  seven districts without a mapped station house).

Points far from the road network are refused by
:func:`citywatch.city.network.check_near_network` (stations and places alike).
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import shapely
from pyproj import Transformer

from citywatch.city.coords import CoordinateSystem, to_wgs84
from citywatch.city.network import RoadNetwork
from citywatch.city.pack import Jurisdiction, Station
from citywatch.city.places import read_json
from citywatch.errors import DataError

__all__ = ["fill_stations", "read_station_file", "template"]


def template(text: str, props: dict[str, Any], **extra: Any) -> str:
    """Fill a ``{property}`` template from a feature's properties (empty template: empty)."""
    try:
        return string.Formatter().vformat(text, (), {**props, **extra}) if text else ""
    except KeyError as exc:
        raise DataError(f"template {text!r} names a missing property {exc}") from None


def _matches(props: dict[str, Any], where: dict[str, Any]) -> bool:
    # A list is a choice of values ("any of"), a scalar one value.
    for key, wanted in where.items():
        allowed = wanted if isinstance(wanted, list) else [wanted]
        if str(props.get(key)) not in {str(w) for w in allowed}:
            return False
    return True


def _points(spec: dict[str, Any], path: Path) -> list[tuple[dict[str, Any], float, float]]:
    if path.suffix.lower() == ".csv" or path.name.lower().endswith(".csv.gz"):
        try:
            frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        except (OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
            raise DataError(f"cannot read stations {path}: {exc}") from exc
        lon, lat = spec.get("lon", "lon"), spec.get("lat", "lat")
        if lon not in frame or lat not in frame:
            raise DataError(f"stations {path} lacks the coordinate columns {lon!r}, {lat!r}")
        records = [{str(k): v for k, v in r.items()} for r in frame.to_dict("records")]
        return [(r, float(r[lon]), float(r[lat])) for r in records]
    doc = read_json(path)
    if not isinstance(doc, dict) or "features" not in doc:
        raise DataError(f"stations {path} is not a GeoJSON FeatureCollection")
    return [
        (f["properties"], *map(float, f["geometry"]["coordinates"][:2])) for f in doc["features"]
    ]


def read_station_file(spec: dict[str, Any], base: Path, system: CoordinateSystem) -> list[Station]:
    """Stations from ``[stations] file`` (GeoJSON points or a CSV with ``lon``/``lat`` columns).

    Parameters
    ----------
    spec : dict
        The ``[stations]`` table: ``file``, ``id`` (property), optional ``name``, ``name_zh``,
        ``address``, ``jurisdiction`` templates, ``where`` filter, ``lon``/``lat`` CSV columns.
    base : Path
        Folder the file path is relative to.
    system : str
        Coordinate system of the file.
    """
    path = base / spec["file"]
    out = []
    for props, x, y in _points(spec, path):
        if not _matches(props, spec.get("where", {})):
            continue
        if spec["id"] not in props:
            raise DataError(f"stations {path}: a station has no property {spec['id']!r}")
        sid = str(props[spec["id"]])
        lon, lat = to_wgs84(x, y, system)
        out.append(
            Station(
                id=sid,
                name=template(spec["name"], props, id=sid)
                if "name" in spec
                else str(props.get("name") or sid),
                name_zh=template(spec.get("name_zh", ""), props, id=sid),
                lon=float(lon),
                lat=float(lat),
                jurisdiction=template(spec.get("jurisdiction", "{id}"), props, id=sid),
                address=template(spec.get("address", ""), props, id=sid),
            )
        )
    return out


def fill_stations(
    stations: Sequence[Station],
    areas: Sequence[Jurisdiction],
    network: RoadNetwork,
    crs: str,
) -> list[Station]:
    """Assign real stations to the areas they lie in; give each area without one a synthetic one.

    A real station lying in an area takes that area as its jurisdiction (the first station in
    file order when several do).  Every other area gets a station named after it, at the road
    node nearest the mean metric position of the road nodes inside it (``road_centre`` rule),
    marked ``synthetic``.

    Returns
    -------
    list of Station
        The real stations (jurisdictions set) followed by the synthetic ones, in area order.
    """
    pts = shapely.points(network.lon, network.lat)
    to_metric = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    xy = np.column_stack(to_metric.transform(network.lon, network.lat))
    real = list(stations)
    out: list[Station] = []
    for area in areas:
        inside = [s for s in real if shapely.intersects_xy(area.geometry, s.lon, s.lat)]
        if inside:
            first = inside[0]
            real.remove(first)
            out.append(replace(first, jurisdiction=area.id))
            continue
        nodes = np.flatnonzero(shapely.contains(area.geometry, pts))
        if len(nodes) == 0:
            raise DataError(f"{area.level} {area.id} holds no road node: cannot place a station")
        centre = xy[nodes].mean(axis=0)
        node = int(nodes[np.argmin(((xy[nodes] - centre) ** 2).sum(axis=1))])
        out.append(
            Station(
                id=area.id,
                name=f"{area.name} station (synthetic)",
                name_zh=f"{area.name_zh or area.name}派出所（模拟）",
                lon=float(network.lon[node]),
                lat=float(network.lat[node]),
                jurisdiction=area.id,
                synthetic=True,
            )
        )
    return out + real
