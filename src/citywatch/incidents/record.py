"""The canonical incident record, as a dataclass and as the columns of a pandas DataFrame.

Every importer turns its source into a frame with exactly :data:`COLUMNS` (see
``docs/CONTRACTS.md``); the store, statistics, dispatch and simulation read that frame.
Date-times are tz-aware and held in UTC with microsecond precision.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from typing import Any, Final

import pandas as pd

from citywatch.domain import LAT_RANGE, LON_RANGE, PRIORITY_RANGE
from citywatch.errors import ValidationError
from citywatch.incidents.taxonomy import Taxonomy, load_taxonomy

__all__ = [
    "COLUMNS",
    "DATETIME_COLUMNS",
    "LEVELS",
    "SOURCES",
    "TIME_PRECISIONS",
    "Incident",
    "check_records",
    "coerce_frame",
    "empty_frame",
    "first_reason",
    "from_frame",
    "to_frame",
]

#: Known values of the ``source`` column.
SOURCES: Final = (
    "nypd_shootings",
    "police_uk",
    "code",
    "nashville",
    "generic",
    "canonical",
    "live",
    "eido",
    "toronto_bike_thefts",
    "nz_stolen_vehicles",
    "ebike_registry",
)
TIME_PRECISIONS: Final = ("exact", "day", "month")
#: Jurisdiction levels an incident carries (the pack's ``city`` level is implied).
LEVELS: Final = ("bureau", "station", "zone")
DATETIME_COLUMNS: Final = ("received_at", "dispatched_at", "arrived_at", "cleared_at")
COLUMNS: Final = (
    "id",
    "source",
    "source_id",
    "received_at",
    "time_precision",
    "category",
    "priority",
    "lon",
    "lat",
    "bureau",
    "station",
    "zone",
    "dispatched_at",
    "arrived_at",
    "cleared_at",
    "disposition",
    "solved",
)
_STRING_COLUMNS: Final = (
    "id",
    "source",
    "source_id",
    "time_precision",
    "category",
    "bureau",
    "station",
    "zone",
    "disposition",
)
# microsecond resolution: what PostgreSQL and SQLite keep, and more than any source gives
_DT_DTYPE: Final = "datetime64[us, UTC]"


@dataclass(frozen=True, slots=True)
class Incident:
    """One incident in the canonical form (the row type of an incidents frame).

    Parameters
    ----------
    id
        Stable identifier, ``f"{source}:{source_id}"`` for imported rows.
    source, source_id
        Where the record came from and its identifier there.
    received_at
        When the call was received or the crime occurred (tz-aware).
    time_precision
        ``"exact"``, ``"day"`` or ``"month"``.
    category
        A taxonomy category code.
    priority
        1 (highest) .. 5, or ``None``.
    lon, lat
        WGS-84 location, or ``None``.
    bureau, station, zone
        Jurisdiction ids in the city pack, or ``None``.
    dispatched_at, arrived_at, cleared_at
        Optional response times (tz-aware).
    disposition
        The source's outcome text.
    solved
        Whether the case was solved (cleared by arrest, charge, ...); ``None`` if unknown.
    """

    id: str
    source: str
    source_id: str
    received_at: datetime
    time_precision: str
    category: str
    priority: int | None = None
    lon: float | None = None
    lat: float | None = None
    bureau: str | None = None
    station: str | None = None
    zone: str | None = None
    dispatched_at: datetime | None = None
    arrived_at: datetime | None = None
    cleared_at: datetime | None = None
    disposition: str | None = None
    solved: bool | None = None


def empty_frame() -> pd.DataFrame:
    """An incidents frame with no rows and the canonical dtypes."""
    return coerce_frame(pd.DataFrame({c: pd.Series(dtype=object) for c in COLUMNS}))


def coerce_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Return ``frame`` with exactly :data:`COLUMNS` in order and the canonical dtypes.

    Missing optional columns are added as nulls. Date-times become ``datetime64[us, UTC]``
    (naive values are rejected: their time zone is unknown), ``priority`` ``Int64``, ``lon``
    and ``lat`` ``float64``, ``solved`` ``boolean`` and the text columns ``object`` with
    ``None`` for missing values.

    Raises
    ------
    ValidationError
        If a required column (``id``, ``received_at``, ``category``) is missing or a date-time
        column holds naive values.
    """
    missing = [c for c in ("id", "received_at", "category") if c not in frame.columns]
    if missing:
        raise ValidationError(f"incident frame lacks required columns: {', '.join(missing)}")
    out = pd.DataFrame(index=frame.index)
    for col in COLUMNS:
        values = frame[col] if col in frame.columns else pd.Series(None, index=frame.index)
        if col in DATETIME_COLUMNS:
            out[col] = _to_utc(values, col)
        elif col == "priority":
            out[col] = values.astype("Int64")
        elif col in ("lon", "lat"):
            out[col] = pd.to_numeric(values, errors="raise").astype("float64")
        elif col == "solved":
            out[col] = values.astype("boolean")
        else:
            text = values.astype("string")
            out[col] = text.astype(object).where(text.notna(), None)
    return out.reset_index(drop=True)


