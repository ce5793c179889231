"""The canonical incident CSV: what ``citywatch incidents export`` writes and
``--source canonical`` reads back, losslessly.

Columns (header row, UTF-8, comma-separated; see ``docs/incidents.md``): ``id, source,
source_id, received_at, time_precision, category, priority, lon, lat, bureau, station, zone,
dispatched_at, arrived_at, cleared_at, disposition, solved``. Only ``id``, ``received_at`` and
``category`` are required. Date-times are ISO 8601 with an offset (``2017-09-09T07:57:00+00:00``);
``solved`` is ``true``/``false``; empty cells are missing values. Coordinates are written with
full float precision.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import pandas as pd

from citywatch.errors import DataError
from citywatch.incidents.parsing import (
    Parsed,
    combine_reasons,
    parse_bool,
    parse_float,
    read_raw_csv,
    require_columns,
)
from citywatch.incidents.record import (
    COLUMNS,
    DATETIME_COLUMNS,
    check_records,
    coerce_frame,
    first_reason,
)
from citywatch.incidents.taxonomy import Taxonomy

__all__ = ["REQUIRED_COLUMNS", "parse_canonical", "read_canonical_csv", "write_canonical_csv"]

REQUIRED_COLUMNS: Final = ("id", "received_at", "category")
# An ISO 8601 date-time must carry its offset: a naive time in a file has no known zone.
_OFFSET: Final = r"(?:Z|[+-]\d{2}:?\d{2})$"


def write_canonical_csv(frame: pd.DataFrame, path: str | Path, *, tz: str | None = None) -> int:
    """Write incidents as a canonical CSV.

    Parameters
    ----------
    frame
        Incidents (canonical columns; missing optional columns are written empty).
    path
        Output file; parent folders are created.
    tz
        Write date-times in this IANA time zone (with its offset) instead of UTC.

    Returns
    -------
    int
        Number of rows written.
    """
    data = coerce_frame(frame)
    out = pd.DataFrame(index=data.index)
    for col in COLUMNS:
        values = data[col]
        if col in DATETIME_COLUMNS:
            local = values.dt.tz_convert(tz) if tz else values
            out[col] = [None if pd.isna(v) else v.isoformat() for v in local]
        elif col == "solved":
            out[col] = values.map({True: "true", False: "false"}).astype(object)
        elif col in ("lon", "lat"):
            # repr() is the shortest text that reads back as the same float
            out[col] = [None if pd.isna(v) else repr(float(v)) for v in values]
        else:
            out[col] = values
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    out.to_csv(path, index=False, na_rep="", lineterminator="\n")
    return len(out)


def parse_canonical(raw: pd.DataFrame, taxonomy: Taxonomy | None = None) -> Parsed:
    """Parse the text rows of a canonical CSV into records and per-row reject reasons.

    Rows without ``source`` get ``source = "canonical"`` and ``source_id = id``; rows without
    ``time_precision`` are ``exact``. A row repeating an earlier row's ``id`` (or ``source``
    and ``source_id``) is rejected as ``duplicate_in_file``.
    """
    require_columns(raw, REQUIRED_COLUMNS, "canonical incident CSV")
    unknown = [c for c in raw.columns if c not in COLUMNS]
    if unknown:
        raise DataError(f"canonical incident CSV: unknown columns {', '.join(unknown)}")

    def col(name: str) -> pd.Series:
        if name in raw.columns:
            return raw[name]
        return pd.Series(pd.NA, index=raw.index, dtype="string")

    checks: list[tuple[str, pd.Series]] = []
    data: dict[str, pd.Series] = {}
    for name in DATETIME_COLUMNS:
        text = col(name).str.strip()
        parsed = pd.to_datetime(text, utc=True, format="ISO8601", errors="coerce")
        bad = text.notna() & (parsed.isna() | ~text.str.contains(_OFFSET, regex=True))
        checks.append((f"bad_{name}", bad))
        data[name] = parsed.where(~bad)
    for name in ("lon", "lat"):
        data[name], bad = parse_float(col(name))
        checks.append(("bad_coordinates", bad))
    priority, bad_priority = parse_float(col("priority"))
    checks.append(("bad_priority", bad_priority | (priority.notna() & (priority % 1 != 0))))
    data["priority"] = priority.where(~bad_priority & (priority % 1 == 0)).astype("Int64")
    data["solved"], bad_solved = parse_bool(col("solved"))
    checks.append(("bad_solved", bad_solved))

    source = col("source").fillna("canonical")
    data["source"] = source
    data["source_id"] = col("source_id").fillna(col("id"))
    data["time_precision"] = col("time_precision").fillna("exact")
    for name in ("id", "category", "bureau", "station", "zone", "disposition"):
        data[name] = col(name)
    records = coerce_frame(pd.DataFrame(data, index=raw.index))
    repeated = records["id"].notna() & (
        records["id"].duplicated() | records[["source", "source_id"]].duplicated()
    )
    reasons = combine_reasons(
        first_reason(records.index, checks),
        check_records(records, taxonomy),
        first_reason(records.index, [("duplicate_in_file", repeated)]),
    )
    return Parsed(records=records, raw=raw, reasons=reasons)


def read_canonical_csv(path: str | Path, taxonomy: Taxonomy | None = None) -> pd.DataFrame:
    """Read a canonical incident CSV into a canonical frame.

    Parameters
    ----------
    path
        The CSV file.
    taxonomy
        Taxonomy that categories must belong to (default: the bundled one).

    Returns
    -------
    pandas.DataFrame
        Canonical incidents frame (UTC date-times).

    Raises
    ------
    DataError
        If the file is unreadable, lacks required columns or any row is invalid (the message
        names the first bad lines and their reasons). Use ``citywatch incidents import
        --source canonical`` to import the valid rows and set the rest aside.
    """
    parsed = parse_canonical(read_raw_csv(path), taxonomy)
    bad = parsed.reasons.dropna()
    if len(bad):
        # +2: one header line, and line numbers count from 1
        sample = "; ".join(f"line {int(str(i)) + 2}: {r}" for i, r in bad.head(5).items())
        raise DataError(f"{path}: {len(bad)} invalid rows ({sample})")
    return parsed.records
