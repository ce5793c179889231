"""The demo feed's call model: hour profile, Poisson counts, locations, categories."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from citywatch.city.network import haversine_m
from citywatch.errors import DataError, ValidationError
from citywatch.incidents.taxonomy import load_taxonomy
from citywatch.web.demand import CALL_MIX, JITTER_M, HistoricDemand


def frame(times: list[str], precision: str = "exact") -> pd.DataFrame:
    n = len(times)
    return pd.DataFrame(
        {
            "received_at": pd.to_datetime(times, utc=True),
            "time_precision": [precision] * n,
            "lon": np.linspace(-73.99, -73.95, n),
            "lat": np.linspace(40.72, 40.80, n),
        }
    )


def test_hour_profile_is_counted_in_the_city_time_zone() -> None:
    # 13:30 UTC is 09:30 in New York in summer (EDT) and 08:30 in winter (EST).
    f = frame(["2025-07-01T13:30Z", "2025-07-02T13:30Z", "2025-01-10T13:30Z", "2025-01-10T04:10Z"])
    d = HistoricDemand.from_frame(f, "America/New_York", rate_per_hour=10)
    expected = np.zeros(24)
    np.add.at(expected, [9, 9, 8, 23], 0.25)
    np.testing.assert_allclose(d.hour_share, expected)
    # 24 × share: twice the mean rate at 09:00, nothing at noon.
    assert d.rate_at(datetime(2025, 7, 3, 13, 5, tzinfo=UTC)) == pytest.approx(10 * 24 * 0.5)
    assert d.rate_at(datetime(2025, 7, 3, 16, 0, tzinfo=UTC)) == 0.0


def test_day_precision_incidents_are_left_out_of_the_hour_profile() -> None:
    f = pd.concat([frame(["2025-07-01T13:30Z"]), frame(["2025-07-01T04:00Z"] * 5, "day")])
    d = HistoricDemand.from_frame(f, "America/New_York", rate_per_hour=1)
    assert d.hour_share[9] == 1.0
    assert len(d.lon) == 6  # every located incident is a possible call location
    with pytest.raises(DataError):
        HistoricDemand.from_frame(frame(["2025-07-01T04:00Z"], "day"), "UTC", 1)


def test_call_counts_are_poisson_with_the_hourly_rate() -> None:
    f = frame([f"2025-07-01T{h:02d}:00Z" for h in range(24)])
    d = HistoricDemand.from_frame(f, "UTC", rate_per_hour=30)
    rng = np.random.default_rng(11)
    start = datetime(2026, 5, 1, 10, tzinfo=UTC)
    counts = np.array(
        [len(d.calls(rng, start + timedelta(seconds=2 * i), 2.0)) for i in range(20_000)]
    )
    # 20 000 ticks of 2 s = 11.1 h at 30/h: mean 1/60 per tick; Poisson variance equals mean.
    mean = 30 * 2 / 3600
    assert counts.mean() == pytest.approx(mean, abs=4 * np.sqrt(mean / len(counts)))
    assert counts.var() == pytest.approx(mean, rel=0.15)


def test_locations_jitter_and_categories() -> None:
    f = frame(["2025-07-01T13:30Z"])
    d = HistoricDemand.from_frame(f, "UTC", rate_per_hour=1)
    rng = np.random.default_rng(5)
    at = datetime(2026, 5, 1, tzinfo=UTC)
    calls = [d.one(rng, at) for _ in range(4000)]
    dist = haversine_m(d.lon[0], d.lat[0], [c.lon for c in calls], [c.lat for c in calls])
    # The offset is a 2-D Gaussian of sd JITTER_M per axis: its length is Rayleigh distributed,
    # with mean sd × sqrt(pi/2).
    assert dist.mean() == pytest.approx(JITTER_M * np.sqrt(np.pi / 2), rel=0.05)
    shares = pd.Series([c.category for c in calls]).value_counts(normalize=True)
    total = sum(CALL_MIX.values())
    for code, weight in CALL_MIX.items():
        assert shares[code] == pytest.approx(weight / total, abs=0.03)
    taxonomy = load_taxonomy()
    assert set(CALL_MIX) <= set(taxonomy.categories)
    assert all(c.received_at == at for c in calls)


def test_invalid_models_are_refused() -> None:
    lon = np.array([-73.98])
    with pytest.raises(ValidationError):
        HistoricDemand(lon, lon * 0 + 40.7, np.full(24, 0.5), "UTC", 1.0)
    with pytest.raises(ValidationError):
        HistoricDemand(lon, lon * 0 + 40.7, np.full(24, 1 / 24), "UTC", 0.0)
    with pytest.raises(DataError):
        HistoricDemand(lon[:0], lon[:0], np.full(24, 1 / 24), "UTC", 1.0)
