"""Places and police stations from the tags of an OpenStreetMap file (pyosmium).

The road network itself is read by :func:`citywatch.city.network.read_osm`; this module reads the
other objects a pack needs from the same file: the places of
:data:`~citywatch.city.places.OSM_PLACE_TAGS` (tagged nodes become points, closed ways and
multipolygon relations polygons) and the police stations (``amenity=police``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import shapely

from citywatch.city.pack import Place, Station
from citywatch.city.places import OSM_PLACE_TAGS
from citywatch.errors import DataError

__all__ = ["POLICE_TAG", "read_osm_places", "read_osm_stations"]

#: The OSM tag of police stations.
POLICE_TAG = ("amenity", "police")


def _tagged(path: Path, keys: set[str]) -> Iterator[tuple[str, dict[str, str], Any]]:
    """``(id, tags, WGS-84 geometry)`` of every node and area carrying one of ``keys``.

    Ids are ``n<id>`` for nodes, ``w<id>``/``r<id>`` for areas from ways and relations.
    """
    import osmium

    wkb = osmium.geom.WKBFactory()
    try:
        processor = (
            osmium.FileProcessor(str(path))
            .with_locations()
            .with_areas(osmium.filter.KeyFilter(*keys))
            .with_filter(osmium.filter.KeyFilter(*keys))
        )
        for obj in processor:
            geometry: Any
            if isinstance(obj, osmium.osm.Node):
                if not obj.location.valid():
                    continue
                oid, geometry = f"n{obj.id}", shapely.Point(obj.location.lon, obj.location.lat)
            elif isinstance(obj, osmium.osm.Area):
                try:
                    geometry = shapely.from_wkb(wkb.create_multipolygon(obj))
                except RuntimeError:  # a broken multipolygon in the source: skip it
                    continue
                oid = f"{'w' if obj.from_way() else 'r'}{obj.orig_id()}"
            else:
                continue
            yield oid, dict(obj.tags), geometry
    except RuntimeError as exc:
        raise DataError(f"cannot read OSM file {path}: {exc}") from exc


def read_osm_places(path: Path) -> list[Place]:
    """Places of an OSM file by the documented tag mapping (:data:`OSM_PLACE_TAGS`).

    Parameters
    ----------
    path : Path
        ``.osm``, ``.osm.bz2`` or ``.osm.pbf``.

    Returns
    -------
    list of Place
        Ids ``osm:n123`` (tagged node, a point) or ``osm:w123``/``osm:r123`` (an area), the OSM
        ``name`` (or ``name:en``), in file order.
    """
    keys = {key for key, _, _ in OSM_PLACE_TAGS}
    out = []
    for oid, tags, geometry in _tagged(path, keys):
        kind = next((k for key, value, k in OSM_PLACE_TAGS if tags.get(key) == value), None)
        if kind is not None:
            out.append(
                Place(f"osm:{oid}", kind, tags.get("name", tags.get("name:en", "")), geometry)
            )
    return out


def read_osm_stations(path: Path) -> list[Station]:
    """Police stations (``amenity=police``) of an OSM file, at their point or area centroid."""
    key, value = POLICE_TAG
    out = []
    for oid, tags, geometry in _tagged(path, {key}):
        if tags.get(key) != value:
            continue
        point = geometry if geometry.geom_type == "Point" else shapely.point_on_surface(geometry)
        sid = f"osm:{oid}"
        street = " ".join(t for t in (tags.get("addr:housenumber"), tags.get("addr:street")) if t)
        out.append(
            Station(
                id=sid,
                name=tags.get("name", "Police station"),
                name_zh=tags.get("name:zh", ""),
                lon=float(point.x),
                lat=float(point.y),
                jurisdiction=sid,
                address=street,
            )
        )
    return out
