"""Predictors against hand computations on tiny inputs."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from citywatch.errors import InsufficientPrecisionError, ValidationError
from citywatch.forecast.predictors import (
    KDEPredictor,
    NaivePredictor,
    ProspectivePredictor,
    prospective_weights,
)
from citywatch.forecast.surface import Events, grid_surface, require_precision


@pytest.fixture
def grid():  # 4 x 3 cells of 100 m
    return grid_surface(100.0, "local", study_area=shapely.box(0, 0, 399, 299))


def test_grid_cells_and_assignment(grid):
    assert len(grid) == 12 and grid.shape == (3, 4)
    cells = grid.assign(np.array([[5, 5], [150, 5], [399, 299], [-1, 5], [50, 250]]))
    assert cells.tolist() == [0, 1, 11, -1, 8]
    np.testing.assert_allclose(grid.centroids[5], [150, 150])


def test_naive_counts_last_period(grid):
    ev = Events.from_arrays([[5, 5], [5, 6], [150, 150], [350, 250]], [9.2, 9.9, 9.5, 8.0])
    risk = NaivePredictor(grid).fit(ev, 10.0).predict(1.0)
    expected = np.zeros(12)
    expected[0], expected[5] = 2, 1  # the event of day 8 is older than one day
    np.testing.assert_array_equal(risk, expected)
    # A weekly period scaled to a one-day horizon.
    weekly = NaivePredictor(grid, period_days=7).fit(ev, 10.0).predict(1.0)
    assert weekly[11] == pytest.approx(1 / 7)


def test_kde_equals_brute_force_sum(grid):
    rng = np.random.default_rng(4)
    xy = rng.uniform([0, 0], [400, 300], size=(25, 2))
    ev = Events.from_arrays(xy, np.linspace(0, 99, 25))
    model = KDEPredictor(grid, window_days=100.0, bw_method=0.5).fit(ev, 100.0)
    risk = model.predict(2.0)
    cov = np.cov(xy.T) * 0.5**2  # SciPy's kernel covariance = data covariance x factor^2
    inv, det = np.linalg.inv(cov), np.linalg.det(cov)
    brute = np.zeros(len(grid))
    for c, centre in enumerate(grid.centroids):
        for p in xy:
            d = centre - p
            brute[c] += np.exp(-0.5 * d @ inv @ d) / (2 * np.pi * np.sqrt(det))
    brute = brute / len(xy) * grid.measure * (25 / 100.0) * 2.0
    np.testing.assert_allclose(risk, brute, rtol=1e-10)


def test_kde_without_enough_events_has_no_information(grid):
    ev = Events.from_arrays([[5, 5]], [1.0])
    assert not KDEPredictor(grid).fit(ev, 2.0).predict(1.0).any()


def test_prospective_weights_by_hand():
    d = np.array([0.0, 1.0, 2.0, 3.0, 1.0])
    w = np.array([0.0, 0.0, 1.0, 0.0, 8.0])
    np.testing.assert_allclose(prospective_weights(d, w, 2.0, 8), [1.0, 0.5, 1 / 6, 0.0, 0.0])


def test_prospective_risk_by_hand(grid):
    # One event in cell 0 three days old (week 0), one in cell 5 ten days old (week 1).
    ev = Events.from_arrays([[10, 10], [160, 140]], [97.0, 90.0])
    risk = ProspectivePredictor(grid, bandwidth_m=150.0, weeks=2).fit(ev, 100.0).predict(1.0)
    expected = np.zeros(12)
    # event 1 (cell 0, centre 50,50): itself d=0 -> 1; cells 1 and 4 d=1 -> 1/2;
    # cell 5 d=sqrt(2) -> 1/(1+sqrt 2) (within 1.5 cells).
    expected[0] += 1.0
    expected[[1, 4]] += 0.5
    expected[5] += 1 / (1 + np.sqrt(2))
    # event 2 (cell 5, centre 150,150, week 1 -> factor 1/2).
    expected[5] += 0.5
    expected[[1, 4, 6, 9]] += 0.5 * 0.5
    expected[[0, 2, 8, 10]] += 0.5 / (1 + np.sqrt(2))
    np.testing.assert_allclose(risk, expected)


def test_predict_before_fit_and_bad_bandwidth(grid):
    with pytest.raises(ValidationError, match="fit"):
        NaivePredictor(grid).predict(1.0)
    with pytest.raises(ValidationError):
        ProspectivePredictor(grid, bandwidth_m=0).fit(Events.from_arrays([[1, 1]], [0.0]), 1.0)


def test_precision_refusals():
    day = Events.from_arrays([[0, 0]], [0.0], precision="day")
    month = Events.from_arrays([[0, 0]], [0.0], precision="month")
    require_precision(day, 1.0)
    with pytest.raises(InsufficientPrecisionError, match="time-of-day"):
        require_precision(day, 1.0, time_of_day=True)
    with pytest.raises(InsufficientPrecisionError, match=r"8-hour horizon\) needs exact times"):
        require_precision(day, 8 / 24)
    with pytest.raises(InsufficientPrecisionError, match="month precision"):
        require_precision(month, 7.0)
    # Weekly prospective weights need at least day precision.
    with pytest.raises(InsufficientPrecisionError):
        grid = grid_surface(100.0, "local", points=np.array([[0.0, 0.0]]))
        ProspectivePredictor(grid).fit(month, 100.0).predict(30.0)
