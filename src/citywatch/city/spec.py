"""Validation of city-pack build specs, before any heavy work.

A build spec (``data/packs/*.toml``, or the one ``citywatch city build --osm`` writes for itself)
is checked whole before a single file is read: every table and key must be known, required keys
present, types right, the time zone a real IANA zone and the CRS one that pyproj knows.  Each
problem is one :class:`~citywatch.errors.DataError` line naming the section and the key, so a
typo (``timezon``) or a missing ``[city]`` is caught in milliseconds instead of as a
``KeyError`` after the network was read, or an invalid time zone when the pack is first used.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pyproj import CRS
from pyproj.exceptions import CRSError

from citywatch.city.coords import CoordinateSystem
from citywatch.errors import DataError

__all__ = ["SOURCE_SYSTEMS", "check_timezone", "utm_crs", "validate_spec"]

#: Coordinate systems a spec's sources may be in (``[city] source_crs``).
SOURCE_SYSTEMS: tuple[CoordinateSystem, ...] = ("wgs84", "gcj02", "bd09")

_STR, _NUM, _BOOL, _LIST, _TABLE = str, (int, float), bool, list, dict

# Every key each table may hold, with its type; required keys are listed separately.
_CITY = {
    "name": _STR,
    "display_name": _STR,
    "name_zh": _STR,
    "timezone": _STR,
    "crs": _STR,
    "source_crs": _STR,
    "max_snap_m": _NUM,
    "credits": _LIST,
    "speeds": _TABLE,
}
_TAG_RULE = {"tag": _STR, "column": _STR, "map": _TABLE, "default": _STR}
_NETWORK = {
    "graphml": _STR,
    "osm": _STR,
    "nodes": _STR,
    "edges": _STR,
    "header": _BOOL,
    "node_names": _LIST,
    "edge_names": _LIST,
    "node_columns": _LIST,
    "edge_columns": _LIST,
    "undirected": _BOOL,
    "tags": _LIST,
}
_LEVEL = {
    "level": _STR,
    "file": _STR,
    "id": _STR,
    "name": _STR,
    "name_zh": _STR,
    "include": _LIST,
    "rename": _TABLE,
    "parent": _STR,
}
_GROUP = {
    "level": _STR,
    "from_level": _STR,
    "members": _TABLE,
    "names": _TABLE,
    "names_zh": _TABLE,
}
_CLIP = {"to_network_hull": _BOOL, "buffer_m": _NUM, "boundary": _STR}
_STATIONS = {
    "file": _STR,
    "osm": _STR,
    "id": _STR,
    "name": _STR,
    "name_zh": _STR,
    "where": _TABLE,
    "jurisdiction": _STR,
    "address": _STR,
    "lon": _STR,
    "lat": _STR,
    "synthetic": _TABLE,
    "fill": _TABLE,
}
_SYNTHETIC = {"seed": int, "km_per_station": _NUM, "zones_per_station": int}
_FILL = {"level": _STR, "rule": _STR}
_PLACES = {
    "file": _STR,
    "osm": _STR,
    "id": _STR,
    "kind": _STR,
    "name": _STR,
    "lon": _STR,
    "lat": _STR,
}
_TOP = {
    "city": _TABLE,
    "network": _TABLE,
    "jurisdictions": _LIST,
    "groups": _LIST,
    "clip": _TABLE,
    "stations": _TABLE,
    "places": _LIST,
}


def _check(
    table: Any,
    where: str,
    allowed: Mapping[str, Any],
    required: tuple[str, ...] = (),
) -> None:
    if not isinstance(table, dict):
        raise DataError(f"{where} must be a table")
    for key, value in table.items():
        if key not in allowed:
            raise DataError(
                f"unknown key {key!r} in {where} (allowed: {', '.join(sorted(allowed))})"
            )
        kind = allowed[key]
        # TOML booleans are ints in Python: a number key must not accept true/false.
        bad_bool = kind is _NUM and isinstance(value, bool)
        if bad_bool or not isinstance(value, kind):
            names = kind.__name__ if isinstance(kind, type) else "number"
            raise DataError(f"{where} {key} must be a {names}, not {value!r}")
    for key in required:
        if key not in table:
            raise DataError(f"{where} lacks the required key {key!r}")


def check_timezone(name: str, where: str = "[city] timezone") -> None:
    """Raise :class:`DataError` unless ``name`` is an IANA time zone (``Europe/Berlin``)."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise DataError(f"{where} {name!r} is not an IANA time zone (e.g. Europe/Berlin)") from None


