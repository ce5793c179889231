"""Honest evaluation of hotspot forecasts: rolling-origin backtests, hit rate, PAI and PEI.

At each origin every predictor is fitted on the events before it and forecasts the next
``horizon_days``; cells are ranked by risk per unit measure and the top ``a`` share of the
study area (1, 5, 10, 20 %) is "flagged". Per test period:

- hit rate ``HR = n_flagged / N`` (events of the period in flagged cells / all events);
- PAI ``= HR / a`` (Chainey, Tompson & Uhlig 2008);
- PEI ``= n_flagged / n_best`` with ``n_best`` the most events any ``a``-share of the area held
  (Hunt 2016: PAI over the largest possible PAI).

Cells with equal risk are flagged in equal proportion (the expectation under random
tie-breaking), so ties never favour a predictor. Means come with 95 % t-intervals over the test
periods that had events, and every predictor is compared with the naive one period by period.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import pandas as pd
from scipy import stats

from citywatch.errors import ValidationError
from citywatch.forecast.predictors import Predictor
from citywatch.forecast.surface import (
    DAY_S,
    Events,
    FloatArray,
    IntArray,
    Surface,
    forecast_periods,
    local_time,
)

__all__ = [
    "COVERAGES",
    "CURVE_POINTS",
    "Backtest",
    "backtest",
    "block_areas",
    "capture",
    "mean_ci",
    "selection",
]

COVERAGES: Final = (0.01, 0.05, 0.10, 0.20)
CURVE_POINTS: Final = np.linspace(0.0, 1.0, 101)
# Coverage at which the per-area audit compares flagged cells with incidents.
AUDIT_COVERAGE: Final = 0.10
CONFIDENCE: Final = 0.95


def _groups(risk: FloatArray, measure: FloatArray) -> tuple[IntArray, FloatArray]:
    """Tie groups of cells by risk density (highest first) and the groups' cumulative measure."""
    if risk.shape != measure.shape:
        raise ValidationError("one risk value per cell is needed")
    density = risk / measure
    _, group = np.unique(-density, return_inverse=True)
    cum = np.cumsum(np.bincount(group, measure))
    return group.astype(np.int64), cum.astype(np.float64)


def capture(
    risk: FloatArray,
    measure: FloatArray,
    observed: FloatArray,
    coverage: float | Sequence[float] | FloatArray,
) -> FloatArray:
    """Events (``observed`` per cell) in the top ``coverage`` share of the area by risk.

    Tied cells are flagged in equal proportion, so the result is linear within a tie group.
    """
    group, cum = _groups(risk, measure)
    cum_obs = np.cumsum(np.bincount(group, observed, minlength=len(cum)))
    budget = np.asarray(coverage, dtype=np.float64) * measure.sum()
    out = np.interp(budget, np.concatenate([[0.0], cum]), np.concatenate([[0.0], cum_obs]))
    return np.asarray(out, dtype=np.float64)


def selection(risk: FloatArray, measure: FloatArray, coverage: float) -> FloatArray:
    """Flagged share (0 to 1) of every cell when ``coverage`` of the area is flagged."""
    group, cum = _groups(risk, measure)
    before = np.concatenate([[0.0], cum[:-1]])
    budget = coverage * measure.sum()
    share = np.clip((budget - before) / (cum - before), 0.0, 1.0)
    return np.asarray(share[group], dtype=np.float64)


