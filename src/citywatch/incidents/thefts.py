"""Readers for two real vehicle-theft sources, the e-bike registry's theft history.

=========================  ================================================================
source                     layout
=========================  ================================================================
``toronto_bike_thefts``    Toronto Police bicycle thefts (``event_unique_id``, occurrence
                           date and hour, division, ``Bike_Type``, ``Lat``/``Long``)
``nz_stolen_vehicles``     New Zealand Police stolen vehicles (``vehicle_id``,
                           ``vehicle_type``, ``date_stolen``, ``region``; no location)
=========================  ================================================================

*Toronto*: one row per stolen bicycle; rows sharing an ``event_unique_id`` are one theft
(counted as ``merged``).  ``Bike_Type`` ``EL`` (electric) makes the theft an ``ebike_theft``
(when any bicycle of the event is electric), every other type a ``bicycle_theft``.  The
``Division`` (the Toronto Police division, ``51``, ``52`` ...) becomes the station.  Times are
the published occurrence date and hour, Toronto wall-clock; the police round many of them to
the hour, so hour-of-day statistics show that rounding.  Locations were moved to the nearest
intersection by the police.  Bicycle make, model, colour and value are not read here: the
canonical record has no place for them (``citywatch.surveillance.ebike_thefts`` keeps make and
colour beside the incident), and nothing about the owner is in the file.

*New Zealand*: one row per stolen vehicle, with the day only (``time_precision = "day"``,
stored at noon New Zealand time) and the region, which becomes the bureau (New Zealand regions
are not police districts; the source gives no finer area).  ``vehicle_type`` ``Moped`` is a
``moped_theft``, every other type a ``vehicle_theft``.  No plates are in the file.

Mappings (time zone, default category, and ``[categories]`` from type code to category: ``EL``
to ``ebike_theft``, ``Moped`` to ``moped_theft``) live in ``citywatch/incidents/data/mappings``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

import pandas as pd

from citywatch.incidents.parsing import (
    Parsed,
    assemble,
    load_mapping,
    localize,
    parse_float,
    read_raw_csv,
    require_columns,
)
from citywatch.incidents.taxonomy import Taxonomy

__all__ = ["NZ_COLUMNS", "TORONTO_COLUMNS", "read_nz_stolen_vehicles", "read_toronto_bike_thefts"]

#: The Toronto columns this reader reads (make and colour: ``surveillance.ebike_thefts``).
TORONTO_COLUMNS: Final = [
    "event_unique_id",
    "Occurrence_Date",
    "Occurrence_Time",
    "Division",
    "Bike_Type",
    "Lat",
    "Long",
]
#: The only New Zealand columns read.
NZ_COLUMNS: Final = ["vehicle_id", "vehicle_type", "date_stolen", "region"]


def _typed(values: pd.Series, mapping: dict[str, Any]) -> pd.Series:
    """Category of each row's type code: ``[categories]`` (upper-case codes), else <NA>."""
    table = {str(k).upper(): str(v) for k, v in mapping.get("categories", {}).items()}
    return values.astype("string").str.strip().str.upper().map(table).astype("string")


def read_toronto_bike_thefts(
    path: Path,
    taxonomy: Taxonomy,
    mapping_path: Path | None = None,
    encoding: str | None = None,
) -> Parsed:
    """Read Toronto Police bicycle thefts (module docstring)."""
    mapping = load_mapping(mapping_path or "toronto_bike_thefts")
    raw = read_raw_csv(path, encoding=encoding, usecols=TORONTO_COLUMNS)
    require_columns(raw, TORONTO_COLUMNS, "Toronto bicycle thefts")
    naive = pd.to_datetime(
        raw["Occurrence_Date"].str.strip() + " " + raw["Occurrence_Time"].str.strip(),
        format="%Y.%m.%d %H:%M:%S",
        errors="coerce",
    )
    notes: dict[str, int] = {}
    received, more = localize(naive, str(mapping["timezone"]))
    notes.update(more)
    lon, bad_lon = parse_float(raw["Long"])
    lat, bad_lat = parse_float(raw["Lat"])
    event = raw["event_unique_id"].str.strip()
    # an event with an e-bike among its bicycles is an e-bike theft
    typed = _typed(raw["Bike_Type"], mapping).groupby(event).transform("first")
    category = typed.fillna(mapping["category"])
    division, bad_division = parse_float(raw["Division"])
    data = {
        "source_id": event,
        "received_at": received,
        "category": category,
        "station": division.astype("Int64").astype("string"),
        "lon": lon,
        "lat": lat,
    }
    checks = [
        ("bad_received_at", naive.isna()),
        ("bad_coordinates", bad_lon | bad_lat),
        ("bad_division", bad_division | (division % 1 != 0)),
    ]
    return assemble("toronto_bike_thefts", raw, data, checks, taxonomy, notes, duplicates="merge")


def read_nz_stolen_vehicles(
    path: Path,
    taxonomy: Taxonomy,
    mapping_path: Path | None = None,
    encoding: str | None = None,
) -> Parsed:
    """Read New Zealand Police stolen-vehicle records (module docstring)."""
    mapping = load_mapping(mapping_path or "nz_stolen_vehicles")
    raw = read_raw_csv(path, encoding=encoding, usecols=NZ_COLUMNS)
    require_columns(raw, NZ_COLUMNS, "New Zealand stolen vehicles")
    day = pd.to_datetime(raw["date_stolen"].str.strip(), format="%Y-%m-%d", errors="coerce")
    received, notes = localize(day + pd.Timedelta(hours=12), str(mapping["timezone"]))
    data = {
        "source_id": raw["vehicle_id"].str.strip(),
        "received_at": received,
        "time_precision": "day",
        "category": _typed(raw["vehicle_type"], mapping).fillna(mapping["category"]),
        "bureau": raw["region"].str.strip(),
    }
    checks = [("bad_received_at", day.isna())]
    return assemble("nz_stolen_vehicles", raw, data, checks, taxonomy, dict(notes))
