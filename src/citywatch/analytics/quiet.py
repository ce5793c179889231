"""Zero-incident days and streaks ("132 days without a robbery", "915 days since the last").

All counting is in local calendar days of the city's time zone, so a day is a day even when
daylight-saving time makes it 23 or 25 hours long.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from citywatch.analytics.scope import (
    WEIGHT,
    CategorySpec,
    Period,
    day_numbers,
    group_keys,
    local_days,
    require_precision,
    scoped_frame,
    to_date,
    unassigned_notes,
)

__all__ = ["QuietDays", "QuietDaysResult", "ZeroRun", "quiet_days", "zero_runs"]


@dataclass(frozen=True)
class ZeroRun:
    """A run of consecutive days without incidents (``first``/``last`` None when empty)."""

    days: int
    first: date | None
    last: date | None


@dataclass(frozen=True)
class QuietDays:
    """Zero-incident days of one jurisdiction and category in a period.

    Attributes
    ----------
    jurisdiction, category : str
    days : int
        Days in the period.
    zero_days : int
        Days of the period without an incident.
    longest_zero_run : ZeroRun
        Longest run of zero days inside the period (the earliest one on a tie).
    current_zero_run : ZeroRun
        Zero days from the day after the last incident up to the end of the period, looking
        back before the period if needed; ``last`` is the end of the period.
    last_incident : date or None
        Local day of the last incident on or before the end of the period.
    lower_bound : bool
        True when no incident precedes the end of the period in the data: the current run is
        then at least ``current_zero_run.days`` long, counted from the start of the data.
    incidents : int
        Incidents in the period.
    """

    jurisdiction: str
    category: str
    days: int
    zero_days: int
    longest_zero_run: ZeroRun
    current_zero_run: ZeroRun
    last_incident: date | None
    lower_bound: bool
    incidents: int

    def as_dict(self) -> dict[str, Any]:
        """The JSON row of ``citywatch stats quiet-days``."""
        longest, current = self.longest_zero_run, self.current_zero_run
        return {
            "jurisdiction": self.jurisdiction,
            "category": self.category,
            "days": self.days,
            "zero_days": self.zero_days,
            "longest_zero_run": {
                "days": longest.days,
                "first": _iso(longest.first),
                "last": _iso(longest.last),
            },
            "current_zero_run": {
                "days": current.days,
                "since": _iso(current.first),
                "lower_bound": self.lower_bound,
                "last_incident": _iso(self.last_incident),
            },
            "incidents": self.incidents,
        }


def _iso(day: date | None) -> str | None:
    return None if day is None else day.isoformat()


@dataclass
class QuietDaysResult:
    """Quiet-day statistics of every jurisdiction and category, plus the data's coverage."""

    period: Period
    by: str
    rows: list[QuietDays]
    data_start: date | None
    data_end: date | None
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        return {
            "period": self.period.as_dict(),
            "by": self.by,
            "data_start": _iso(self.data_start),
            "data_end": _iso(self.data_end),
            "rows": [r.as_dict() for r in self.rows],
            "notes": self.notes,
        }


def zero_runs(incident_days: np.ndarray, start: int, end: int) -> tuple[int, ZeroRun]:
    """Zero days and the longest zero run in ``[start, end]`` given the days with incidents.

    Parameters
    ----------
    incident_days : numpy.ndarray of int
        Day numbers (days since 1970-01-01) that have at least one incident; any order,
        repeats and days outside the range allowed.
    start, end : int
        First and last day number of the period.

    Returns
    -------
    (int, ZeroRun)
        Number of zero days, and the longest run (earliest on a tie).
    """
    busy = np.unique(incident_days[(incident_days >= start) & (incident_days <= end)])
    zero = (end - start + 1) - len(busy)
    # Sentinels just outside the period turn every gap between busy days into a run length.
    edges = np.concatenate(([start - 1], busy, [end + 1]))
    gaps = np.diff(edges) - 1
    i = int(np.argmax(gaps))
    if gaps[i] <= 0:
        return zero, ZeroRun(0, None, None)
    first = int(edges[i]) + 1
    return zero, ZeroRun(int(gaps[i]), to_date(first), to_date(first + int(gaps[i]) - 1))


