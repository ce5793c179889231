"""CompStat-style comparisons: counts against a baseline period, and clearance rates."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from citywatch.analytics.scope import (
    WEIGHT,
    Baseline,
    CategorySpec,
    Period,
    baseline_period,
    group_keys,
    in_period,
    require_month_aligned,
    scoped_frame,
    unassigned_notes,
)
from citywatch.errors import DataError

__all__ = ["ClearanceResult", "CompareResult", "clearance", "compare", "poisson_z"]

#: |z| above this flags a change as unlikely to be chance (about the 95% level).
Z_FLAG = 2.0


def poisson_z(current: float, previous: float) -> float:
    """Variance-stabilised z-score of a change between two Poisson counts.

    ``2 (sqrt(current) - sqrt(previous))``: the square root of a Poisson count has variance
    close to 1/4 (Anscombe 1948, Biometrika 35:246), so the difference of two doubled roots is
    roughly standard normal when both counts come from the same rate.

    Parameters
    ----------
    current, previous : float
        Counts of the period and of the comparison period.

    Returns
    -------
    float
    """
    return 2.0 * (math.sqrt(current) - math.sqrt(previous))


def _pct_change(current: int, previous: int) -> float | None:
    return None if previous == 0 else 100.0 * (current - previous) / previous


@dataclass
class _PeriodTable:
    """A table of a period against a comparison period, one row per jurisdiction and category."""

    period: Period
    baseline: Period
    by: str
    table: pd.DataFrame
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        return {
            "period": self.period.as_dict(),
            "baseline": self.baseline.as_dict(),
            "by": self.by,
            "rows": _records(self.table),
            "notes": self.notes,
        }


@dataclass
class CompareResult(_PeriodTable):
    """Counts of a period against a comparison period, one row per jurisdiction and category.

    ``table`` columns: ``jurisdiction``, ``category``, ``current``, ``previous``, ``change``,
    ``change_pct`` (None when the previous count is 0), ``z``, ``flag`` (|z| > 2).
    """


@dataclass
class ClearanceResult(_PeriodTable):
    """Clearance rates (solved / recorded) of a period and a comparison period.

    ``table`` columns: ``jurisdiction``, ``category``, ``recorded``, ``solved``, ``unknown``
    (outcome not known), ``rate``, and the same with the suffix ``_previous``, then
    ``change_pp`` (change of the rate in percentage points).
    """


def _records(table: pd.DataFrame) -> list[dict[str, Any]]:
    return [
        {str(k): (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
        for row in table.astype(object).to_dict(orient="records")
    ]


def compare(
    incidents: pd.DataFrame,
    period: Period,
    *,
    tz: str,
    by: str = "city",
    categories: Sequence[str] | CategorySpec | None = None,
    baseline: Baseline = "year",
    baseline_dates: Period | None = None,
    city: str = "city",
    jurisdictions: Sequence[str] | None = None,
) -> CompareResult:
    """Count incidents in ``period`` and a comparison period, by jurisdiction and category.

    Parameters
    ----------
    incidents : pandas.DataFrame
        Canonical incidents.
    period : Period
        Local dates under study (inclusive).
    tz : str
        City time zone.
    by : {"city", "bureau", "station", "zone"}
        Jurisdiction level.
    categories : sequence of str, mapping or None
        Category codes or taxonomy groups; ``None`` = each category present plus ``all``.
    baseline : {"year", "period"}
        Previous year (default) or previous period of equal length.
    baseline_dates : Period, optional
        Explicit comparison period (overrides ``baseline``).
    city : str
        Jurisdiction label at city level.
    jurisdictions : sequence of str, optional
        Jurisdiction ids to report even when they have no incident.

    Returns
    -------
    CompareResult
    """
    previous = baseline_dates or baseline_period(period, baseline)
    frame, labels = scoped_frame(incidents, tz=tz, by=by, categories=categories, city=city)
    require_month_aligned(frame, [period, previous])
    current_counts = in_period(frame, period).groupby(["jurisdiction", "category"])[WEIGHT].sum()
    previous_counts = in_period(frame, previous).groupby(["jurisdiction", "category"])[WEIGHT].sum()
    rows = []
    for key in group_keys(frame, labels, [city] if by == "city" else jurisdictions):
        cur = int(current_counts.get(key, 0))
        prev = int(previous_counts.get(key, 0))
        z = poisson_z(cur, prev)
        rows.append(
            {
                "jurisdiction": key[0],
                "category": key[1],
                "current": cur,
                "previous": prev,
                "change": cur - prev,
                "change_pct": _pct_change(cur, prev),
                "z": z,
                "flag": abs(z) > Z_FLAG,
            }
        )
    notes = [
        f"flag: |z| > {Z_FLAG:g}, z = 2(sqrt(current) - sqrt(previous))",
        *unassigned_notes(frame, by),
    ]
    return CompareResult(period, previous, by, pd.DataFrame(rows, columns=_COMPARE_COLUMNS), notes)


_COMPARE_COLUMNS = [
    "jurisdiction",
    "category",
    "current",
    "previous",
    "change",
    "change_pct",
    "z",
    "flag",
]


def clearance(
    incidents: pd.DataFrame,
    period: Period,
    *,
    tz: str,
    by: str = "city",
    categories: Sequence[str] | CategorySpec | None = None,
    baseline: Baseline = "year",
    baseline_dates: Period | None = None,
    city: str = "city",
    jurisdictions: Sequence[str] | None = None,
) -> ClearanceResult:
    """Clearance rate (solved / recorded) per jurisdiction and category, and its change.

    ``recorded`` counts every incident of the period; ``solved`` those with ``solved`` true;
    ``unknown`` those with no outcome, which count as recorded but not solved.  Parameters are
    those of :func:`compare`.

    Returns
    -------
    ClearanceResult

    Raises
    ------
    DataError
        If no incident in scope has a known outcome (nothing to compute a rate from).
    """
    previous = baseline_dates or baseline_period(period, baseline)
    frame, labels = scoped_frame(
        incidents, tz=tz, by=by, categories=categories, city=city, extra_columns=["solved"]
    )
    require_month_aligned(frame, [period, previous])
    stats = {}
    for name, span in (("", period), ("_previous", previous)):
        part = in_period(frame, span)
        solved = part["solved"]
        grouped = part.assign(
            _solved=solved.eq(True).fillna(False).astype(int) * part[WEIGHT],
            _unknown=solved.isna().astype(int) * part[WEIGHT],
        ).groupby(["jurisdiction", "category"])
        stats[name] = (grouped[WEIGHT].sum(), grouped["_solved"].sum(), grouped["_unknown"].sum())
    in_scope = pd.concat([in_period(frame, period), in_period(frame, previous)])
    if len(in_scope) and in_scope["solved"].isna().all():
        raise DataError(
            "none of these incidents has a known outcome (the solved column is empty), "
            "so no clearance rate can be computed"
        )
    rows = []
    for key in group_keys(frame, labels, [city] if by == "city" else jurisdictions):
        row: dict[str, Any] = {"jurisdiction": key[0], "category": key[1]}
        for name, (sizes, solved_counts, unknown_counts) in stats.items():
            recorded = int(sizes.get(key, 0))
            solved_n = int(solved_counts.get(key, 0))
            row[f"recorded{name}"] = recorded
            row[f"solved{name}"] = solved_n
            row[f"unknown{name}"] = int(unknown_counts.get(key, 0))
            row[f"rate{name}"] = solved_n / recorded if recorded else None
        rate, rate_prev = row["rate"], row["rate_previous"]
        row["change_pp"] = None if rate is None or rate_prev is None else 100.0 * (rate - rate_prev)
        rows.append(row)
    notes = [
        "rate = solved / recorded; incidents with an unknown outcome count as not solved",
        *unassigned_notes(frame, by),
    ]
    return ClearanceResult(period, previous, by, pd.DataFrame(rows), notes)
