"""The demo feed's calls: the simulator's generator, scaled and released by the clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from citywatch.city import CityPack
from citywatch.demo.calls import CALL_MIX, SimulatedCalls, scaled_model
from citywatch.errors import ValidationError
from citywatch.incidents.taxonomy import load_taxonomy
from citywatch.sim.demand import fit_demand
from tests.web.conftest import node_history


def test_scaling_keeps_the_weekly_profile(manhattan: CityPack) -> None:
    history = node_history(manhattan)
    # Every third incident at 02:00 local: a profile with a strong peak.
    history.loc[::3, "received_at"] = pd.Timestamp("2025-06-04T06:00Z")
    plain = fit_demand(history, manhattan.timezone)
    model = scaled_model(history, manhattan.timezone, 40.0)
    assert model.hourly_total.mean() == pytest.approx(40.0)
    some = plain.hourly_total > 0
    assert (model.hourly_total[~some] == 0).all()
    ratio = model.hourly_total[some] / plain.hourly_total[some]
    np.testing.assert_allclose(ratio, ratio[0])
    assert np.argmax(model.hourly_total) == 2 * 24 + 2  # Wednesday 02:00 in New York (EDT)
    with pytest.raises(ValidationError):
        scaled_model(history, manhattan.timezone, 0.0)


def test_calls_are_released_when_their_time_comes(manhattan: CityPack) -> None:
    history = node_history(manhattan)
    start = datetime(2026, 3, 2, 5, tzinfo=UTC)  # Monday 00:00 in New York
    calls = SimulatedCalls(scaled_model(history, manhattan.timezone, 20.0), start, seed=9)
    released = []
    now = start
    end = start + timedelta(hours=48)
    while now < end:
        now += timedelta(seconds=60)
        batch = calls.due(now)
        assert all(now - timedelta(seconds=60) < c.received_at <= now for c in batch)
        released += batch
    times = [c.received_at for c in released]
    assert times == sorted(times)
    # Poisson count over 48 h: mean = the integral of the rate, variance the same.  The stream
    # starts at hour 0 of the week (Monday 00:00 local), so the first 48 hours of the model.
    expected = float(calls.model.hourly_total[:48].sum())
    assert expected == pytest.approx(20.0 * 48, rel=0.25)
    assert abs(len(released) - expected) < 4 * np.sqrt(expected)
    # Locations are those of the historical incidents (the generator's pools).
    known = set(zip(history["lon"].round(9), history["lat"].round(9), strict=True))
    assert all((round(c.lon, 9), round(c.lat, 9)) in known for c in released)


def test_categories_follow_the_call_mix(manhattan: CityPack) -> None:
    start = datetime(2026, 3, 2, 5, tzinfo=UTC)
    model = scaled_model(node_history(manhattan), manhattan.timezone, 1000)
    calls = SimulatedCalls(model, start, 1)
    taken = calls.backlog(3000)
    assert len(taken) == 3000  # 1000/h over the 6 h before the start: about 6000 on average
    assert all(c.received_at < start for c in taken)
    # The backlog does not use up the live stream.
    fresh = SimulatedCalls(calls.model, start, 1)
    later = start + timedelta(minutes=30)
    assert [c.received_at for c in calls.due(later)] == [c.received_at for c in fresh.due(later)]
    shares = pd.Series([c.category for c in taken]).value_counts(normalize=True)
    total = sum(CALL_MIX.values())
    for code, weight in CALL_MIX.items():
        assert shares[code] == pytest.approx(weight / total, abs=0.03)
    assert set(CALL_MIX) <= set(load_taxonomy().categories)
    assert calls.rate_per_hour == pytest.approx(1000)
