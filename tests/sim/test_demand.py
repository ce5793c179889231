"""Fitted non-homogeneous Poisson demand: rates by brute force, sampling, the generator, DST."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from citywatch.city import CityPack
from citywatch.errors import ValidationError
from citywatch.sim.demand import fit_demand, generate_incidents, load_history
from citywatch.sim.scenario import Demand

NY = "America/New_York"
DATA = Path(__file__).resolve().parents[2] / "data" / "manhattan"


def history(rows: list[tuple[str, str]]) -> pd.DataFrame:
    """Incidents at (local time, zone), with a location per zone."""
    loc = {"A": (-73.99, 40.75), "B": (-73.95, 40.78), "C": (-74.0, 40.71)}
    return pd.DataFrame(
        {
            "id": [f"h{i}" for i in range(len(rows))],
            "received_at": [pd.Timestamp(t, tz=NY).tz_convert("UTC") for t, _ in rows],
            "zone": [z for _, z in rows],
            "station": ["1"] * len(rows),
            "lon": [loc[z][0] for _, z in rows],
            "lat": [loc[z][1] for _, z in rows],
            "category": ["theft"] * len(rows),
            "priority": [3] * len(rows),
        }
    )


ROWS = [
    ("2024-01-01 08:10", "A"),  # Monday 08h: hour of week 8
    ("2024-01-01 08:50", "B"),
    ("2024-01-08 08:30", "A"),
    ("2024-01-03 20:15", "A"),  # Wednesday 20h: 2*24+20 = 68
    ("2024-01-13 23:59", "C"),  # Saturday 23h: 5*24+23 = 143
]
START, END = datetime(2024, 1, 1, tzinfo=ZoneInfo(NY)), datetime(2024, 1, 15, tzinfo=ZoneInfo(NY))


def test_rates_by_brute_force() -> None:
    weeks = 2.0
    full = fit_demand(history(ROWS), NY, model="full", fit_start=START, fit_end=END)
    sep = fit_demand(history(ROWS), NY, model="separable", fit_start=START, fit_end=END, scale=3.0)
    assert full.zones == ("A", "B", "C") and full.weeks == pytest.approx(weeks)
    want = np.zeros((3, 168))
    for t, z in ROWS:
        ts = pd.Timestamp(t)
        want["ABC".index(z), ts.day_of_week * 24 + ts.hour] += 1 / weeks
    np.testing.assert_allclose(full.rate, want)
    # Separable: N/W * p(zone) * p(hour), times the scale.
    n = len(ROWS)
    p_zone = np.array([3, 1, 1]) / n
    p_hour = np.zeros(168)
    p_hour[[8, 68, 143]] = np.array([3, 1, 1]) / n
    np.testing.assert_allclose(sep.rate, 3.0 * n / weeks * np.outer(p_zone, p_hour))
    assert sep.hourly_total.sum() == pytest.approx(3.0 * n / weeks)


def test_sampled_counts_follow_the_rates() -> None:
    model = fit_demand(
        history(ROWS * 20), NY, model="full", fit_start=START, fit_end=END, scale=0.5
    )
    rng = np.random.default_rng(8)
    start = datetime(2024, 4, 1, tzinfo=ZoneInfo(NY))  # a Monday, no DST change for 10 weeks
    batch = model.sample(start, start + timedelta(weeks=10), rng)
    expected = model.rate.sum() * 10  # each hour of the week occurs once a week
    assert abs(len(batch) - expected) < 4 * np.sqrt(expected)
    assert np.all(np.diff(batch.t) >= 0) and batch.t[0] >= 0 and batch.t[-1] < 10 * 7 * 86400
    local = pd.DatetimeIndex(pd.Timestamp(start) + pd.to_timedelta(batch.t, unit="s"))
    how = local.day_of_week * 24 + local.hour
    assert set(how) <= {8, 68, 143}
    # Zone shares within hour 8 of the week: A and B in ratio 2:1 (chi-square, seeded).
    z8 = pd.Series(batch.zone[how == 8]).value_counts()
    obs = [z8.get("A", 0), z8.get("B", 0)]
    assert stats.chisquare(obs, np.array([2, 1]) / 3 * sum(obs)).pvalue > 0.001
    # Locations, categories and priorities come from the zone's historical incidents.
    assert set(zip(batch.zone, batch.lon, strict=True)) <= {
        ("A", -73.99),
        ("B", -73.95),
        ("C", -74.0),
    }


def test_daylight_saving_hours_are_local() -> None:
    model = fit_demand(history(ROWS * 5), NY, model="separable", fit_start=START, fit_end=END)
    start = datetime(2024, 3, 9, tzinfo=ZoneInfo(NY))  # the 10th has 23 hours
    end = datetime(2024, 3, 12, tzinfo=ZoneInfo(NY))
    hours = pd.date_range(
        pd.Timestamp(start).tz_convert("UTC"),
        pd.Timestamp(end).tz_convert("UTC"),
        freq="h",
        inclusive="left",
    )
    assert len(hours) == 71
    local = hours.tz_convert(NY)
    expected = model.rate[:, local.day_of_week * 24 + local.hour].sum()
    counts = [len(model.sample(start, end, np.random.default_rng(s))) for s in range(200)]
    assert np.mean(counts) == pytest.approx(expected, rel=4 / np.sqrt(expected * 200))


def test_generator_is_seeded_ordered_and_endless() -> None:
    model = fit_demand(history(ROWS * 10), NY, fit_start=START, fit_end=END)
    start = datetime(2024, 5, 6, tzinfo=ZoneInfo(NY))
    a = list(generate_incidents(model, start, start + timedelta(days=14), seed=3))
    b = list(generate_incidents(model, start, start + timedelta(days=14), seed=3))
    c = list(generate_incidents(model, start, start + timedelta(days=14), seed=4))
    assert a == b and a != c and len(a) > 10
    times = [i.received_at for i in a]
    assert times == sorted(times) and start <= times[0] and times[-1] < start + timedelta(days=14)
    assert len({i.id for i in a}) == len(a) and all(i.source == "synthetic" for i in a)
    endless = list(itertools.islice(generate_incidents(model, start, seed=3), len(a)))
    assert endless == a  # same chunks, same numbers
    with pytest.raises(ValidationError):
        next(generate_incidents(model, datetime(2024, 5, 6), seed=1))


def test_history_reports_what_it_leaves_out(pack: CityPack) -> None:
    demand = Demand("synthetic", files=((DATA / "nyc_vehicle_thefts_2014.csv", "code"),))
    frame, dropped = load_history(demand, pack)
    assert dropped["outside the city pack"] > 30000  # thefts in the other four boroughs
    assert len(frame) + sum(dropped.values()) == 35746
    assert frame["zone"].notna().all() and frame["station"].notna().all()
