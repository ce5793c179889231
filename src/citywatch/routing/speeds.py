"""Which ways each travel mode may use, and how fast, from OSM ``highway``/``maxspeed`` tags.

Defaults (km/h) where a way has no ``maxspeed``; a tagged ``maxspeed`` replaces the default for
cars and motorcycles.  The figures are typical urban legal limits (for example 50 km/h on Chinese
and European urban primary roads, 30 km/h on residential streets), not free-flow speeds; a city
pack may override them in ``city.toml`` (``[speeds]``), as the Manhattan pack does with New York
City's 25 mph default limit.

Access rules, the reason motorcycle teams exist: cars keep to the motor-road network; motorcycles
may also use service lanes, alleys, living streets, pedestrian streets and tracks; officers on foot
may use every way but motorways and trunk roads; bicycles may use everything but motorways and
steps.  One-way streets hold for cars, motorcycles and bicycles, not for officers on foot.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from citywatch.errors import ValidationError

__all__ = ["DEFAULT_SPEEDS_KPH", "MODES", "Mode", "edge_speeds_kph", "mode_allows", "parse_mode"]

Mode = Literal["car", "motorcycle", "bicycle", "foot"]
MODES: tuple[Mode, ...] = ("car", "motorcycle", "bicycle", "foot")


def parse_mode(value: str, field: str = "mode") -> Mode:
    """``value`` as a travel :data:`Mode`; :class:`ValidationError` naming ``field`` otherwise."""
    for mode in MODES:
        if value == mode:
            return mode
    raise ValidationError(
        f"unknown travel mode {value!r}; use one of {', '.join(MODES)}", field=field
    )


_MOTOR_ROADS = {
    "motorway": 90.0,
    "motorway_link": 50.0,
    "trunk": 70.0,
    "trunk_link": 40.0,
    "primary": 50.0,
    "primary_link": 40.0,
    "secondary": 50.0,
    "secondary_link": 40.0,
    "tertiary": 40.0,
    "tertiary_link": 30.0,
    "unclassified": 30.0,
    "residential": 30.0,
    "road": 30.0,
    "service": 20.0,
}
# Narrow ways that patrol cars cannot take but motorcycles can: lanes, alleys, market streets.
_NARROW_WAYS = {"living_street": 15.0, "pedestrian": 10.0, "track": 15.0, "busway": 30.0}
_FOOT_ONLY = {
    "footway",
    "path",
    "steps",
    "cycleway",
    "bridleway",
    "corridor",
    "sidewalk",
    "crossing",
}
_NO_FOOT = {"motorway", "motorway_link", "trunk", "trunk_link"}
_CAR_EXCLUDED_SERVICE = {"alley", "driveway", "parking_aisle", "emergency_access"}

_WALK_KPH = 5.0  # brisk walking officer (ITE/MUTCD planning speed 1.2-1.4 m/s)
_STEPS_WALK_KPH = 2.5
_BIKE_KPH = 15.0
_NARROW_MOTORCYCLE_KPH = 15.0

#: Default speed (km/h) per mode on a way without a ``highway`` tag (CSV networks).
DEFAULT_SPEEDS_KPH: dict[Mode, float] = {
    "car": 30.0,
    "motorcycle": 30.0,
    "bicycle": _BIKE_KPH,
    "foot": _WALK_KPH,
}


def _text(values: pd.Series) -> npt.NDArray[np.object_]:
    return values.fillna("").astype(str).str.lower().to_numpy(dtype=object)


def mode_allows(edges: pd.DataFrame, mode: Mode) -> npt.NDArray[np.bool_]:
    """Which edges ``mode`` may use (a boolean array aligned with ``edges``).

    Ways without a ``highway`` tag (networks from plain CSVs) are open to every mode.
    """
    highway = _text(edges["highway"])
    service = _text(edges["service"]) if "service" in edges else np.full(len(edges), "", object)
    access = _text(edges["access"]) if "access" in edges else np.full(len(edges), "", object)
    untagged = highway == ""
    motor = np.isin(highway, list(_MOTOR_ROADS))
    narrow = np.isin(highway, list(_NARROW_WAYS))
    foot_only = np.isin(highway, list(_FOOT_ONLY))
    closed_to_vehicles = np.isin(access, ["no", "private"])
    if mode == "car":
        allowed = (motor & ~np.isin(service, list(_CAR_EXCLUDED_SERVICE))) | untagged
        return np.asarray(allowed & ~closed_to_vehicles)
    if mode == "motorcycle":
        return np.asarray((motor | narrow | untagged) & ~closed_to_vehicles)
    if mode == "bicycle":
        return np.asarray(~np.isin(highway, ["motorway", "motorway_link", "steps"]))
    return np.asarray(~np.isin(highway, list(_NO_FOOT)) | untagged | foot_only)


def edge_speeds_kph(
    edges: pd.DataFrame, mode: Mode, overrides: Mapping[str, float] | None = None
) -> npt.NDArray[np.float64]:
    """Travel speed (km/h) of ``mode`` on every edge (meaningful only where the mode is allowed).

    Parameters
    ----------
    edges : pandas.DataFrame
        Network edges with ``highway`` and ``maxspeed_kph``.
    mode : str
        One of :data:`MODES`.
    overrides : mapping, optional
        ``{"<mode>": kph}`` replaces the speed of a mode on untagged ways (a city default limit),
        ``{"<mode>.<highway>": kph}`` the default of one highway class for that mode.
    """
    overrides = dict(overrides or {})
    highway = _text(edges["highway"])
    maxspeed = edges["maxspeed_kph"].to_numpy(dtype=np.float64)
    if mode == "foot":
        base = np.where(highway == "steps", _STEPS_WALK_KPH, overrides.get("foot", _WALK_KPH))
        return np.asarray(base, dtype=np.float64)
    table: dict[str, float] = {**_MOTOR_ROADS, **_NARROW_WAYS}
    default = overrides.get(mode, DEFAULT_SPEEDS_KPH[mode])
    speeds = np.array(
        [overrides.get(f"{mode}.{h}", table.get(h, default) if h else default) for h in highway],
        dtype=np.float64,
    )
    if mode == "bicycle":
        return np.minimum(speeds, overrides.get("bicycle", _BIKE_KPH))
    tagged = ~np.isnan(maxspeed)
    speeds = np.where(tagged, maxspeed, speeds)
    if mode == "motorcycle":
        narrow = np.isin(highway, list(_NARROW_WAYS))
        speeds = np.where(narrow, np.minimum(speeds, _NARROW_MOTORCYCLE_KPH), speeds)
    # A tagged limit of 0 (or an unparsable one) must not stop travel: use the default instead.
    return np.asarray(np.where(speeds > 0, speeds, default), dtype=np.float64)