def _is_missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _to_utc(values: pd.Series, name: str) -> pd.Series:
    out: pd.Series
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        out = values.dt.tz_convert("UTC").astype(_DT_DTYPE)
        return out
    if pd.api.types.is_datetime64_dtype(values.dtype):
        if values.notna().any():
            raise ValidationError(f"column {name!r} holds naive date-times; give a time zone")
        out = values.dt.tz_localize("UTC").astype(_DT_DTYPE)
        return out
    present = [v for v in values if not _is_missing(v)]
    if any(isinstance(v, datetime) and v.tzinfo is None for v in present):
        raise ValidationError(f"column {name!r} holds naive date-times; give a time zone")
    if any(not isinstance(v, datetime) for v in present):
        raise ValidationError(f"column {name!r} must hold date-times")
    return pd.to_datetime(pd.Series(values, dtype=object), utc=True).astype(_DT_DTYPE)


def check_records(frame: pd.DataFrame, taxonomy: Taxonomy | None = None) -> pd.Series:
    """Why each row of a canonical frame is invalid, or ``<NA>`` when it is valid.

    Checks, first failure wins: ``missing_id``, ``missing_received_at``, ``bad_time_precision``,
    ``unknown_category``, ``bad_priority`` (not 1..5), ``bad_coordinates`` (out of range or only
    one of lon/lat).

    Parameters
    ----------
    frame
        A frame as returned by :func:`coerce_frame`.
    taxonomy
        Taxonomy that categories must belong to (default: the bundled one).

    Returns
    -------
    pandas.Series
        String reasons aligned with ``frame``.
    """
    tax = taxonomy if taxonomy is not None else load_taxonomy()
    lon, lat = frame["lon"], frame["lat"]
    priority = frame["priority"]
    checks: list[tuple[str, pd.Series]] = [
        ("missing_id", frame["id"].isna() | (frame["id"] == "")),
        ("missing_received_at", frame["received_at"].isna()),
        ("bad_time_precision", ~frame["time_precision"].isin(TIME_PRECISIONS)),
        ("unknown_category", ~frame["category"].isin(tax.codes)),
        ("bad_priority", priority.notna() & ~priority.between(*PRIORITY_RANGE).fillna(False)),
        (
            "bad_coordinates",
            (lon.isna() != lat.isna())
            | (lon.notna() & ~lon.between(*LON_RANGE))
            | (lat.notna() & ~lat.between(*LAT_RANGE)),
        ),
    ]
    return first_reason(frame.index, checks)


def first_reason(index: pd.Index, checks: list[tuple[str, pd.Series]]) -> pd.Series:
    """Combine boolean checks into one reason per row (``<NA>`` if none fails).

    Parameters
    ----------
    index
        Index of the rows.
    checks
        ``(reason, bad)`` pairs in priority order: the first failing check names the reason.
    """
    reasons = pd.Series(pd.NA, index=index, dtype="string")
    for reason, bad in reversed(checks):
        reasons = reasons.mask(bad.astype("boolean").fillna(False).to_numpy(dtype=bool), reason)
    return reasons


def to_frame(incidents: Iterable[Incident]) -> pd.DataFrame:
    """Build a canonical frame from :class:`Incident` objects."""
    rows = [asdict(i) for i in incidents]
    if not rows:
        return empty_frame()
    return coerce_frame(pd.DataFrame(rows, columns=list(COLUMNS)))


def from_frame(frame: pd.DataFrame) -> list[Incident]:
    """Turn a canonical frame into :class:`Incident` objects (nulls become ``None``)."""
    names: Sequence[str] = [f.name for f in fields(Incident)]
    out: list[Incident] = []
    for row in coerce_frame(frame).itertuples(index=False):
        values = dict(zip(names, row, strict=True))
        clean: dict[str, Any] = {}
        for key, value in values.items():
            if _is_missing(value) or value is pd.NaT:
                clean[key] = None
            elif isinstance(value, pd.Timestamp):
                clean[key] = value.to_pydatetime()
            elif key == "priority":
                clean[key] = int(value)
            elif key == "solved":
                clean[key] = bool(value)
            elif key in ("lon", "lat"):
                clean[key] = float(value)
            else:
                clean[key] = value
        out.append(Incident(**clean))
    return out
