"""Readers for the supported incident sources, each turning one file into :class:`Parsed`.

=================  ======================================================================
source             layout
=================  ======================================================================
``police_uk``      data.police.uk street-level crime CSV (optionally ``.csv.gz``)
``nypd_shootings`` NYPD Shooting Incident Data (Historic)
``code``           Crime Open Database (CODE) extract (``uid, date_single, ...``)
``nashville``      Metro Nashville PD calls for service
``generic``        any CSV, driven by a TOML column mapping (:mod:`.generic`)
``canonical``      the canonical incident CSV (:mod:`.canonical`)
``eido``           NENA EIDO JSON, one document or an array (:mod:`.eido_schema`)
``toronto_bike_thefts``  Toronto Police bicycle thefts (:mod:`.thefts`)
``nz_stolen_vehicles``   New Zealand Police stolen vehicles (:mod:`.thefts`)
=================  ======================================================================

Category mappings and source time zones live in ``citywatch/incidents/data/mappings``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Final

import pandas as pd

from citywatch.errors import ValidationError
from citywatch.incidents.canonical import parse_canonical
from citywatch.incidents.eido_schema import read_eido
from citywatch.incidents.generic import read_generic
from citywatch.incidents.parsing import (
    COARSE_TIME_OF_DAY,
    Check,
    Parsed,
    assemble,
    load_mapping,
    localize,
    map_categories,
    map_solved,
    parse_float,
    read_raw_csv,
    require_columns,
)
from citywatch.incidents.taxonomy import Taxonomy, load_taxonomy
from citywatch.incidents.thefts import read_nz_stolen_vehicles, read_toronto_bike_thefts
from citywatch.tomlkeys import check_keys

__all__ = ["READERS", "SOURCE_NAMES", "read_source", "reader_for"]

#: A reader: (file, taxonomy, mapping TOML or None, text encoding or None to detect).
Reader = Callable[[Path, Taxonomy, Path | None, str | None], Parsed]


def _coords(raw: pd.DataFrame, lon_col: str, lat_col: str) -> tuple[dict[str, pd.Series], Check]:
    lon, bad_lon = parse_float(raw[lon_col])
    lat, bad_lat = parse_float(raw[lat_col])
    return {"lon": lon, "lat": lat}, ("bad_coordinates", bad_lon | bad_lat)


def _local_times(
    text: pd.Series, fmt: str, tz: str, notes: dict[str, int]
) -> tuple[pd.Series, Check]:
    naive = pd.to_datetime(text, format=fmt, errors="coerce")
    utc, more = localize(naive, tz)
    notes.update(more)
    return utc, ("bad_received_at", naive.isna())


def read_police_uk(
    path: Path,
    taxonomy: Taxonomy,
    mapping_path: Path | None = None,
    encoding: str | None = None,
) -> Parsed:
    """Read a data.police.uk street-level crime CSV.

    Month-level times (precision ``month``, stored at noon on the 1st, UK time). Rows without
    a ``Crime ID`` (anti-social behaviour) get a stable id from a hash of their content and
    their occurrence number among identical rows, so re-importing the file adds nothing.
    ``Last outcome category`` is the disposition and decides ``solved`` (see the mapping).
    """
    mapping = load_mapping(mapping_path or "police_uk")
    raw = read_raw_csv(path, encoding=encoding)
    require_columns(raw, ["Crime ID", "Month", "Longitude", "Latitude", "Crime type"], "police.uk")
    month = pd.to_datetime(raw["Month"].str.strip(), format="%Y-%m", errors="coerce")
    at = month + pd.Timedelta(hours=COARSE_TIME_OF_DAY.hour)
    received, _ = localize(at, mapping["timezone"])  # noon is never ambiguous
    fields = raw.drop(columns=["Crime ID"]).fillna("")
    content = fields.iloc[:, 0].str.cat(fields.iloc[:, 1:], sep="\x1f")
    digest = content.map(lambda s: hashlib.sha1(s.encode()).hexdigest()[:16])
    nth = digest.groupby(digest).cumcount() + 1
    no_id = "noid-" + digest + "-" + nth.astype(str)
    coords, bad_coords = _coords(raw, "Longitude", "Latitude")
    notes: dict[str, int] = {}
    category, unmapped = map_categories(raw["Crime type"], mapping, notes)
    outcome = raw.get("Last outcome category", pd.Series(pd.NA, index=raw.index, dtype="string"))
    data = {
        "source_id": raw["Crime ID"].fillna(no_id),
        "received_at": received,
        "time_precision": "month",
        "category": category,
        "disposition": outcome,
        "solved": map_solved(outcome, mapping),
        **coords,
    }
    checks = [("bad_received_at", month.isna()), bad_coords, unmapped]
    return assemble("police_uk", raw, data, checks, taxonomy, notes)


#: The only NYPD shooting columns read: the demographic columns are never loaded.
NYPD_COLUMNS: Final = [
    "INCIDENT_KEY",
    "OCCUR_DATE",
    "OCCUR_TIME",
    "BORO",
    "PRECINCT",
    "STATISTICAL_MURDER_FLAG",
    "Latitude",
    "Longitude",
]


def read_nypd_shootings(
    path: Path,
    taxonomy: Taxonomy,
    mapping_path: Path | None = None,
    encoding: str | None = None,
) -> Parsed:
    """Read NYPD Shooting Incident Data (Historic).

    Each row is a victim; rows sharing an ``INCIDENT_KEY`` are one incident (counted as
    ``merged``), whose disposition is ``murder`` when any victim's ``STATISTICAL_MURDER_FLAG``
    is true. ``PRECINCT`` becomes the station. Victim and perpetrator demographic columns are
    never read.
    """
    mapping = load_mapping(mapping_path or "nypd_shootings")
    raw = read_raw_csv(path, encoding=encoding, usecols=NYPD_COLUMNS)
    notes: dict[str, int] = {}
    received, bad_time = _local_times(
        raw["OCCUR_DATE"].str.strip() + " " + raw["OCCUR_TIME"].str.strip(),
        "%m/%d/%Y %H:%M:%S",
        mapping["timezone"],
        notes,
    )
    coords, bad_coords = _coords(raw, "Longitude", "Latitude")
    precinct, bad_precinct = parse_float(raw["PRECINCT"])
    murder = raw["STATISTICAL_MURDER_FLAG"].str.strip().str.upper().eq("TRUE").fillna(False)
    fatal = murder.groupby(raw["INCIDENT_KEY"]).transform("any")
    words = mapping["disposition"]
    check_keys(
        words, ("fatal", "non_fatal"), f"mapping {mapping_path or 'nypd_shootings'} [disposition]"
    )
    data = {
        "source_id": raw["INCIDENT_KEY"].str.strip(),
        "received_at": received,
        "category": mapping["category"],
        "station": precinct.astype("Int64").astype("string"),
        "disposition": fatal.map({True: words["fatal"], False: words["non_fatal"]}),
        **coords,
    }
    checks = [bad_time, bad_coords, ("bad_precinct", bad_precinct | (precinct % 1 != 0))]
    return assemble("nypd_shootings", raw, data, checks, taxonomy, notes, duplicates="merge")


def read_code(
    path: Path,
    taxonomy: Taxonomy,
    mapping_path: Path | None = None,
    encoding: str | None = None,
) -> Parsed:
    """Read a Crime Open Database (CODE) extract: ``uid``, ``date_single`` (local), lon/lat."""
    mapping = load_mapping(mapping_path or "code")
    raw = read_raw_csv(path, encoding=encoding)
    require_columns(raw, ["uid", "date_single", "longitude", "latitude"], "CODE")
    notes: dict[str, int] = {}
    received, bad_time = _local_times(
        raw["date_single"].str.strip(), "%Y-%m-%d %H:%M", mapping["timezone"], notes
    )
    coords, bad_coords = _coords(raw, "longitude", "latitude")
    data = {
        "source_id": raw["uid"].str.strip(),
        "received_at": received,
        "category": mapping["category"],
        **coords,
    }
    return assemble("code", raw, data, [bad_time, bad_coords], taxonomy, notes)


def read_nashville(
    path: Path,
    taxonomy: Taxonomy,
    mapping_path: Path | None = None,
    encoding: str | None = None,
) -> Parsed:
    """Read Metro Nashville PD calls for service (America/Chicago times).

    The ten-code gives the category, ``Sector`` the station (precinct) and ``Zone`` the zone;
    blank coordinates leave the location empty.
    """
    mapping = load_mapping(mapping_path or "nashville")
    raw = read_raw_csv(path, encoding=encoding)
    require_columns(
        raw, ["Event Number", "Tencode", "Call_Received", "Latitude", "Longitude"], "Nashville"
    )
    notes: dict[str, int] = {}
    received, bad_time = _local_times(
        raw["Call_Received"].str.strip(), "%Y-%m-%d %H:%M:%S", mapping["timezone"], notes
    )
    coords, bad_coords = _coords(raw, "Longitude", "Latitude")
    category, unmapped = map_categories(raw["Tencode"], mapping, notes)
    disposition = raw.get("Disposition Description", pd.Series(pd.NA, index=raw.index))
    disposition = disposition.astype("string").str.strip().str.strip('"')
    data = {
        "source_id": raw["Event Number"].str.strip(),
        "received_at": received,
        "category": category,
        "station": raw.get("Sector"),
        "zone": raw.get("Zone"),
        "disposition": disposition,
        "solved": map_solved(disposition, mapping),
        **coords,
    }
    return assemble("nashville", raw, data, [bad_time, bad_coords, unmapped], taxonomy, notes)


def _read_canonical(
    path: Path, taxonomy: Taxonomy, _mapping: Path | None = None, encoding: str | None = None
) -> Parsed:
    return parse_canonical(read_raw_csv(path, encoding=encoding), taxonomy)


READERS: Final[dict[str, Reader]] = {
    "police_uk": read_police_uk,
    "nypd_shootings": read_nypd_shootings,
    "code": read_code,
    "nashville": read_nashville,
    "generic": read_generic,
    "canonical": _read_canonical,
    "eido": read_eido,
    "toronto_bike_thefts": read_toronto_bike_thefts,
    "nz_stolen_vehicles": read_nz_stolen_vehicles,
}
SOURCE_NAMES: Final = tuple(READERS)


def reader_for(source: str) -> Reader:
    """The reader of ``source``; :class:`ValidationError` naming the valid sources if unknown."""
    reader = READERS.get(source)
    if reader is None:
        raise ValidationError(
            f"unknown source {source!r}; choose one of {', '.join(SOURCE_NAMES)}", field="source"
        )
    return reader


def read_source(
    path: str | Path,
    source: str,
    *,
    mapping: str | Path | None = None,
    taxonomy: Taxonomy | None = None,
    encoding: str | None = None,
) -> Parsed:
    """Read an incident file of a supported source.

    Parameters
    ----------
    path
        The file.
    source
        One of :data:`SOURCE_NAMES`.
    mapping
        A mapping TOML replacing the bundled one (required for ``generic``).
    taxonomy
        Taxonomy to map into (default: the bundled one).
    encoding
        Text encoding of the file (a Python codec name); ``None`` detects UTF-8 or cp1252
        (see :mod:`citywatch.incidents.decoding`).

    Returns
    -------
    Parsed
        Records, raw rows and per-row reject reasons.

    Raises
    ------
    ValidationError
        For an unknown source.
    DataError
        If the file cannot be read or lacks the source's columns.
    """
    reader = reader_for(source)
    tax = taxonomy if taxonomy is not None else load_taxonomy()
    return reader(Path(path), tax, None if mapping is None else Path(mapping), encoding)