def mean_ci(values: FloatArray, level: float = CONFIDENCE) -> dict[str, float | int | None]:
    """Mean and Student-t confidence interval of the finite values."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return {"mean": None, "low": None, "high": None, "n": 0}
    mean = float(v.mean())
    if len(v) < 2:
        return {"mean": mean, "low": None, "high": None, "n": 1}
    half = float(stats.t.ppf(0.5 + level / 2, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)))
    return {"mean": mean, "low": mean - half, "high": mean + half, "n": len(v)}


def block_areas(surface: Surface, blocks: int = 3) -> tuple[IntArray, list[str]]:
    """Split the surface into ``blocks x blocks`` rectangles (areas when no pack is given)."""
    c = surface.centroids
    lo, hi = c.min(axis=0), c.max(axis=0) + 1e-9
    ij = np.floor((c - lo) / (hi - lo) * blocks).astype(np.int64)
    label = ij[:, 1] * blocks + ij[:, 0]
    names = [f"R{r + 1}C{k + 1}" for r in range(blocks) for k in range(blocks)]
    return label, names


@dataclass
class Backtest:
    """Per-period results of a rolling-origin backtest (see :func:`backtest`)."""

    predictors: list[str]
    origins: FloatArray
    horizon_days: float
    coverages: tuple[float, ...]
    events: FloatArray  # events per period (inside the surface)
    captured: FloatArray  # [predictor, period, coverage]
    best: FloatArray  # [period, coverage]
    curves: FloatArray  # [predictor, curve point]: events captured, summed over periods
    area_names: list[str]
    flagged_share: FloatArray  # [predictor, period, area] share of flagged measure
    incident_share: FloatArray  # [period, area] share of the period's audit incidents
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    timezone: str = "UTC"  # the city's: months and origins are reported in local time
    audit_events: int = 0  # test-period incidents behind the incident shares

    def _rates(self, p: int) -> tuple[FloatArray, FloatArray]:
        with np.errstate(invalid="ignore", divide="ignore"):
            hr = self.captured[p] / self.events[:, None]
            pei = self.captured[p] / self.best
        hr[self.events == 0] = np.nan
        pei[self.events == 0] = np.nan
        return hr, pei

    def summary(self) -> list[dict[str, Any]]:
        """Per predictor and coverage: hit rate, PAI, PEI (with CIs) and the gain over naive."""
        base = self.predictors.index("naive") if "naive" in self.predictors else None
        rows = []
        total = float(self.events.sum())
        for p, name in enumerate(self.predictors):
            hr, pei = self._rates(p)
            for k, a in enumerate(self.coverages):
                hr_ci = mean_ci(hr[:, k])
                row: dict[str, Any] = {
                    "predictor": name,
                    "coverage": a,
                    "hit_rate_pooled": float(self.captured[p, :, k].sum() / total)
                    if total
                    else None,
                    "hit_rate": hr_ci,
                    "pai": {
                        key: (v / a if isinstance(v, float) else v) for key, v in hr_ci.items()
                    },
                    "pei": mean_ci(pei[:, k]),
                }
                if base is not None and p != base:
                    row["hit_rate_minus_naive"] = mean_ci(hr[:, k] - self._rates(base)[0][:, k])
                rows.append(row)
        return rows

    def area_audit(self) -> list[dict[str, Any]]:
        """Per month, area and predictor: flagged share of the area vs share of incidents."""
        utc = pd.to_datetime(self.origins * DAY_S, unit="s", utc=True)
        months = utc.tz_convert(self.timezone).strftime("%Y-%m")
        rows = []
        for month in sorted(set(months)):
            sel = np.asarray(months == month)
            inc = self.incident_share[sel]
            has = np.isfinite(inc).all(axis=1)
            for a, area in enumerate(self.area_names):
                row: dict[str, Any] = {
                    "month": month,
                    "area": area,
                    "incident_share": float(inc[has, a].mean()) if has.any() else None,
                }
                for p, name in enumerate(self.predictors):
                    row[f"flagged_share_{name}"] = float(self.flagged_share[p, sel, a].mean())
                rows.append(row)
        return rows

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready report."""
        return {
            "predictors": self.predictors,
            "periods": len(self.origins),
            "periods_with_events": int((self.events > 0).sum()),
            "first_origin": local_time(self.origins[0], self.timezone).isoformat(),
            "last_origin": local_time(self.origins[-1], self.timezone).isoformat(),
            "horizon_days": self.horizon_days,
            "timezone": self.timezone,
            "events": int(self.events.sum()),
            "summary": self.summary(),
            "params": self.params,
            "area_audit_coverage": AUDIT_COVERAGE,
            "area_audit_events": self.audit_events,
            "area_audit": self.area_audit(),
        }


