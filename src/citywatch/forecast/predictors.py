"""Hotspot predictors: naive (last period), retrospective KDE and prospective hotspotting.

Every predictor is a small object bound to a :class:`~citywatch.forecast.surface.Surface`:
``fit(events, until)`` learns from the events before ``until`` (days since the epoch) and
``predict(horizon)`` returns one risk value per cell for ``[until, until + horizon)``. Risks are
expected counts where the model gives them (naive, KDE on a grid, ETAS) and scores otherwise
(prospective); evaluation only ranks cells by risk per unit measure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Final, Protocol

import numpy as np
from scipy.stats import gaussian_kde

from citywatch.errors import ValidationError
from citywatch.forecast.surface import Events, FloatArray, Surface, near_pairs, require_precision

__all__ = [
    "BJP_BANDWIDTH_M",
    "BJP_BANDWIDTH_WEEKS",
    "KDEPredictor",
    "NaivePredictor",
    "Predictor",
    "ProspectivePredictor",
    "prospective_weights",
]

# Bowers, Johnson & Pease (2004), "Prospective hot-spotting: the future of crime mapping?",
# Brit. J. Criminol. 44(5): 641-658: burglaries within 400 m and the last two months count,
# weighted by 1 / (1 + distance in cells) x 1 / (1 + age in weeks) (their 50 m cells).
BJP_BANDWIDTH_M: Final = 400.0
BJP_BANDWIDTH_WEEKS: Final = 8
_MIN_KDE_EVENTS: Final = 3


class Predictor(Protocol):
    """What the backtest and the CLI need from a predictor."""

    name: ClassVar[str]
    time_of_day: ClassVar[bool]
    surface: Surface

    def fit(self, events: Events, until: float) -> Predictor:
        """Learn from the events before ``until``; returns self."""
        ...

    def predict(self, horizon: float) -> FloatArray:
        """Risk per cell for ``[until, until + horizon)`` (days)."""
        ...

    def params(self) -> dict[str, Any]:
        """Fitted or configured parameters, for reports."""
        ...


@dataclass
class Fitted:
    """State shared by the predictors: the surface and the training events."""

    surface: Surface
    history: Events | None = field(default=None, init=False, repr=False)
    until: float = field(default=float("nan"), init=False)

    def _remember(self, events: Events, until: float) -> Events:
        self.history = events.between(-np.inf, until)
        self.until = float(until)
        return self.history

    def _history(self) -> Events:
        if self.history is None:
            raise ValidationError("call fit() before predict()")
        return self.history


@dataclass
class NaivePredictor(Fitted):
    """Last period's counts: the risk of a cell is its count in ``[until - period, until)``.

    ``period_days`` defaults to the forecast horizon (yesterday for a daily forecast).
    """

    period_days: float | None = None
    name: ClassVar[str] = "naive"
    time_of_day: ClassVar[bool] = False

    def fit(self, events: Events, until: float) -> NaivePredictor:
        """Keep the events before ``until``."""
        self._remember(events, until)
        return self

    def predict(self, horizon: float) -> FloatArray:
        """Counts of the last period, scaled to the horizon."""
        period = self.period_days or horizon
        require_precision(self._history(), period)
        recent = self._history().between(self.until - period, self.until)
        return self.surface.counts(recent) * (horizon / period)

    def params(self) -> dict[str, Any]:
        """The period."""
        return {"period_days": self.period_days}


@dataclass
class KDEPredictor(Fitted):
    """Retrospective kernel density (SciPy's Gaussian KDE) of the last ``window_days``.

    ``bw_method`` is SciPy's: ``"scott"``, ``"silverman"`` or a factor of the data covariance.
    """

    window_days: float = 365.0
    bw_method: str | float = "scott"
    name: ClassVar[str] = "kde"
    time_of_day: ClassVar[bool] = False
    _kde: gaussian_kde | None = field(default=None, init=False, repr=False)
    _rate: float = field(default=0.0, init=False)

    def fit(self, events: Events, until: float) -> KDEPredictor:
        """Fit the density to the events of the window before ``until``."""
        history = self._remember(events, until)
        window = history.between(until - self.window_days, until)
        inside = self.surface.assign(window.xy) >= 0
        pts = window.xy[inside]
        self._rate = len(pts) / self.window_days
        self._kde = None
        if len(pts) >= _MIN_KDE_EVENTS and np.linalg.matrix_rank(np.cov(pts.T)) == 2:
            self._kde = gaussian_kde(pts.T, bw_method=self.bw_method)
        return self

    def predict(self, horizon: float) -> FloatArray:
        """Density at the cell centroids x cell measure x events per day x horizon."""
        self._history()
        if self._kde is None:  # too few (or collinear) events for a density: no information
            return np.zeros(len(self.surface))
        dens = self._kde(self.surface.centroids.T)
        return np.asarray(dens * self.surface.measure * self._rate * horizon, dtype=np.float64)

    def params(self) -> dict[str, Any]:
        """Window and bandwidth."""
        factor = None if self._kde is None else float(self._kde.factor)
        return {"window_days": self.window_days, "bw_method": self.bw_method, "factor": factor}


def prospective_weights(
    distance_cells: FloatArray, age_weeks: FloatArray, bandwidth_cells: float, weeks: int
) -> FloatArray:
    """Bowers, Johnson & Pease (2004) weights: ``1/(1+d) * 1/(1+w)`` inside the bandwidths.

    Parameters
    ----------
    distance_cells
        Distance from the cell to the event's cell, in cell widths.
    age_weeks
        Whole weeks between the event and the forecast origin (0 = the last 7 days).
    bandwidth_cells, weeks
        Events farther than ``bandwidth_cells`` or ``weeks`` old or older weigh 0.
    """
    inside = (distance_cells <= bandwidth_cells) & (age_weeks >= 0) & (age_weeks < weeks)
    return np.where(inside, 1.0 / ((1.0 + distance_cells) * (1.0 + age_weeks)), 0.0)


@dataclass
class ProspectivePredictor(Fitted):
    """Prospective hotspotting (Bowers, Johnson & Pease 2004).

    Risk of a cell = sum over recent events of ``1/(1 + d) x 1/(1 + w)``, with ``d`` the
    distance between the cell's centre and the centre of the event's cell in cell widths (for
    segments: between midpoints, in ``surface.cell_size`` units) and ``w`` the event's age in
    whole weeks; events beyond ``bandwidth_m`` or ``weeks`` weeks do not count.
    """

    bandwidth_m: float = BJP_BANDWIDTH_M
    weeks: int = BJP_BANDWIDTH_WEEKS
    name: ClassVar[str] = "prospective"
    time_of_day: ClassVar[bool] = False

    def fit(self, events: Events, until: float) -> ProspectivePredictor:
        """Keep the events before ``until``."""
        if self.bandwidth_m <= 0 or self.weeks < 1:
            raise ValidationError("prospective bandwidths must be positive")
        self._remember(events, until)
        return self

    def predict(self, horizon: float) -> FloatArray:
        """Sum of the distance- and age-decayed weights of recent events per cell."""
        history = self._history()
        require_precision(history, 7.0)  # ages are counted in weeks
        recent = history.between(self.until - 7.0 * self.weeks, self.until)
        cells = self.surface.assign(recent.xy)
        inside = cells >= 0
        where = self.surface.centroids[cells[inside]]
        age = np.floor((self.until - recent.t[inside]) / 7.0)
        risk = np.zeros(len(self.surface))
        if len(where) == 0:
            return risk
        # A hair over the bandwidth so that cells exactly at it are found despite rounding.
        event, cell, dist = near_pairs(where, self.surface.centroids, self.bandwidth_m * 1.000001)
        w = prospective_weights(
            dist / self.surface.cell_size,
            age[event],
            self.bandwidth_m / self.surface.cell_size,
            self.weeks,
        )
        np.add.at(risk, cell, w)
        return risk

    def params(self) -> dict[str, Any]:
        """Bandwidths."""
        return {"bandwidth_m": self.bandwidth_m, "weeks": self.weeks}
