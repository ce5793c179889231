"""Near-repeat analysis: the Knox table of Ratcliffe's Near Repeat Calculator (NRC 1.3).

Every pair of events is counted in one cell of a space-time table:

* rows: the same location (distance 0), spatial bands ``(0, M)``, ``[M, 2M)``, ...,
  ``[(N-1)M, NM)``, and "more than" ``[NM, inf)``;
* columns: temporal bands of ``T`` whole days ``[0, T)``, ``[T, 2T)``, ..., ``[(K-1)T, KT)``
  and "more than" ``[KT, inf)``, on the difference of the events' dates.

The NRC labels these ``1 to 100``, ``101 to 200`` ... and ``0 to 2``, ``3 to 4`` days, but counts
exactly the half-open intervals above (T. Davies's analysis in the NRC's repository
tobydavies/NearRepeat, confirmed here on its published Chicago 2016 table).  The NRC also reads
the coordinates as single-precision floats, which moves a handful of pairs across band edges;
``single_precision=True`` does the same, to reproduce its tables exactly.

The expected table is the mean over Monte Carlo permutations of the dates over the events; the
Knox ratio is observed over expected and the p-value ``(1 + #permutations >= observed) /
(1 + iterations)``.  Only pairs closer than ``NM`` are enumerated (k-d tree); the column totals
over all pairs do not change under a permutation of the dates, so the "more than" row of every
table follows from them.  Pure computation: arrays in, results out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Literal

import numpy as np
from numpy.typing import NDArray

from citywatch.analytics.knox import (
    Metric,
    check_events,
    pairs_closer_in_time,
    permutations,
    resolve_seed,
    spatial_pairs,
)
from citywatch.errors import ValidationError

__all__ = [
    "MEANINGFUL_RATIO",
    "SIGNIFICANCE",
    "Bands",
    "NearRepeatResult",
    "NearRepeatWindow",
    "near_repeat",
    "near_repeat_window",
    "verdict",
]

#: The NRC calls a cell "meaningful" when it holds at least 20 % more pairs than expected.
MEANINGFUL_RATIO: Final = 1.2
#: ... and "significant" at p <= 0.05.
SIGNIFICANCE: Final = 0.05


@dataclass(frozen=True)
class Bands:
    """Band widths and counts: ``spatial_bands`` of ``spatial_band`` metres, likewise in days."""

    spatial_band: float
    spatial_bands: int
    temporal_band: int
    temporal_bands: int

    def __post_init__(self) -> None:
        if not (self.spatial_band > 0 and np.isfinite(self.spatial_band)):
            raise ValidationError(
                "the spatial band must be a positive distance", field="spatial_band"
            )
        if self.temporal_band < 1:
            raise ValidationError(
                "the temporal band must be at least one day", field="temporal_band"
            )
        if self.spatial_bands < 1 or self.temporal_bands < 1:
            raise ValidationError("give at least one spatial and one temporal band", field="bands")

    @property
    def shape(self) -> tuple[int, int]:
        """Table shape: same location + bands + "more than", bands + "more than"."""
        return self.spatial_bands + 2, self.temporal_bands + 1

    def row_labels(self) -> list[str]:
        """``same location``, ``0-100 m`` ... (half-open, the first excludes 0), ``>= 300 m``."""
        m = self.spatial_band
        bands = [f"{_num(k * m)}-{_num((k + 1) * m)} m" for k in range(self.spatial_bands)]
        return ["same location", *bands, f">= {_num(self.spatial_bands * m)} m"]

    def column_labels(self) -> list[str]:
        """Whole days apart, both ends included: ``0-1 days``, ``2-3 days`` ..., ``>= 4 days``."""
        t = self.temporal_band
        bands = [
            f"{k * t} days" if t == 1 else f"{k * t}-{(k + 1) * t - 1} days"
            for k in range(self.temporal_bands)
        ]
        return [*bands, f">= {self.temporal_bands * t} days"]


def _num(value: float) -> str:
    return f"{value:g}"


@dataclass(frozen=True)
class NearRepeatResult:
    """Observed and expected Knox tables (see the module docstring for the cells).

    Attributes
    ----------
    observed : numpy.ndarray
        Pair counts, shape :attr:`Bands.shape`.
    expected : numpy.ndarray
        Mean count over the permutations.
    expected_sd : numpy.ndarray
        Standard deviation of the permuted counts (the Monte Carlo error of ``expected`` is
        ``expected_sd / sqrt(iterations)``).
    exceed : numpy.ndarray
        Permutations with a count ``>=`` the observed one.
    """

    bands: Bands
    metric: str
    observed: NDArray[np.int64]
    expected: NDArray[np.float64]
    expected_sd: NDArray[np.float64]
    exceed: NDArray[np.int64]
    iterations: int
    events: int
    pairs: int
    seed: int
    single_precision: bool

    @property
    def knox_ratio(self) -> NDArray[np.float64]:
        """Observed over mean expected (NaN where nothing is expected)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.expected > 0, self.observed / self.expected, np.nan)

    @property
    def p_value(self) -> NDArray[np.float64]:
        """``(1 + exceed) / (1 + iterations)`` per cell."""
        return (1 + self.exceed) / (1 + self.iterations)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict: ``rows``, ``columns``, the tables as lists of rows, and the setup."""
        b = self.bands
        return {
            "rows": b.row_labels(),
            "columns": b.column_labels(),
            "observed": self.observed.tolist(),
            "expected": self.expected.tolist(),
            "knox_ratio": self.knox_ratio.tolist(),
            "p_value": self.p_value.tolist(),
            "iterations": self.iterations,
            "pairs": self.pairs,
            "events": self.events,
            "expected_sd": self.expected_sd.tolist(),
            "spatial_band": b.spatial_band,
            "spatial_bands": b.spatial_bands,
            "temporal_band": b.temporal_band,
            "temporal_bands": b.temporal_bands,
            "distance": self.metric,
            "seed": self.seed,
            "single_precision": self.single_precision,
        }


def _whole_days(days: NDArray[Any]) -> NDArray[np.int64]:
    days = np.asarray(days)
    if days.dtype.kind in "iu":
        return days.astype(np.int64)
    if days.dtype.kind == "f" and np.isfinite(days).all() and (days == np.round(days)).all():
        return days.astype(np.int64)
    raise ValidationError("near-repeat dates must be whole day numbers", field="days")


def near_repeat(
    xy: NDArray[Any],
    days: NDArray[Any],
    bands: Bands,
    *,
    metric: Metric = "euclidean",
    iterations: int = 999,
    seed: int | None = None,
    single_precision: bool = False,
    on_progress: Callable[[int], None] | None = None,
) -> NearRepeatResult:
    """Near-repeat Knox table of events with a Monte Carlo permutation test.

    Parameters
    ----------
    xy : numpy.ndarray
        ``(n, 2)`` projected coordinates in metres.
    days : numpy.ndarray
        ``(n,)`` dates as whole day numbers (e.g. days since 1970-01-01).
    bands : Bands
    metric : {"euclidean", "manhattan"}
    iterations : int
        Permutations of the dates.
    seed : int, optional
        Seed of the permutations (numpy ``Generator``); fresh entropy, reported, when omitted.
    single_precision : bool
        Round the coordinates to float32 first, as the NRC does, to reproduce its tables.
    on_progress : callable, optional
        Called with the number of permutations done.

    Returns
    -------
    NearRepeatResult
    """
    xy, t = check_events(xy, _whole_days(days))
    if single_precision:
        xy = xy.astype(np.float32).astype(np.float64)
    seed = resolve_seed(seed)
    n_rows, n_cols = bands.shape
    reach = bands.spatial_band * bands.spatial_bands
    near = spatial_pairs(xy, reach, metric)
    edges = bands.spatial_band * np.arange(1, bands.spatial_bands + 1)
    # row 0: d == 0; row k >= 1: (k - 1) M <= d < k M (searchsorted counts the edges <= d)
    row = np.where(near.distance == 0, 0, np.searchsorted(edges, near.distance, side="right") + 1)
    keep = row <= bands.spatial_bands
    i, j = near.i[keep], near.j[keep]
    cell_base = (row[keep] * n_cols).astype(np.intp)
    del near, row, keep  # only the close pairs' indices stay alive over the permutations
    n = len(t)
    n_pairs = n * (n - 1) // 2
    limits = bands.temporal_band * np.arange(1, bands.temporal_bands + 1)
    cumulative = pairs_closer_in_time(t, limits, inclusive=False)
    column_totals = np.diff(np.concatenate([[0], cumulative, [n_pairs]]))
    # per permutation only the close pairs are re-binned, in place, in 32 bits where the dates
    # fit: days apart, capped at the last band, then a look-up of the column
    span = int(t.max() - t.min())
    rel = (t - t.min()).astype(np.int32 if span < 2**31 else np.int64)
    cap = bands.temporal_band * bands.temporal_bands
    column_of = np.minimum(np.arange(cap + 1) // bands.temporal_band, bands.temporal_bands)

    def table(tp: NDArray[np.signedinteger[Any]]) -> NDArray[np.int64]:
        apart = tp[i]
        apart -= tp[j]
        np.abs(apart, out=apart)
        np.minimum(apart, cap, out=apart)
        cell = column_of[apart]
        cell += cell_base
        close = np.bincount(cell, minlength=(n_rows - 1) * n_cols).reshape(n_rows - 1, n_cols)
        return np.vstack([close, column_totals - close.sum(axis=0)])

    observed = table(rel)
    permuted = np.stack([table(tp) for tp in permutations(rel, iterations, seed, on_progress)])
    return NearRepeatResult(
        bands=bands,
        metric=metric,
        observed=observed,
        expected=permuted.mean(axis=0),
        expected_sd=permuted.std(axis=0, ddof=1) if iterations > 1 else np.zeros(bands.shape),
        exceed=(permuted >= observed).sum(axis=0),
        iterations=iterations,
        events=n,
        pairs=n_pairs,
        seed=seed,
        single_precision=single_precision,
    )


@dataclass(frozen=True)
class NearRepeatWindow:
    """How far and how long after an incident further incidents are over-represented.

    Attributes
    ----------
    distance_m : float
        Upper edge of the farthest spatial band, counted from the first, whose first temporal
        band is significant and meaningful (0 for the same-location window).
    days : int
        Events fewer than ``days`` days apart are over-represented within that distance.
    extents : list of int
        Per spatial band (or the one same-location row), days of its own window.
    ratio, p_value : float
        Knox ratio and p-value of the closest cell (first band, first days).
    """

    distance_m: float
    days: int
    extents: list[int]
    ratio: float
    p_value: float

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "distance_m": self.distance_m,
            "days": self.days,
            "extents_days": self.extents,
            "ratio": self.ratio,
            "p_value": self.p_value,
        }


def _leading_cells(flags: NDArray[np.bool_]) -> int:
    """Length of the run of True at the start of ``flags``."""
    misses = np.flatnonzero(~flags)
    return int(misses[0]) if len(misses) else len(flags)


def near_repeat_window(
    result: NearRepeatResult,
    *,
    same_location: bool = False,
    alpha: float = SIGNIFICANCE,
    min_ratio: float = MEANINGFUL_RATIO,
) -> NearRepeatWindow | None:
    """The near-repeat (or same-location repeat) window of an area from its Knox table.

    A cell counts when ``p <= alpha`` and its Knox ratio ``>= min_ratio`` (the NRC's
    "significant and meaningful").  Bands count from the first outwards while their first
    temporal band counts; each one's window runs over its leading counting temporal bands.
    The "more than" row and column never count.

    Parameters
    ----------
    result : NearRepeatResult
    same_location : bool
        The repeat window at the same location instead of the near-repeat one.
    alpha, min_ratio : float

    Returns
    -------
    NearRepeatWindow or None
        ``None`` when not even the closest cell is significant and meaningful.
    """
    b = result.bands
    with np.errstate(invalid="ignore"):
        hits = (result.p_value <= alpha) & (result.knox_ratio >= min_ratio)
    hits = hits[:, : b.temporal_bands]
    rows = [0] if same_location else list(range(1, b.spatial_bands + 1))
    extents = []
    for r in rows:
        run = _leading_cells(hits[r])
        if run == 0:
            break
        extents.append(run)
    if not extents:
        return None
    first = rows[0]
    return NearRepeatWindow(
        distance_m=0.0 if same_location else len(extents) * b.spatial_band,
        days=max(extents) * b.temporal_band,
        extents=[e * b.temporal_band for e in extents],
        ratio=float(result.knox_ratio[first, 0]),
        p_value=float(result.p_value[first, 0]),
    )


Lang = Literal["zh", "en"]

_TEXT: Final[dict[str, dict[str, str]]] = {
    "en": {
        "near": "Near repeats: from {lo} to {hi} m of an incident, further incidents are "
        "over-represented when fewer than {days} days apart.",
        "near_size": "Within {hi} m and {t} days of an incident, another incident is about "
        "{pct} percent more likely than expected (p = {p:.3g}).",
        "repeat": "Repeats: at the same location, further incidents are over-represented when "
        "fewer than {days} days apart; within {t} days about {pct} percent more likely than "
        "expected (p = {p:.3g}).",
        "no_near": "No significant and meaningful near-repeat pattern (p <= {alpha:g} and at "
        "least {meaningful} percent more than expected).",
        "no_repeat": "No significant and meaningful repeat pattern at the same location.",
    },
    "zh": {
        "near": "近重复：距一起案件 {lo}–{hi} 米内，相隔不足 {days} 天的后续案件多于预期。",
        "near_size": "案发后 {hi} 米、{t} 天内再次发案的可能性比预期高约 {pct}%（p = {p:.3g}）。",
        "repeat": "重复：同一地点相隔不足 {days} 天的后续案件多于预期；{t} 天内再次发案的"
        "可能性比预期高约 {pct}%（p = {p:.3g}）。",
        "no_near": "未发现显著且有意义的近重复模式"
        "（p ≤ {alpha:g}，且至少比预期高 {meaningful}%）。",
        "no_repeat": "同一地点未发现显著且有意义的重复模式。",
    },
}


def verdict(
    result: NearRepeatResult,
    lang: Lang = "zh",
    *,
    alpha: float = SIGNIFICANCE,
    min_ratio: float = MEANINGFUL_RATIO,
) -> list[str]:
    """The NRC's summary in sentences ("... about x percent more likely than expected").

    Parameters
    ----------
    result : NearRepeatResult
    lang : {"zh", "en"}
    alpha, min_ratio : float
        What "significant" and "meaningful" mean (the NRC's 0.05 and 1.2).

    Returns
    -------
    list of str
    """
    if lang not in _TEXT:
        raise ValidationError(f"unknown language {lang!r}: use zh or en", field="lang")
    text = _TEXT[lang]
    b = result.bands
    t = b.temporal_band
    out = []
    near = near_repeat_window(result, alpha=alpha, min_ratio=min_ratio)
    if near is None:
        meaningful = round((min_ratio - 1) * 100)
        out.append(text["no_near"].format(alpha=alpha, meaningful=meaningful))
    else:
        for k, extent in enumerate(near.extents):
            lo, hi = _num(k * b.spatial_band), _num((k + 1) * b.spatial_band)
            out.append(text["near"].format(lo=lo, hi=hi, days=extent))
        pct = round((near.ratio - 1) * 100)
        out.append(text["near_size"].format(hi=_num(b.spatial_band), t=t, pct=pct, p=near.p_value))
    repeat = near_repeat_window(result, same_location=True, alpha=alpha, min_ratio=min_ratio)
    if repeat is None:
        out.append(text["no_repeat"])
    else:
        pct = round((repeat.ratio - 1) * 100)
        out.append(text["repeat"].format(days=repeat.days, t=t, pct=pct, p=repeat.p_value))
    return out