def utm_crs(lon: float, lat: float) -> str:
    """The WGS-84 UTM zone (``EPSG:326zz`` north, ``EPSG:327zz`` south) holding a point."""
    zone = min(60, int((lon + 180.0) // 6.0) + 1)
    return f"EPSG:{(32600 if lat >= 0 else 32700) + zone}"


def _check_city(city: dict[str, Any]) -> None:
    _check(city, "[city]", _CITY, ("name", "timezone", "crs"))
    if not city["name"].strip() or "/" in city["name"]:
        raise DataError(f"[city] name {city['name']!r} must be a non-empty folder name")
    check_timezone(city["timezone"])
    try:
        crs = CRS.from_user_input(city["crs"])
    except CRSError:
        raise DataError(f"[city] crs {city['crs']!r} is not a CRS pyproj knows") from None
    if not crs.is_projected:
        raise DataError(f"[city] crs {city['crs']!r} must be a projected (metric) CRS")
    source = city.get("source_crs", "wgs84")
    if source not in SOURCE_SYSTEMS:
        raise DataError(f"[city] source_crs must be one of {', '.join(SOURCE_SYSTEMS)}")
    for mode, kph in city.get("speeds", {}).items():
        if isinstance(kph, bool) or not isinstance(kph, int | float) or not kph > 0:
            raise DataError(f"[city.speeds] {mode} must be a positive speed in km/h")


def _check_network(network: dict[str, Any]) -> None:
    _check(network, "[network]", _NETWORK)
    sources = [k for k in ("graphml", "osm", "nodes") if k in network]
    if len(sources) != 1 or ("nodes" in network) != ("edges" in network):
        raise DataError("[network] needs exactly one of graphml, osm, or nodes + edges")
    if network.get("header") is False and not ("node_names" in network and "edge_names" in network):
        raise DataError("[network] header = false needs node_names and edge_names")
    for i, rule in enumerate(network.get("tags", [])):
        _check(rule, f"[[network.tags]] {i + 1}", _TAG_RULE, ("tag", "column"))


def _check_stations(stations: dict[str, Any]) -> None:
    _check(stations, "[stations]", _STATIONS)
    kinds = [k for k in ("file", "osm", "synthetic") if k in stations]
    if len(kinds) > 1:
        raise DataError(f"[stations] takes one of file, osm or synthetic, not {kinds}")
    if "file" in stations and "id" not in stations:
        raise DataError("[stations] lacks the required key 'id'")
    if "synthetic" in stations:
        _check(stations["synthetic"], "[stations.synthetic]", _SYNTHETIC)
    if "fill" in stations:
        _check(stations["fill"], "[stations.fill]", _FILL, ("level", "rule"))
        if stations["fill"]["rule"] != "road_centre":
            raise DataError("[stations.fill] rule must be 'road_centre'")


def validate_spec(spec: Any) -> dict[str, Any]:
    """Check a parsed build spec; return it unchanged.

    Parameters
    ----------
    spec : dict
        The TOML document.

    Raises
    ------
    DataError
        On the first problem, naming the section and the key (unknown keys are refused).
    """
    _check(spec, "the build spec", _TOP, ("city", "network"))
    _check_city(spec["city"])
    _check_network(spec["network"])
    for i, level in enumerate(spec.get("jurisdictions", [])):
        _check(level, f"[[jurisdictions]] {i + 1}", _LEVEL, ("level", "file", "id"))
    for i, group in enumerate(spec.get("groups", [])):
        _check(group, f"[[groups]] {i + 1}", _GROUP, ("level", "from_level", "members"))
    if "clip" in spec:
        _check(spec["clip"], "[clip]", _CLIP)
    if "stations" in spec:
        _check_stations(spec["stations"])
    for i, places in enumerate(spec.get("places", [])):
        where = f"[[places]] {i + 1}"
        _check(places, where, _PLACES)
        if ("file" in places) == ("osm" in places):
            raise DataError(f"{where} needs one of file or osm")
    return dict(spec)
