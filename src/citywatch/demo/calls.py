"""Where and when the demo feed's simulated calls come from: the simulator's incident generator.

The simulator (:mod:`citywatch.sim.demand`) fits a non-homogeneous Poisson process by patrol zone
and hour of the week to the real incidents in the store, and its endless generator places each
call at the location of a real incident of the zone.  The demo scales the fitted rates to a
watchable number of calls per hour (the real Manhattan shootings are a few a week) and releases
each call when the wall clock reaches its time.

The category of a demo call is drawn from :data:`CALL_MIX`, which is illustrative, not an
estimate: the bundled Manhattan incidents are all shootings, and a demo made only of priority-1
shootings would not show the dispatcher's work.  The priority is the category's default.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from citywatch.errors import ValidationError
from citywatch.incidents.record import Incident
from citywatch.sim.demand import DemandModel, fit_demand, generate_incidents

__all__ = ["CALL_MIX", "DemoCall", "SimulatedCalls", "scaled_model"]

#: Category codes of the demo's calls and their relative weights (illustrative, see above).
CALL_MIX: dict[str, float] = {
    "disturbance": 0.18,
    "theft": 0.16,
    "assault": 0.12,
    "suspicious": 0.12,
    "traffic_accident": 0.10,
    "robbery": 0.08,
    "burglary": 0.07,
    "assistance": 0.07,
    "criminal_damage": 0.05,
    "shooting": 0.05,
}

#: How far back the backlog of calls waiting at the start is drawn from.
BACKLOG_WINDOW = timedelta(hours=6)


@dataclass(frozen=True)
class DemoCall:
    """One simulated call: where, what, when."""

    lon: float
    lat: float
    category: str
    received_at: datetime


def scaled_model(history: pd.DataFrame, timezone: str, rate_per_hour: float) -> DemandModel:
    """The simulator's demand model of ``history``, scaled to ``rate_per_hour`` on average.

    Parameters
    ----------
    history : pandas.DataFrame
        Located incidents with exact times, ``station`` and ``zone`` (as from
        :func:`citywatch.sim.demand.load_history`).
    timezone : str
        The city's time zone.
    rate_per_hour : float
        Mean calls per hour over a whole week.

    Returns
    -------
    DemandModel
        Rates by zone and hour of week whose mean total is ``rate_per_hour``; the weekly and
        spatial profile is the fitted one.
    """
    if not rate_per_hour > 0:
        raise ValidationError("the call rate must be positive", field="rate_per_hour")
    model = fit_demand(history, timezone)
    natural = float(model.hourly_total.mean())
    return replace(model, rate=model.rate * (rate_per_hour / natural))


class SimulatedCalls:
    """The calls of an endless generated stream, released as the clock reaches them.

    Parameters
    ----------
    model : DemandModel
        Fitted (and scaled) demand.
    start : datetime
        Start of the stream (timezone-aware).
    seed : int
        Seed of the stream and of the categories.
    """

    def __init__(self, model: DemandModel, start: datetime, seed: int) -> None:
        self.model = model
        self.start = start
        self.seed = seed
        self._stream: Iterator[Incident] = generate_incidents(model, start, seed=seed)
        self._next: Incident | None = None
        self._rng = np.random.default_rng(seed)
        self._codes = list(CALL_MIX)
        weights = np.array([CALL_MIX[c] for c in self._codes])
        self._p = weights / weights.sum()

    @property
    def rate_per_hour(self) -> float:
        """Mean calls per hour over a week."""
        return float(self.model.hourly_total.mean())

    def _peek(self) -> Incident:
        if self._next is None:
            self._next = next(self._stream)
        return self._next

    def _call(self, incident: Incident) -> DemoCall:
        category = self._codes[int(self._rng.choice(len(self._codes), p=self._p))]
        assert incident.lon is not None and incident.lat is not None  # pool rows are located
        return DemoCall(incident.lon, incident.lat, category, incident.received_at)

    def due(self, now: datetime) -> list[DemoCall]:
        """Every call of the stream received at or before ``now`` not yet released."""
        out = []
        while self._peek().received_at <= now:
            out.append(self._call(self._peek()))
            self._next = None
        return out

    def backlog(self, n: int) -> list[DemoCall]:
        """Up to ``n`` calls of the hours before the start, so that the demo does not open on an
        empty map (a separate stream: the live one keeps all its calls)."""
        earlier = generate_incidents(
            self.model, self.start - BACKLOG_WINDOW, self.start, seed=self.seed + 1
        )
        return [self._call(incident) for incident in itertools.islice(earlier, n)]
