"""Hit rate, PAI, PEI and the rolling-origin backtest against hand computations."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from scipy import stats

from citywatch.forecast.evaluate import backtest, capture, mean_ci, selection
from citywatch.forecast.predictors import NaivePredictor
from citywatch.forecast.surface import Events, grid_surface

RISK = np.array([5.0, 4.0, 3.0, 2.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0])
OBSERVED = np.array([1.0, 0.0, 2.0, 0.0, 0.0, 3.0, 0.0, 0.0, 0.0, 4.0])
EQUAL = np.ones(10)


def test_capture_hit_rate_pai_pei_by_hand():
    # 20 % of ten equal cells = the two riskiest: 1 + 0 of the 10 events.
    assert capture(RISK, EQUAL, OBSERVED, 0.2) == pytest.approx(1.0)
    hit_rate = 1.0 / 10.0
    pai = hit_rate / 0.2
    # The best two cells hold 4 + 3 events, so PEI = 1 / 7.
    best = capture(OBSERVED, EQUAL, OBSERVED, 0.2)
    assert (hit_rate, pai, 1.0 / best) == pytest.approx((0.1, 0.5, 1 / 7))
    np.testing.assert_allclose(capture(RISK, EQUAL, OBSERVED, [0.0, 0.3, 1.0]), [0.0, 3.0, 10.0])


def test_ties_are_shared_not_broken_in_anyones_favour():
    # 60 % = the five ranked cells + one of the five zero-risk cells, which hold 7 events:
    # in expectation 7 / 5 of them.
    assert capture(RISK, EQUAL, OBSERVED, 0.6) == pytest.approx(3.0 + 7.0 / 5.0)
    # A partial cell counts in proportion: 15 % = cell 0 and half of cell 1.
    assert capture(OBSERVED, EQUAL, OBSERVED, 0.15) == pytest.approx(4.0 + 1.5)
    share = selection(RISK, EQUAL, 0.6)
    np.testing.assert_allclose(share, [1, 1, 1, 1, 1, 0.2, 0.2, 0.2, 0.2, 0.2])


def test_unequal_measures_rank_by_density():
    risk = np.array([2.0, 3.0])  # per metre: 1.0 and 0.5
    measure = np.array([2.0, 6.0])
    observed = np.array([1.0, 6.0])
    # 25 % of 8 m = cell 0 (2 m, denser); 50 % = cell 0 + 2 of cell 1's 6 m (a third of it).
    np.testing.assert_allclose(capture(risk, measure, observed, [0.25, 0.5]), [1.0, 3.0])


def test_mean_ci_is_the_t_interval():
    v = np.array([0.1, 0.3, 0.2, np.nan, 0.6])
    ci = mean_ci(v)
    half = stats.t.ppf(0.975, 3) * np.std([0.1, 0.3, 0.2, 0.6], ddof=1) / 2.0
    assert ci == pytest.approx({"mean": 0.3, "low": 0.3 - half, "high": 0.3 + half, "n": 4})
    assert mean_ci(np.array([np.nan]))["n"] == 0


def test_backtest_by_hand():
    grid = grid_surface(100.0, "local", study_area=shapely.box(0, 0, 199, 99))  # 2 cells
    # Day 0: two events in cell 0; day 1: one in cell 1, one in cell 0; day 2: one in cell 1.
    ev = Events.from_arrays(
        [[10, 10], [20, 20], [150, 50], [30, 30], [160, 60]], [0.1, 0.5, 1.2, 1.7, 2.3]
    )
    result = backtest(ev, grid, [NaivePredictor(grid)], start=1.0, end=3.0, coverages=(0.5,))
    # Origin 1: yesterday favoured cell 0 -> 1 of 2 events; origin 2: yesterday tied (1-1),
    # so half of cell 1's single event is expected.
    np.testing.assert_allclose(result.captured[0, :, 0], [1.0, 0.5])
    np.testing.assert_allclose(result.events, [2.0, 1.0])
    np.testing.assert_allclose(result.best[:, 0], [1.0, 1.0])
    row = result.summary()[0]
    assert row["hit_rate"]["mean"] == pytest.approx((0.5 + 0.5) / 2)
    assert row["pai"]["mean"] == pytest.approx(1.0)
    assert row["hit_rate_pooled"] == pytest.approx(1.5 / 3)
    audit = result.area_audit()
    assert {r["month"] for r in audit} == {"1970-01"}


def test_area_audit_counts_the_audit_events_only():
    grid = grid_surface(100.0, "local", study_area=shapely.box(0, 0, 199, 99))  # 2 cells
    # Cell 0 holds two patrol finds a day, cell 1 one reported incident on day 1.
    ev = Events.from_arrays([[10, 10], [20, 20], [150, 50], [30, 30]], [0.1, 1.2, 1.5, 1.6])
    reported = Events.from_arrays([[150, 50]], [1.5])
    areas = (np.array([0, 1]), ["west", "east"])
    kw = {"start": 1.0, "end": 2.0, "areas": areas, "coverages": (0.5,)}
    every = backtest(ev, grid, [NaivePredictor(grid)], **kw)
    audited = backtest(ev, grid, [NaivePredictor(grid)], audit_events=reported, **kw)
    np.testing.assert_allclose(every.incident_share, [[2 / 3, 1 / 3]])
    np.testing.assert_allclose(audited.incident_share, [[0.0, 1.0]])
    # The hit rates still count every incident.
    np.testing.assert_allclose(audited.events, every.events)
    assert (every.audit_events, audited.audit_events) == (3, 1)
    assert audited.as_dict()["area_audit_events"] == 1
