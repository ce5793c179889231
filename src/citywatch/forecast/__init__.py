"""Hotspot forecasting and its honest evaluation (issue 13, section 3).

Surfaces (:mod:`.surface`): a square grid in a metric CRS or a pack's street segments.
Predictors (:mod:`.predictors`, :mod:`.etas`): naive (last period), retrospective KDE,
prospective hotspotting (Bowers, Johnson & Pease 2004) and grid ETAS fitted by EM (Mohler et
al. 2011, 2015); each is ``fit(events, until) -> predict(horizon) -> risk per cell``.
Evaluation (:mod:`.evaluate`): rolling-origin backtests with hit rate, PAI and PEI.
Feedback-loop audit (:mod:`.feedback`): the urn model of Ensign et al. (2018).
"""

from citywatch.forecast.etas import EtasParams, EtasPredictor, em_fit, simulate_etas
from citywatch.forecast.evaluate import COVERAGES, Backtest, backtest, capture, selection
from citywatch.forecast.feedback import UPDATE_RULES, UrnRun, simulate_urn
from citywatch.forecast.predictors import (
    KDEPredictor,
    NaivePredictor,
    Predictor,
    ProspectivePredictor,
)
from citywatch.forecast.surface import (
    Events,
    Surface,
    events_from_frame,
    grid_surface,
    require_precision,
    segment_surface,
)

__all__ = [
    "COVERAGES",
    "UPDATE_RULES",
    "Backtest",
    "EtasParams",
    "EtasPredictor",
    "Events",
    "KDEPredictor",
    "NaivePredictor",
    "Predictor",
    "ProspectivePredictor",
    "Surface",
    "UrnRun",
    "backtest",
    "capture",
    "em_fit",
    "events_from_frame",
    "grid_surface",
    "require_precision",
    "segment_surface",
    "selection",
    "simulate_etas",
    "simulate_urn",
]
