"""Degenerate checks against queueing theory: one place, c identical units, zero travel.

All units wait at one station and every incident is at that station, so travel is exactly zero;
call handling is zero, arrivals are Poisson and on-scene times exponential: the system is an
M/M/c queue (Erlang C) or, with no queue allowed, an M/M/c/c loss system (Erlang B).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from citywatch.city import CityPack
from citywatch.sim.kpis import replication_kpis, summarise
from citywatch.sim.runner import run_scenario
from tests.sim.conftest import make_scenario


def erlang_b(c: int, a: float) -> float:
    """Erlang B by the standard recursion B(0)=1, B(k) = a B(k-1) / (k + a B(k-1))."""
    b = 1.0
    for k in range(1, c + 1):
        b = a * b / (k + a * b)
    return b


def erlang_c(c: int, a: float) -> float:
    """Erlang C from Erlang B: C = c B / (c - a (1 - B))."""
    b = erlang_b(c, a)
    return c * b / (c - a * (1 - b))


def test_formulas_match_published_values() -> None:
    # Textbook values: B(2, 1) = 1/5 and C(2, 1) = 1/3 (M/M/2 at load 1 Erlang); the classic
    # table value B(10, 5) = 0.01838 (e.g. Kleinrock, Queueing Systems vol. 1, ch. 3).
    assert erlang_b(2, 1.0) == pytest.approx(0.2)
    assert erlang_c(2, 1.0) == pytest.approx(1 / 3)
    assert erlang_b(10, 5.0) == pytest.approx(0.01838, abs=5e-6)
    # Brute force: the stationary distribution of the M/M/c birth-death chain.
    c, a = 3, 2.0
    p = np.array(
        [a**k / math.factorial(k) for k in range(c)]
        + [a**c / math.factorial(c) * (a / c) ** j for j in range(2000)]
    )
    p /= p.sum()
    assert p[c:].sum() == pytest.approx(erlang_c(c, a), rel=1e-9)


def _scenario(
    pack: CityPack, *, c: int, rate_per_hour: float, mean_s: float, queue: bool, days: float
):
    station = pack.station("14")
    return make_scenario(
        pack,
        {
            "scenario": {"name": "mmc", "days": days, "replications": 8, "seed": 11},
            "demand": {
                "kind": "poisson",
                "rate_per_hour": rate_per_hour,
                "points": [[station.lon, station.lat]],
            },
            "dispatch": {"policy": "nearest", "queue": queue},
            "on_scene": {"default": {"dist": "exponential", "mean_s": mean_s}},
            "fleet": [{"stations": ["14"], "unit_type": "patrol_car", "count": c}],
        },
    )


def test_erlang_c_waiting_probability_and_mean_wait(pack: CityPack, car_travel: object) -> None:
    c, mean_s, rate = 2, 300.0, 12.0  # offered load a = 12/h * 5 min = 1 Erlang
    a = rate * mean_s / 3600
    res = run_scenario(
        _scenario(pack, c=c, rate_per_hour=rate, mean_s=mean_s, queue=True, days=3), workers=1
    )
    assert (res.incidents["travel_s"] == 0).all()
    kpi = summarise(replication_kpis(res.incidents, res.units))
    pw = erlang_c(c, a)
    wq = pw / (c / mean_s - rate / 3600)  # mean wait in the queue, Erlang C / (c mu - lambda)
    lo, hi = kpi.loc["share_waited", ["ci_low", "ci_high"]]
    assert lo <= pw <= hi
    lo, hi = kpi.loc["mean_queue_wait_s", ["ci_low", "ci_high"]]
    assert lo <= wq <= hi
    # The interval is informative, not vacuous: about +-0.04 around 1/3 and +-25 s around 100 s.
    assert kpi.loc["share_waited", "ci_high"] - kpi.loc["share_waited", "ci_low"] < 0.1
    assert hi - lo < 60
    # Utilisation of the units is a / c.
    lo, hi = kpi.loc["utilisation", ["ci_low", "ci_high"]]
    assert lo <= a / c <= hi


def test_erlang_b_loss_probability(pack: CityPack, car_travel: object) -> None:
    c, mean_s, rate = 2, 300.0, 12.0
    a = rate * mean_s / 3600
    res = run_scenario(
        _scenario(pack, c=c, rate_per_hour=rate, mean_s=mean_s, queue=False, days=3), workers=1
    )
    kpi = summarise(replication_kpis(res.incidents, res.units))
    lo, hi = kpi.loc["share_unanswered", ["ci_low", "ci_high"]]
    assert lo <= erlang_b(c, a) <= hi
    assert hi - lo < 0.08
    lost = res.incidents[res.incidents["status"] == "unanswered"]
    assert (lost["unanswered_reason"] == "no unit available and no queue").all()
    assert not res.incidents["waited"].any()