def backtest(
    events: Events,
    surface: Surface,
    predictors: Sequence[Predictor],
    *,
    start: float,
    end: float,
    horizon_days: float = 1.0,
    step_days: float | None = None,
    areas: tuple[IntArray, list[str]] | None = None,
    coverages: tuple[float, ...] = COVERAGES,
    audit_events: Events | None = None,
    timezone: str = "UTC",
    on_progress: Callable[[int, int], None] | None = None,
) -> Backtest:
    """Rolling-origin backtest over ``[start, end)``.

    Parameters
    ----------
    events
        All events (training history and test period).
    surface
        Cells to forecast on.
    predictors
        Predictor objects bound to ``surface`` (refitted at every origin).
    start, end
        Test period (days since the epoch); origins are ``start, start + step, ...`` while the
        forecast window ends by ``end`` (:func:`~citywatch.forecast.surface.forecast_periods`).
    horizon_days, step_days
        Forecast length and origin spacing (default: the horizon).
    areas
        Area label per cell and area names for the audit (default: :func:`block_areas`).
    coverages
        Area shares at which hit rate, PAI and PEI are reported.
    audit_events
        The incidents whose shares per area the audit sets against the flagged shares
        (default: ``events``; the pipeline leaves out what police find on patrol).
    timezone
        The city's time zone: whole-day periods run from local midnight.
    on_progress
        Called with ``(done, total)`` after each origin.
    """
    origins, ends = forecast_periods(start, end, horizon_days, step_days or horizon_days, timezone)
    if len(origins) == 0:
        raise ValidationError("the test period is shorter than one forecast horizon")
    names = [p.name for p in predictors]
    if len(set(names)) != len(names):
        raise ValidationError("each predictor may appear once")
    label, area_names = areas if areas is not None else block_areas(surface)
    cells = surface.assign(events.xy)
    audit = events if audit_events is None else audit_events
    audit_cells = surface.assign(audit.xy)
    measure = surface.measure
    covs = np.asarray(coverages)
    n_p, n_k = len(predictors), len(origins)
    captured = np.zeros((n_p, n_k, len(covs)))
    best = np.zeros((n_k, len(covs)))
    curves = np.zeros((n_p, len(CURVE_POINTS)))
    events_n = np.zeros(n_k)
    flagged = np.zeros((n_p, n_k, len(area_names)))
    incident = np.full((n_k, len(area_names)), np.nan)
    audit_n = 0
    for k, origin in enumerate(origins):
        lo, hi = np.searchsorted(events.t, [origin, ends[k]])
        period = cells[lo:hi]
        period = period[period >= 0]
        observed = np.bincount(period, minlength=len(surface)).astype(np.float64)
        events_n[k] = observed.sum()
        best[k] = capture(observed, measure, observed, covs)
        a_lo, a_hi = np.searchsorted(audit.t, [origin, ends[k]])
        reported = audit_cells[a_lo:a_hi]
        reported = reported[reported >= 0]
        audit_n += len(reported)
        if len(reported):
            per_area = np.bincount(label[reported], minlength=len(area_names))
            incident[k] = per_area / len(reported)
        for p, predictor in enumerate(predictors):
            risk = predictor.fit(events, float(origin)).predict(float(ends[k] - origin))
            captured[p, k] = capture(risk, measure, observed, covs)
            curves[p] += capture(risk, measure, observed, CURVE_POINTS)
            share = selection(risk, measure, AUDIT_COVERAGE) * measure
            flagged[p, k] = np.bincount(label, share, minlength=len(area_names)) / share.sum()
        if on_progress is not None:
            on_progress(k + 1, n_k)
    return Backtest(
        predictors=names,
        origins=origins,
        horizon_days=horizon_days,
        coverages=tuple(float(c) for c in covs),
        events=events_n,
        captured=captured,
        best=best,
        curves=curves,
        area_names=area_names,
        flagged_share=flagged,
        incident_share=incident,
        params={p.name: p.params() for p in predictors},
        timezone=timezone,
        audit_events=audit_n,
    )
