"""Shared groundwork of the statistics: periods, local calendar days, jurisdictions, categories.

Every statistic works on the canonical incident DataFrame (see ``docs/CONTRACTS.md``).  This
module turns it into a *long* frame with one row per incident and reporting group, where a
group is a (jurisdiction, category label) pair.  A category label is a taxonomy code
(``robbery``), a taxonomy group (``two_robberies``) or ``all``; an incident can belong to
several labels at once, so the long frame may repeat an incident under different labels but
never within one label.

A frame may carry a :data:`WEIGHT` column: each row then stands for that many incidents that
share their jurisdictions, category, time precision, outcome and local hour (the reduced frames
that :mod:`citywatch.analytics.parquet` computes out of core).  Every statistic counts with it,
so a reduced frame gives the numbers of the incidents it stands for.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Literal

import numpy as np
import pandas as pd

from citywatch.city.pack import jurisdiction_sort_key
from citywatch.errors import DataError, InsufficientPrecisionError, ValidationError

__all__ = [
    "ALL",
    "LEVELS",
    "UNASSIGNED",
    "WEIGHT",
    "CategorySpec",
    "Period",
    "baseline_period",
    "incident_count",
    "jurisdiction_sort_key",
    "local_days",
    "resolve_categories",
    "scoped_frame",
]

#: Jurisdiction levels of a city pack, from the largest to the smallest.
LEVELS = ("city", "bureau", "station", "zone")
#: Category label that matches every incident.
ALL = "all"
#: Jurisdiction label of incidents whose jurisdiction column is empty (kept, never dropped).
UNASSIGNED = "unassigned"
#: Column of a reduced frame: how many incidents a row stands for (1 when absent).
WEIGHT = "n"
#: Order of the time precisions, finest first.
_PRECISION_RANK = {"exact": 0, "day": 1, "month": 2}

#: Category labels mapped to the taxonomy codes they include (``None`` means every code).
CategorySpec = Mapping[str, Collection[str] | None]
Baseline = Literal["year", "period"]


@dataclass(frozen=True)
class Period:
    """An inclusive range of local calendar dates.

    Parameters
    ----------
    start, end : datetime.date
        First and last day, both included.
    """

    start: date
    end: date

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValidationError(
                f"the period ends ({self.end}) before it starts ({self.start})", field="to"
            )

    @property
    def days(self) -> int:
        """Number of calendar days in the period."""
        return (self.end - self.start).days + 1

    def previous_year(self) -> Period:
        """The same dates one year earlier (29 February becomes 28 February)."""
        return Period(_minus_year(self.start), _minus_year(self.end))

    def previous(self) -> Period:
        """The period of equal length that ends the day before this one starts."""
        return Period(self.start - timedelta(days=self.days), self.start - timedelta(days=1))

    def is_whole_months(self) -> bool:
        """Whether the period starts on a first and ends on a last day of a month."""
        return self.start.day == 1 and (self.end + timedelta(days=1)).day == 1

    def as_dict(self) -> dict[str, Any]:
        """``{"from": ..., "to": ..., "days": ...}`` for JSON output."""
        return {"from": self.start.isoformat(), "to": self.end.isoformat(), "days": self.days}

    def __str__(self) -> str:
        return f"{self.start.isoformat()}..{self.end.isoformat()}"


def _minus_year(day: date) -> date:
    try:
        return day.replace(year=day.year - 1)
    except ValueError:  # 29 February of a leap year
        return day.replace(year=day.year - 1, day=28)


def baseline_period(
    period: Period,
    baseline: Baseline = "year",
    vs_from: date | None = None,
    vs_to: date | None = None,
) -> Period:
    """The comparison period: explicit dates if given, else previous year or previous period.

    Parameters
    ----------
    period : Period
        The period under study.
    baseline : {"year", "period"}
        ``year``: the same dates a year earlier; ``period``: the equal-length period just before.
    vs_from, vs_to : datetime.date, optional
        Explicit comparison period; both or neither must be given.

    Returns
    -------
    Period
    """
    if (vs_from is None) != (vs_to is None):
        raise ValidationError("give both --vs-from and --vs-to, or neither", field="vs_from")
    if vs_from is not None and vs_to is not None:
        return Period(vs_from, vs_to)
    if baseline == "year":
        return period.previous_year()
    if baseline == "period":
        return period.previous()
    raise ValidationError(
        f"unknown baseline {baseline!r}: use 'year' or 'period'", field="baseline"
    )


def local_days(received_at: pd.Series, tz: str) -> pd.Series:
    """Local calendar day (``datetime64`` at midnight, naive) of each timestamp in ``tz``.

    Parameters
    ----------
    received_at : pandas.Series
        Time-zone-aware timestamps.
    tz : str
        IANA time zone of the city, e.g. ``"America/New_York"``.

    Returns
    -------
    pandas.Series
        Naive local midnights, so that day arithmetic ignores daylight-saving changes.
    """
    days: pd.Series = _local_wall_time(received_at, tz).dt.floor("D")
    return days


def _local_wall_time(received_at: pd.Series, tz: str) -> pd.Series:
    if not isinstance(received_at.dtype, pd.DatetimeTZDtype):
        raise DataError("received_at must hold time-zone-aware timestamps", field="received_at")
    try:
        local: pd.Series = received_at.dt.tz_convert(tz).dt.tz_localize(None)
        return local
    except Exception as exc:  # pytz/zoneinfo raise different classes for an unknown zone
        raise ValidationError(f"unknown time zone {tz!r}", field="tz") from exc


def resolve_categories(
    specs: Sequence[str] | CategorySpec | None, present: Collection[str] = ()
) -> dict[str, frozenset[str] | None]:
    """Turn category names or taxonomy groups into labelled sets of taxonomy codes.

    Parameters
    ----------
    specs : sequence of str, mapping or None
        Names given by the user (``["two_robberies", "theft"]``; ``"all"`` means every
        category), or a ready mapping of label to codes.  ``None`` or empty: one label per code
        in ``present`` plus ``all``.
    present : collection of str
        The category codes that occur in the data.

    Returns
    -------
    dict
        Label to frozenset of codes (``None`` for ``all``), in the order given.
    """
    if isinstance(specs, Mapping):
        return {str(k): None if v is None else frozenset(v) for k, v in specs.items()}
    if not specs:
        return {ALL: None, **{code: frozenset({code}) for code in sorted(present)}}
    from citywatch.incidents.taxonomy import load_taxonomy

    taxonomy = load_taxonomy()
    resolved: dict[str, frozenset[str] | None] = {}
    for spec in specs:
        if spec == ALL:
            resolved[ALL] = None
            continue
        codes = taxonomy.expand(spec)  # raises ValidationError naming the valid groups
        if not codes:
            raise ValidationError(f"category group {spec!r} is empty", field="category")
        resolved[spec] = codes
    return resolved


def scoped_frame(
    incidents: pd.DataFrame,
    *,
    tz: str,
    by: str = "city",
    categories: Sequence[str] | CategorySpec | None = None,
    city: str = "city",
    extra_columns: Sequence[str] = (),
) -> tuple[pd.DataFrame, dict[str, frozenset[str] | None]]:
    """Long frame of (jurisdiction, category label, local day) for every incident and group.

    Parameters
    ----------
    incidents : pandas.DataFrame
        Canonical incidents (needs ``received_at``, ``category``, ``time_precision`` and the
        column of level ``by`` unless ``by == "city"``).
    tz : str
        City time zone that defines local days.
    by : {"city", "bureau", "station", "zone"}
        Jurisdiction level.
    categories : see :func:`resolve_categories`
    city : str
        Jurisdiction label at city level.
    extra_columns : sequence of str
        Further canonical columns to carry along (``solved``, ...).

    Returns
    -------
    (pandas.DataFrame, dict)
        Columns ``row`` (position of the incident in ``incidents``), ``jurisdiction``,
        ``category``, ``day``, ``local_time``, ``time_precision``, :data:`WEIGHT` (incidents
        the row stands for) and ``extra_columns``; and the resolved category labels.
    """
    if by not in LEVELS:
        raise ValidationError(f"unknown jurisdiction level {by!r}: use one of {LEVELS}", field="by")
    needed = {"received_at", "category", "time_precision", *extra_columns}
    if by != "city":
        needed.add(by)
    missing = sorted(needed - set(incidents.columns))
    if missing:
        raise DataError(f"the incidents lack the column(s) {', '.join(missing)}")
    bad = sorted(set(incidents["time_precision"].dropna().unique()) - set(_PRECISION_RANK))
    if bad or incidents["time_precision"].isna().any():
        raise DataError(f"unknown time_precision values {bad or ['(empty)']}")
    if incidents["received_at"].isna().any():
        n = int(incidents["received_at"].isna().sum())
        raise DataError(f"{n} incident(s) have no received_at time")
    present = {str(c) for c in incidents["category"].dropna().unique()}
    labels = resolve_categories(categories, present)

    local = _local_wall_time(incidents["received_at"], tz)
    # Vectorised string dtype throughout: a million incidents must not be walked in Python.
    if by == "city":
        jurisdiction = pd.Series(city, index=incidents.index, dtype="string")
    else:
        jurisdiction = incidents[by].astype("string").fillna(UNASSIGNED)
    base = pd.DataFrame(
        {
            "row": np.arange(len(incidents)),  # the incident, repeated under several labels
            "jurisdiction": jurisdiction,
            "local_time": local,
            "day": local.dt.floor("D"),
            "time_precision": incidents["time_precision"],
            WEIGHT: _weights(incidents),
            **{c: incidents[c] for c in extra_columns},
        },
        index=incidents.index,
    )
    parts = []
    for label, codes in labels.items():
        part = base if codes is None else base[incidents["category"].isin(list(codes))]
        parts.append(part.assign(category=label))
    return pd.concat(parts, ignore_index=True), labels


def _weights(incidents: pd.DataFrame) -> pd.Series:
    if WEIGHT not in incidents.columns:
        return pd.Series(1, index=incidents.index, dtype=np.int64)
    weights = incidents[WEIGHT]
    if weights.isna().any() or (weights < 1).any():
        raise DataError(f"the {WEIGHT!r} column of a reduced frame must hold counts >= 1")
    return weights.astype(np.int64)


def incident_count(frame: pd.DataFrame) -> int:
    """Incidents behind some rows of a scoped frame, each counted once whatever its labels."""
    return int(frame.drop_duplicates("row")[WEIGHT].sum())


def unassigned_notes(frame: pd.DataFrame, by: str) -> list[str]:
    """A note when some incidents have no jurisdiction at level ``by`` (reported, not dropped)."""
    missing = incident_count(frame[frame["jurisdiction"] == UNASSIGNED])
    if by == "city" or not missing:
        return []
    return [
        f"{missing} incident(s) have no {by}; they are counted under '{UNASSIGNED}' "
        "(import them with a city pack to assign jurisdictions)"
    ]


def require_precision(frame: pd.DataFrame, finest: str, statistic: str) -> None:
    """Raise :class:`InsufficientPrecisionError` if any row is coarser than ``finest``.

    Parameters
    ----------
    frame : pandas.DataFrame
        Has a ``time_precision`` column.
    finest : {"exact", "day"}
        The coarsest precision the statistic can use.
    statistic : str
        Name of the statistic, for the message.
    """
    limit = _PRECISION_RANK[finest]
    coarse = frame["time_precision"].isin([p for p, r in _PRECISION_RANK.items() if r > limit])
    if coarse.any():
        kinds = ", ".join(sorted(set(frame.loc[coarse, "time_precision"])))
        raise InsufficientPrecisionError(
            f"{statistic} needs times to the {'day' if finest == 'day' else 'minute'}, but "
            f"{incident_count(frame[coarse])} incident(s) are known only to the {kinds}"
        )


def require_month_aligned(frame: pd.DataFrame, periods: Sequence[Period]) -> None:
    """Refuse periods that cut through a month when some incidents only know their month."""
    if not (frame["time_precision"] == "month").any():
        return
    for period in periods:
        if not period.is_whole_months():
            raise InsufficientPrecisionError(
                f"some incidents are known only to the month; the period {period} must start on "
                "the first and end on the last day of a month"
            )


def day_numbers(days: pd.Series) -> np.ndarray:
    """Integer day numbers (days since 1970-01-01) of naive local midnights."""
    return days.to_numpy().astype("datetime64[D]").astype(np.int64)


def to_date(day_number: int) -> date:
    """Inverse of :func:`day_numbers` for one value."""
    return date(1970, 1, 1) + timedelta(days=int(day_number))


def in_period(frame: pd.DataFrame, period: Period) -> pd.DataFrame:
    """Rows of a scoped frame whose local day lies in ``period``."""
    start = pd.Timestamp(period.start)
    end = pd.Timestamp(period.end)
    return frame[(frame["day"] >= start) & (frame["day"] <= end)]


def group_keys(
    frame: pd.DataFrame,
    labels: Mapping[str, object],
    jurisdictions: Sequence[str] | None = None,
) -> list[tuple[str, str]]:
    """All (jurisdiction, category) pairs to report, in natural jurisdiction order.

    Jurisdictions are those in the data plus any listed (so that jurisdictions without a
    single incident still get a row; at city level callers list the city, so that even empty
    data gives its zero row); categories are every resolved label.
    """
    names = set(frame["jurisdiction"].unique()) | set(jurisdictions or ())
    ordered = sorted((str(n) for n in names), key=jurisdiction_sort_key)
    return [(j, c) for j in ordered for c in labels]
