"""Hour-of-day and day-of-week profiles of two periods, and a test of whether they differ."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from citywatch.analytics.scope import (
    WEIGHT,
    Baseline,
    CategorySpec,
    Period,
    baseline_period,
    group_keys,
    in_period,
    require_precision,
    scoped_frame,
    unassigned_notes,
)

__all__ = ["WEEKDAYS", "ProfileResult", "ShiftTest", "TimeProfile", "profile", "shift_test"]

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
#: Resamples of the Monte Carlo chi-square test; the seed keeps reports reproducible.
MONTE_CARLO_RESAMPLES = 9999
MONTE_CARLO_SEED = 20060101


@dataclass(frozen=True)
class ShiftTest:
    """Result of a test of homogeneity between two distributions over the same bins."""

    test: str
    statistic: float | None
    dof: int | None
    p_value: float | None
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        return {
            "test": self.test,
            "statistic": self.statistic,
            "dof": self.dof,
            "p_value": self.p_value,
            "note": self.note,
        }


def shift_test(current: np.ndarray, previous: np.ndarray) -> ShiftTest:
    """Pearson chi-square test that two count vectors come from the same distribution.

    The asymptotic chi-square p-value is used when every expected count is at least 5
    (Cochran's rule); otherwise a seeded Monte Carlo p-value (scipy's ``MonteCarloMethod``,
    which resamples tables with the observed margins) replaces it.  Bins empty in both
    periods are dropped first.

    Parameters
    ----------
    current, previous : numpy.ndarray of int
        Counts per bin (24 hours or 7 weekdays).

    Returns
    -------
    ShiftTest
    """
    table = np.vstack([current, previous]).astype(np.int64)
    table = table[:, table.sum(axis=0) > 0]
    if table.sum(axis=1).min() == 0 or table.shape[1] < 2:
        return ShiftTest(
            "chi-square test of homogeneity",
            None,
            None,
            None,
            "not computed: a period has no incident or all fall in one bin",
        )
    expected = stats.contingency.expected_freq(table)
    dof = table.shape[1] - 1
    if expected.min() >= 5:
        res = stats.chi2_contingency(table, correction=False)
        return ShiftTest(
            "chi-square test of homogeneity", float(res.statistic), dof, float(res.pvalue)
        )
    method = stats.MonteCarloMethod(
        n_resamples=MONTE_CARLO_RESAMPLES, rng=np.random.default_rng(MONTE_CARLO_SEED)
    )
    res = stats.chi2_contingency(table, correction=False, method=method)
    return ShiftTest(
        "chi-square test of homogeneity (Monte Carlo p-value)",
        float(res.statistic),
        dof,
        float(res.pvalue),
        f"some expected counts are below 5; p-value from {MONTE_CARLO_RESAMPLES} seeded resamples",
    )


@dataclass(frozen=True)
class TimeProfile:
    """Hour and weekday counts of one jurisdiction and category in two periods."""

    jurisdiction: str
    category: str
    hours: np.ndarray  # shape (2, 24): row 0 the period, row 1 the comparison period
    weekdays: np.ndarray  # shape (2, 7), Monday first
    hour_test: ShiftTest
    weekday_test: ShiftTest

    def peak_hours(self, row: int = 0) -> list[int]:
        """Hours (0-23) with the highest count in period ``row`` (all of them on a tie)."""
        counts = self.hours[row]
        if counts.sum() == 0:
            return []
        return [int(h) for h in np.flatnonzero(counts == counts.max())]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        return {
            "jurisdiction": self.jurisdiction,
            "category": self.category,
            "incidents": {
                "current": int(self.hours[0].sum()),
                "previous": int(self.hours[1].sum()),
            },
            "hours": {"current": self.hours[0].tolist(), "previous": self.hours[1].tolist()},
            "weekdays": {
                "labels": list(WEEKDAYS),
                "current": self.weekdays[0].tolist(),
                "previous": self.weekdays[1].tolist(),
            },
            "peak_hours": {"current": self.peak_hours(0), "previous": self.peak_hours(1)},
            "hour_shift_test": self.hour_test.as_dict(),
            "weekday_shift_test": self.weekday_test.as_dict(),
        }


@dataclass
class ProfileResult:
    """Time profiles of every jurisdiction and category."""

    period: Period
    baseline: Period
    by: str
    rows: list[TimeProfile]
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        return {
            "period": self.period.as_dict(),
            "baseline": self.baseline.as_dict(),
            "by": self.by,
            "rows": [r.as_dict() for r in self.rows],
            "notes": self.notes,
        }


def profile(
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
) -> ProfileResult:
    """Hour-of-day and day-of-week distributions of two periods, with shift tests.

    Hours are local wall-clock hours in ``tz``.  Parameters are those of
    :func:`citywatch.analytics.compare.compare`.

    Returns
    -------
    ProfileResult

    Raises
    ------
    InsufficientPrecisionError
        If any incident's time is known only to the day or month.
    """
    previous = baseline_dates or baseline_period(period, baseline)
    frame, labels = scoped_frame(incidents, tz=tz, by=by, categories=categories, city=city)
    require_precision(frame, "exact", "an hour-of-day profile")
    hours: dict[str, dict[tuple[str, str], np.ndarray]] = {}
    weekdays: dict[str, dict[tuple[str, str], np.ndarray]] = {}
    for name, span in (("current", period), ("previous", previous)):
        part = in_period(frame, span)
        hours[name] = _binned(part, part["local_time"].dt.hour, 24)
        weekdays[name] = _binned(part, part["local_time"].dt.day_of_week, 7)
    rows = []
    empty24, empty7 = np.zeros(24, dtype=np.int64), np.zeros(7, dtype=np.int64)
    for key in group_keys(frame, labels, [city] if by == "city" else jurisdictions):
        h = np.vstack([hours[n].get(key, empty24) for n in ("current", "previous")])
        w = np.vstack([weekdays[n].get(key, empty7) for n in ("current", "previous")])
        rows.append(
            TimeProfile(key[0], key[1], h, w, shift_test(h[0], h[1]), shift_test(w[0], w[1]))
        )
    notes = [
        "hours are local wall-clock hours; weekdays run Monday to Sunday",
        *unassigned_notes(frame, by),
    ]
    return ProfileResult(period, previous, by, rows, notes)


def _binned(part: pd.DataFrame, values: pd.Series, size: int) -> dict[tuple[str, str], np.ndarray]:
    """Counts of ``values`` (0 .. size-1) per (jurisdiction, category)."""
    weights = part[WEIGHT]
    grouped = values.groupby([part["jurisdiction"], part["category"]])
    return {
        (str(j), str(c)): np.bincount(
            v.to_numpy(dtype=np.int64), weights=weights.loc[v.index].to_numpy(), minlength=size
        ).astype(np.int64)
        for (j, c), v in grouped
    }
