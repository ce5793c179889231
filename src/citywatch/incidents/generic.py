"""The generic CSV importer: any layout, described by a TOML column mapping.

Example mapping (``docs/incidents.md`` has the full reference)::

    dataset = "chicago_2016"          # required: prefix of source ids (source = "generic")
    timezone = "America/Chicago"      # for times without an offset
    time_format = "%m/%d/%Y %I:%M:%S %p"  # strptime format; omit for ISO 8601
    time_precision = "exact"          # exact | day | month
    encoding = "utf-8-sig"

    [columns]                         # canonical column -> CSV column
    source_id = "CASE#"
    received_at = "DATE  OF OCCURRENCE"
    category = "PRIMARY DESCRIPTION"
    lon = "LONGITUDE"
    lat = "LATITUDE"

    [categories]                      # source value -> taxonomy code
    "THEFT" = "theft"
    "ROBBERY" = "robbery"

    [solved]                          # optional: disposition value -> true/false
    "ARREST" = true

    [priorities]                      # optional: source priority -> CityWatch 1-5 (1 = most
    "0" = 1                           # urgent); for sources on another scale (San Diego 0-9).
    "1" = 1                           # Unlisted values are rejected as unmapped_priority.

    default_category = "other"        # optional: unmapped categories become this code
                                      # (counted in the notes) instead of being rejected

Optional ``[columns]`` keys: ``priority``, ``bureau``, ``station``, ``zone``, ``disposition``,
``solved`` (a true/false column), ``dispatched_at``, ``arrived_at``, ``cleared_at``. Instead of
a ``category`` column a mapping may give one ``category = "code"`` for every row.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

import pandas as pd

from citywatch.errors import DataError
from citywatch.incidents.parsing import (
    Check,
    Parsed,
    assemble,
    check_precision,
    load_mapping,
    localize,
    map_categories,
    map_solved,
    parse_bool,
    parse_float,
    read_raw_csv,
    require_columns,
)
from citywatch.incidents.record import DATETIME_COLUMNS
from citywatch.incidents.taxonomy import Taxonomy

__all__ = ["OPTIONAL_KEYS", "read_generic"]

OPTIONAL_KEYS: Final = (
    "priority",
    "bureau",
    "station",
    "zone",
    "disposition",
    "solved",
    "dispatched_at",
    "arrived_at",
    "cleared_at",
)


def _times(
    text: pd.Series, name: str, mapping: dict[str, Any], notes: dict[str, int]
) -> tuple[pd.Series, Check]:
    fmt = mapping.get("time_format", "ISO8601")
    text = text.str.strip()
    # Parse once as given: values that carry an offset keep it, naive ones are local times.
    parsed = pd.to_datetime(text, format=fmt, errors="coerce", utc=False)
    if isinstance(parsed.dtype, pd.DatetimeTZDtype):
        utc = parsed.dt.tz_convert("UTC")
    else:
        tz = mapping.get("timezone")
        if tz is None and parsed.notna().any():
            raise DataError(f"generic mapping: times in {name!r} have no offset; set `timezone`")
        utc, more = localize(parsed, tz or "UTC")
        for key, count in more.items():
            notes[key] = notes.get(key, 0) + count
    return utc, (f"bad_{name}", parsed.isna() & text.notna())


def _priorities(mapping: dict[str, Any], where: Path) -> dict[str, int] | None:
    table = mapping.get("priorities")
    if table is None:
        return None
    out: dict[str, int] = {}
    for key, value in table.items():
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 5:
            raise DataError(f"{where}: [priorities] {key!r} = {value!r}: give a priority 1-5")
        out[str(key).strip()] = value
    return out


def _priority(text: pd.Series, table: dict[str, int] | None) -> tuple[pd.Series, list[Check]]:
    if table is not None:
        given = text.str.strip()
        mapped = given.map(table).astype("float64")
        return mapped, [("unmapped_priority", mapped.isna() & given.notna())]
    priority, bad = parse_float(text)
    fractional = priority.notna() & (priority % 1 != 0)
    return priority.where(~fractional), [("bad_priority", bad | fractional)]


def read_generic(
    path: Path,
    taxonomy: Taxonomy,
    mapping_path: Path | None = None,
    encoding: str | None = None,
) -> Parsed:
    """Read any CSV with a TOML column mapping (see the module documentation).

    ``encoding`` (a codec name) overrides the mapping's ``encoding``; neither detects UTF-8 or
    cp1252.

    Raises
    ------
    DataError
        If no mapping is given, it lacks ``dataset``/``[columns]`` keys, its ``[priorities]``
        are not 1-5, or the CSV lacks a mapped column.
    """
    if mapping_path is None:
        raise DataError("the generic importer needs a TOML column mapping (--mapping FILE)")
    mapping = load_mapping(mapping_path)
    columns: dict[str, str] = mapping.get("columns", {})
    dataset = mapping.get("dataset")
    if not dataset:
        raise DataError(f"{mapping_path}: set `dataset`, the prefix of this file's source ids")
    needed = ["source_id", "received_at"] + ([] if "category" in mapping else ["category"])
    missing = [k for k in needed if k not in columns]
    if missing:
        raise DataError(f"{mapping_path}: [columns] lacks {', '.join(missing)}")
    unknown = set(columns) - {"source_id", "received_at", "category", "lon", "lat", *OPTIONAL_KEYS}
    if unknown:
        raise DataError(f"{mapping_path}: unknown [columns] keys {', '.join(sorted(unknown))}")
    priorities = _priorities(mapping, mapping_path)
    default = mapping.get("default_category")
    if default is not None and default not in taxonomy.categories:
        raise DataError(
            f"{mapping_path}: default_category {default!r} is not a taxonomy category "
            "(citywatch incidents categories lists them)"
        )
    raw = read_raw_csv(path, encoding=encoding or mapping.get("encoding"))
    require_columns(raw, list(columns.values()), f"{path.name} (generic mapping)")

    notes: dict[str, int] = {}
    checks: list[Check] = []
    data: dict[str, Any] = {
        "source_id": f"{dataset}:" + raw[columns["source_id"]].str.strip(),
        "time_precision": check_precision(mapping.get("time_precision", "exact")),
    }
    for name in DATETIME_COLUMNS:
        if name in columns:
            data[name], check = _times(raw[columns[name]], name, mapping, notes)
            checks.append(check)
    if "category" in columns:
        data["category"], check = map_categories(raw[columns["category"]], mapping, notes)
        checks.append(check)
    else:
        data["category"] = str(mapping["category"])
    for name in ("lon", "lat"):
        if name in columns:
            data[name], bad = parse_float(raw[columns[name]])
            checks.append(("bad_coordinates", bad))
    if "priority" in columns:
        data["priority"], more = _priority(raw[columns["priority"]], priorities)
        checks += more
    for name in ("bureau", "station", "zone", "disposition"):
        if name in columns:
            data[name] = raw[columns[name]].str.strip()
    if "solved" in columns:
        data["solved"], bad = parse_bool(raw[columns["solved"]])
        checks.append(("bad_solved", bad))
    elif "solved" in mapping and "disposition" in data:
        data["solved"] = map_solved(data["disposition"], mapping)
    return assemble("generic", raw, data, checks, taxonomy, notes)
