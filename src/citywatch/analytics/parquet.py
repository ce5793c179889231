"""Statistics over Parquet datasets larger than memory, with ``dask.dataframe``.

The statistics (:func:`~citywatch.analytics.compare.compare`, ``clearance``, ``quiet_days``,
``profile``) only ever need, per incident, its jurisdiction at one level, its category, its time
precision, its outcome and its local day and hour.  :func:`reduced_frame` therefore reads just
those columns of a dataset (:mod:`citywatch.incidents.parquet`), file by file in parallel, and
collapses each file to one row per distinct (jurisdiction, category, precision, solved, local
hour or local day) with the number of incidents it stands for
(:data:`~citywatch.analytics.scope.WEIGHT`).
Counts add up across files, so the reduced frame is exact, and the statistics run on it
unchanged: a row's ``received_at`` is the earliest time of its incidents, which lies in the same
local hour (or day) as every one of them.  Memory grows with the number of distinct keys (at
most jurisdictions x categories x days, or hours for the profile), not with the number of
incidents.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd

from citywatch.analytics.scope import LEVELS, WEIGHT
from citywatch.errors import DataError, ValidationError
from citywatch.incidents.parquet import open_dataset
from citywatch.incidents.record import empty_frame

__all__ = ["RESOLUTIONS", "reduced_frame"]

#: The canonical columns a reduced frame keeps besides ``received_at``.
_KEYS = ("category", "time_precision", "solved")


#: How finely a reduced frame keeps local time: a day suffices for counts and zero days, the
#: hour-of-day profile needs hours.
RESOLUTIONS = {"day": "D", "hour": "h"}


def _reduce(
    part: pd.DataFrame, tz: str, level: str | None, sources: list[str] | None, freq: str
) -> pd.DataFrame:
    """One row per distinct key and local hour of a file's incidents, with their count."""
    if sources is not None:
        part = part[part["source"].isin(sources)]
    keys = [*([level] if level else []), *_KEYS]
    local = part["received_at"].dt.tz_convert(tz).dt.tz_localize(None).dt.floor(freq)
    frame = part[[*keys, "received_at"]].assign(_hour=local)
    return _group(frame, keys, ("received_at", "size"))


def _group(frame: pd.DataFrame, keys: list[str], count: tuple[str, str]) -> pd.DataFrame:
    grouped = frame.groupby([*keys, "_hour"], sort=False, dropna=False, observed=True)
    out = grouped.agg(received_at=("received_at", "min"), **{WEIGHT: count})
    return out.reset_index()


def reduced_frame(
    folder: str | Path,
    *,
    tz: str,
    by: str = "city",
    city: str | None = None,
    sources: list[str] | None = None,
    resolution: str = "hour",
    first_day: date | None = None,
    last_day: date | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> pd.DataFrame:
    """Incidents of a Parquet dataset collapsed to a weighted canonical frame.

    Parameters
    ----------
    folder : str or pathlib.Path
        Dataset written by ``incidents export --parquet``.
    tz : str
        City time zone (local hours are kept whole).
    by : {"city", "bureau", "station", "zone"}
        Jurisdiction level the statistics will report by (only that column is kept).
    city : str, optional
        City partition to read (default: every city).
    sources : list of str, optional
        Keep only incidents of these sources.
    resolution : {"hour", "day"}
        Local hours (every statistic) or local days (all but the hour-of-day profile; the
        frame then stays within jurisdictions x categories x days, however many incidents).
    first_day, last_day : datetime.date, optional
        Local days the statistic needs; months wholly outside them (with a day's margin for
        the time zone) are never read.
    on_progress : callable, optional
        Called with (files done, files) as the files are reduced.

    Returns
    -------
    pandas.DataFrame
        Columns ``received_at``, the level's (unless ``by`` is ``"city"``), ``category``,
        ``time_precision``, ``solved`` and :data:`~citywatch.analytics.scope.WEIGHT`, ordered by
        ``received_at``: what the statistics read of a canonical frame.
    """
    if by not in LEVELS:
        raise ValidationError(f"unknown jurisdiction level {by!r}: use one of {LEVELS}", field="by")
    if resolution not in RESOLUTIONS:
        raise ValidationError(
            f"unknown resolution {resolution!r}: use one of {sorted(RESOLUTIONS)}"
        )
    freq = RESOLUTIONS[resolution]
    level = None if by == "city" else by
    columns = ["received_at", *([level] if level else []), *_KEYS]
    if sources is not None:
        columns.append("source")
    margin = pd.Timedelta(days=1)
    first = None if first_day is None else (pd.Timestamp(first_day) - margin).date()
    last = None if last_day is None else (pd.Timestamp(last_day) + margin).date()
    lazy = open_dataset(folder, columns, city=city, first_month=first, last_month=last)
    meta = _reduce(empty_frame()[columns], tz, level, sources, freq)
    mapped = lazy.map_partitions(_reduce, tz, level, sources, freq, meta=meta)  # type: ignore[no-untyped-call]
    parts = mapped.to_delayed()
    try:
        reduced = _compute(parts, on_progress)
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise DataError(f"cannot read the Parquet dataset {folder}: {exc}") from None
    keys = [*([level] if level else []), *_KEYS]
    frame = _group(reduced, keys, (WEIGHT, "sum")).drop(columns="_hour")
    for key in keys:  # a few distinct values each: categories keep the frame small
        frame[key] = frame[key].astype("boolean" if key == "solved" else "category")
    frame[WEIGHT] = frame[WEIGHT].astype("int64")
    return frame.sort_values("received_at", kind="stable").reset_index(drop=True)


def _compute(parts: list[Any], on_progress: Callable[[int, int], None] | None) -> pd.DataFrame:
    from dask.base import compute

    done: list[pd.DataFrame] = []
    # A few files per round, so that the progress bar moves; the reductions are small (keys
    # x counts), so every round's are kept for the final grouping.
    step = 16
    for i in range(0, len(parts), step):
        done.extend(compute(*parts[i : i + step]))  # type: ignore[no-untyped-call]
        if on_progress is not None:
            on_progress(min(i + step, len(parts)), len(parts))
    return pd.concat(done, ignore_index=True) if done else pd.DataFrame()
