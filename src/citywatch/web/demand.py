"""Where and when the demo feed's simulated calls come from.

The simulator's seeded synthetic incident generator (:mod:`citywatch.sim`) was not available when
the demo was built, so the feed draws its calls from the real incidents imported into the store:
the hour-of-day profile of the calls (in the city's time zone) scales a base rate, and each call
is placed near a randomly chosen real incident location (a Gaussian offset, so the demo never
replays an exact address).  Arrivals form a non-homogeneous Poisson process whose rate is constant
within each tick, so the number of calls in a tick is Poisson distributed (exact for a
piecewise-constant rate).

The category mix is illustrative, not an estimate: the bundled Manhattan incidents are all
shootings, and a demo made only of priority-1 shootings would not show the dispatcher's work.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt
import pandas as pd

from citywatch.errors import DataError, ValidationError

__all__ = ["CALL_MIX", "DemoCall", "HistoricDemand"]

FloatArray = npt.NDArray[np.float64]

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

#: Standard deviation of the offset from the real incident location, in metres.
JITTER_M = 60.0
_M_PER_DEG_LAT = 111_320.0  # metres per degree of latitude (mean, WGS-84)


@dataclass(frozen=True)
class DemoCall:
    """One simulated call: where, what, when."""

    lon: float
    lat: float
    category: str
    received_at: datetime


@dataclass(frozen=True)
class HistoricDemand:
    """Calls sampled from the hourly and spatial distribution of real incidents.

    Parameters
    ----------
    lon, lat : numpy.ndarray
        Locations of the real incidents (WGS-84).
    hour_share : numpy.ndarray
        Share of the real incidents received in each local hour 0..23 (sums to 1).
    timezone : str
        The city's time zone.
    rate_per_hour : float
        Mean number of calls per hour over a whole day.
    """

    lon: FloatArray
    lat: FloatArray
    hour_share: FloatArray
    timezone: str
    rate_per_hour: float

    def __post_init__(self) -> None:
        if len(self.lon) == 0 or len(self.lon) != len(self.lat):
            raise DataError("the demo feed needs real incident locations to sample from")
        if self.hour_share.shape != (24,) or not np.isclose(self.hour_share.sum(), 1.0):
            raise ValidationError("hour_share must have 24 shares summing to 1")
        if not self.rate_per_hour > 0:
            raise ValidationError("the call rate must be positive", field="rate_per_hour")

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, timezone: str, rate_per_hour: float) -> HistoricDemand:
        """Fit the hour profile and the locations from canonical incident records.

        Incidents without a location are left out of the locations, and incidents whose time is
        known only to the day or month are left out of the hour profile.

        Parameters
        ----------
        frame : pandas.DataFrame
            Canonical incident columns (``received_at``, ``time_precision``, ``lon``, ``lat``).
        timezone : str
            The city's time zone, for the local hour.
        rate_per_hour : float
            Mean calls per hour of the demo.

        Raises
        ------
        DataError
            If no incident has a location or an exact time.
        """
        located = frame.dropna(subset=["lon", "lat"])
        timed = frame[frame["time_precision"] == "exact"]
        if located.empty or timed.empty:
            raise DataError(
                "no imported incident with a location and an exact time to fit the demo feed "
                "(import some with citywatch incidents import)"
            )
        hours = pd.to_datetime(timed["received_at"], utc=True).dt.tz_convert(timezone).dt.hour
        counts = np.bincount(hours.to_numpy(dtype=np.int64), minlength=24).astype(np.float64)
        return cls(
            lon=located["lon"].to_numpy(dtype=np.float64),
            lat=located["lat"].to_numpy(dtype=np.float64),
            hour_share=counts / counts.sum(),
            timezone=timezone,
            rate_per_hour=float(rate_per_hour),
        )

    def rate_at(self, at: datetime) -> float:
        """Calls per hour at time ``at``: the base rate times 24 × the share of its local hour."""
        hour = at.astimezone(ZoneInfo(self.timezone)).hour
        return float(self.rate_per_hour * 24.0 * self.hour_share[hour])

    def calls(self, rng: np.random.Generator, at: datetime, seconds: float) -> list[DemoCall]:
        """The calls received during ``seconds`` starting at ``at`` (rate held constant).

        Parameters
        ----------
        rng : numpy.random.Generator
            Seeded generator.
        at : datetime
            Start of the interval, timezone-aware.
        seconds : float
            Length of the interval.

        Returns
        -------
        list of DemoCall
            Possibly empty; all stamped ``at``.
        """
        n = int(rng.poisson(self.rate_at(at) * seconds / 3600.0))
        return [self.one(rng, at) for _ in range(n)]

    def one(self, rng: np.random.Generator, at: datetime) -> DemoCall:
        """One call at time ``at``: near a random real incident, category from :data:`CALL_MIX`."""
        i = int(rng.integers(len(self.lon)))
        dy, dx = rng.normal(0.0, JITTER_M, 2)
        lat = float(self.lat[i] + dy / _M_PER_DEG_LAT)
        lon = float(self.lon[i] + dx / (_M_PER_DEG_LAT * np.cos(np.radians(self.lat[i]))))
        codes = list(CALL_MIX)
        weights = np.array([CALL_MIX[c] for c in codes])
        category = codes[int(rng.choice(len(codes), p=weights / weights.sum()))]
        return DemoCall(lon=lon, lat=lat, category=category, received_at=at)
