"""The dashboard's map, drawn from the city pack itself: GeoJSON layers and local time windows.

No tile server is involved: the roads, jurisdictions, stations and places of the pack are sent to
the browser once as GeoJSON and drawn as vector layers, so the map works offline.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import shapely

from citywatch.city import CityPack
from citywatch.city.pack import feature_collection
from citywatch.errors import ValidationError

__all__ = ["COORD_DECIMALS", "local_windows", "pack_config", "pack_layers", "road_segments"]

#: Six decimals of a degree are about 0.1 m: finer than any road network, and keeps the JSON small.
COORD_DECIMALS = 6


def road_segments(pack: CityPack) -> dict[str, list[list[list[float]]]]:
    """Undirected road segments of the pack, grouped by OSM ``highway`` class.

    A two-way street is stored as two directed edges; it is drawn once.  Edges with a source
    geometry keep it; the others are straight segments between their end nodes.

    Parameters
    ----------
    pack : CityPack
        The city.

    Returns
    -------
    dict
        ``highway`` class (``"road"`` when untagged) -> list of lines, each a list of
        ``[lon, lat]`` pairs rounded to :data:`COORD_DECIMALS`.
    """
    edges = pack.network.edges
    lon = np.round(pack.network.lon, COORD_DECIMALS)
    lat = np.round(pack.network.lat, COORD_DECIMALS)
    u = edges["u"].to_numpy(dtype=np.int64)
    v = edges["v"].to_numpy(dtype=np.int64)
    # One key per unordered node pair; a curved and a straight edge between the same nodes are
    # rare enough that drawing the first of them is faithful at dashboard scale.
    key = np.minimum(u, v) * len(lon) + np.maximum(u, v)
    _, first = np.unique(key, return_index=True)
    highway = edges["highway"].fillna("road").astype(str).to_numpy()
    wkt = edges["geometry"].to_numpy()
    out: dict[str, list[list[list[float]]]] = {}
    for i in np.sort(first):
        if isinstance(wkt[i], str) and wkt[i]:
            line = shapely.set_precision(shapely.from_wkt(wkt[i]), 10.0**-COORD_DECIMALS)
            coords = [[float(x), float(y)] for x, y in line.coords]
        else:
            coords = [
                [float(lon[u[i]]), float(lat[u[i]])],
                [float(lon[v[i]]), float(lat[v[i]])],
            ]
        out.setdefault(str(highway[i]), []).append(coords)
    return out


def pack_layers(pack: CityPack) -> dict[str, Any]:
    """Every map layer of the dashboard as GeoJSON FeatureCollections (WGS-84).

    Parameters
    ----------
    pack : CityPack
        The city.

    Returns
    -------
    dict
        ``roads`` (one MultiLineString feature per ``highway`` class), ``jurisdictions`` (every
        level, properties ``id``, ``name``, ``name_zh``, ``level``, ``parent``), ``stations``
        (points, with ``synthetic``) and ``places`` (``kind``, ``name``).
    """
    roads = [
        {
            "type": "Feature",
            "properties": {"highway": cls, "segments": len(lines)},
            "geometry": {"type": "MultiLineString", "coordinates": lines},
        }
        for cls, lines in sorted(road_segments(pack).items())
    ]
    jurisdictions = [j.feature(COORD_DECIMALS) for j in pack.jurisdictions]
    stations = [s.feature(COORD_DECIMALS) for s in pack.stations]
    places = [p.feature(COORD_DECIMALS) for p in pack.places]

    return {
        "roads": feature_collection(roads),
        "jurisdictions": feature_collection(jurisdictions),
        "stations": feature_collection(stations),
        "places": feature_collection(places),
    }


def pack_config(pack: CityPack) -> dict[str, Any]:
    """What the dashboard needs to know about the city before drawing it.

    Returns
    -------
    dict
        ``name``, ``display_name``, ``name_zh``, ``timezone``, ``bbox`` (lon/lat min/max),
        ``credits`` (always including the OpenStreetMap credit of the road network) and
        ``synthetic_stations``.
    """
    info = pack.info()
    credits = [str(c) for c in pack.meta.get("credits", [])]
    if not any("OpenStreetMap" in c for c in credits):
        credits.insert(0, "Road network: © OpenStreetMap contributors (ODbL)")
    return {
        "name": pack.name,
        "display_name": str(pack.meta.get("display_name", pack.name)),
        "name_zh": info["name_zh"] or str(pack.meta.get("display_name", pack.name)),
        "timezone": pack.timezone,
        "bbox": info["bbox"],
        "credits": credits,
        "synthetic_stations": pack.synthetic_stations,
    }


def local_windows(now: datetime, timezone: str) -> dict[str, tuple[datetime, datetime]]:
    """The dashboard's KPI windows in the city's time zone: ``today`` and ``week``.

    ``today`` starts at local midnight, ``week`` at local midnight of the last Monday (ISO
    week); both end at ``now``.  Midnight is taken on the local calendar, so a day with a
    daylight-saving change is 23 or 25 hours long.

    Parameters
    ----------
    now : datetime
        Current time, timezone-aware.
    timezone : str
        IANA time zone of the city.

    Returns
    -------
    dict
        ``name -> (start, end)``, both timezone-aware.
    """
    if now.tzinfo is None:
        raise ValidationError("now must be timezone-aware", field="now")
    tz = ZoneInfo(timezone)
    local = now.astimezone(tz)
    today = local.date()
    monday = today - timedelta(days=today.weekday())
    # A local midnight skipped by a DST jump does not exist; zoneinfo's fold=0 resolves it to
    # the instant just after the gap, which is when the local day really began.
    return {
        "today": (datetime.combine(today, time(0), tz), now),
        "week": (datetime.combine(monday, time(0), tz), now),
    }