def quiet_days(
    incidents: pd.DataFrame,
    period: Period,
    *,
    tz: str,
    by: str = "city",
    categories: Sequence[str] | CategorySpec | None = None,
    city: str = "city",
    jurisdictions: Sequence[str] | None = None,
    data_start: date | None = None,
) -> QuietDaysResult:
    """Zero-incident days, longest and current zero runs per jurisdiction and category.

    Parameters
    ----------
    incidents : pandas.DataFrame
        Canonical incidents; all of them, not only those of the period, so that the current
        run can reach back before the period.
    period : Period
        Local dates under study.
    tz : str
        City time zone that defines local days.
    by, categories, city, jurisdictions
        As in :func:`citywatch.analytics.compare.compare`.
    data_start : datetime.date, optional
        First day the data covers; default the local day of the earliest incident.

    Returns
    -------
    QuietDaysResult

    Raises
    ------
    InsufficientPrecisionError
        If any incident's time is known only to the month.
    """
    frame, labels = scoped_frame(incidents, tz=tz, by=by, categories=categories, city=city)
    require_precision(frame, "day", "counting days without incidents")
    numbers = day_numbers(frame["day"])
    frame = frame.assign(_n=numbers)
    start = int(np.datetime64(period.start, "D").astype(np.int64))
    end = int(np.datetime64(period.end, "D").astype(np.int64))
    # Coverage comes from every incident, not only those of the reported categories.
    every_day = day_numbers(local_days(incidents["received_at"], tz))
    first_day = int(every_day.min()) if len(every_day) else None
    last_day = int(every_day.max()) if len(every_day) else None
    if data_start is not None:
        first_day = int(np.datetime64(data_start, "D").astype(np.int64))

    by_group = {
        key: (grp["_n"].to_numpy(), grp[WEIGHT].to_numpy())
        for key, grp in frame.groupby(["jurisdiction", "category"])
    }
    empty = np.empty(0, dtype=np.int64)
    rows = []
    for key in group_keys(frame, labels, [city] if by == "city" else jurisdictions):
        days, weights = by_group.get(key, (empty, empty))
        zero, longest = zero_runs(days, start, end)
        before = days[days <= end]
        if len(before):
            last = int(before.max())
            current_len, lower = end - last, False
        else:
            last = None
            # Nothing in the data before the end: the run is at least as long as the coverage.
            current_len = max(0, end - first_day + 1) if first_day is not None else 0
            lower = True
        current = ZeroRun(
            current_len,
            to_date(end - current_len + 1) if current_len else None,
            period.end if current_len else None,
        )
        rows.append(
            QuietDays(
                jurisdiction=key[0],
                category=key[1],
                days=period.days,
                zero_days=zero,
                longest_zero_run=longest,
                current_zero_run=current,
                last_incident=None if last is None else to_date(last),
                lower_bound=lower,
                incidents=int(weights[(days >= start) & (days <= end)].sum()),
            )
        )
    notes = [*_coverage_notes(period, first_day, last_day), *unassigned_notes(frame, by)]
    return QuietDaysResult(
        period,
        by,
        rows,
        None if first_day is None else to_date(first_day),
        None if last_day is None else to_date(last_day),
        notes,
    )


def _coverage_notes(period: Period, first_day: int | None, last_day: int | None) -> list[str]:
    if first_day is None or last_day is None:
        return ["the data holds no incident: every day counts as a zero day"]
    notes = []
    if to_date(first_day) > period.start:
        notes.append(
            f"the data starts on {to_date(first_day)}, after the period starts: days before "
            "it count as zero days although nothing is known about them"
        )
    if to_date(last_day) < period.end:
        notes.append(
            f"the data ends on {to_date(last_day)}, before the period ends: later days count "
            "as zero days although nothing is known about them"
        )
    return notes
