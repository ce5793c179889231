"""Grid ETAS: EM recovers simulated parameters; the fast EM equals the naive one; prediction."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from scipy.stats import norm

from citywatch.forecast.etas import EtasParams, EtasPredictor, em_fit, simulate_etas, trigger_pairs
from citywatch.forecast.surface import Events, grid_surface


def _simulated(days: float, seed: int):
    grid = grid_surface(200.0, "local", study_area=shapely.box(0, 0, 2000, 2000))
    mu = np.random.default_rng(seed).gamma(2.0, 0.01, len(grid))  # about 2 a day in all
    ev = simulate_etas(grid, mu, theta=0.4, omega=0.2, sigma=50.0, days=days, seed=seed)
    cells = grid.assign(ev.xy)
    inside = cells >= 0
    return grid, mu, Events(ev.xy[inside], ev.t[inside], "exact", "local"), cells[inside]


def test_em_recovers_known_parameters():
    grid, mu, ev, cells = _simulated(730.0, seed=11)
    fit = em_fit(ev, cells, grid.measure, 0.0, 730.0, max_dist_m=500.0)
    assert fit.converged
    assert fit.theta == pytest.approx(0.4, abs=0.06)
    assert fit.omega == pytest.approx(0.2, rel=0.2)
    assert fit.sigma == pytest.approx(50.0, rel=0.15)
    assert fit.mu.sum() == pytest.approx(mu.sum(), rel=0.15)
    # The background is located: cells' fitted rates follow the true ones.
    assert np.corrcoef(fit.mu, mu)[0, 1] > 0.8


def test_fast_em_equals_naive_all_pairs_em():
    grid, _, ev, cells = _simulated(90.0, seed=5)
    fast = em_fit(ev, cells, grid.measure, 0.0, 90.0, max_days=30.0, max_dist_m=400.0)
    slow = em_fit(ev, cells, grid.measure, 0.0, 90.0, max_days=30.0, max_dist_m=400.0, dense=True)
    assert fast.iterations == slow.iterations
    np.testing.assert_allclose(
        [fast.theta, fast.omega, fast.sigma], [slow.theta, slow.omega, slow.sigma], rtol=1e-9
    )
    np.testing.assert_allclose(fast.mu, slow.mu, rtol=1e-9, atol=1e-15)


def test_trigger_pairs_by_hand():
    t = np.array([0.0, 1.0, 1.0, 5.0])
    xy = np.array([[0, 0], [3, 4], [100, 0], [0, 0]], dtype=float)
    pi, pj, dt, d2 = trigger_pairs(t, xy, 4.5, 10.0)
    # (0,1): dt 1, d 5; (1,3): dt 4, d 5; (0,3) dt 5 > 4.5; equal times never pair; 2 too far.
    assert sorted(zip(pi.tolist(), pj.tolist(), dt.tolist(), d2.tolist(), strict=True)) == [
        (0, 1, 1.0, 25.0),
        (1, 3, 4.0, 25.0),
    ]


def test_prediction_integrates_the_intensity_by_hand():
    grid = grid_surface(100.0, "local", study_area=shapely.box(0, 0, 299, 299))
    ev = Events.from_arrays([[130.0, 160.0]], [9.0])
    model = EtasPredictor(grid, max_days=30.0)
    model.fit(ev, 10.0)  # then replace the fitted values with known ones
    mu = np.linspace(0.01, 0.09, 9)
    model.fitted = EtasParams(mu, theta=0.5, omega=0.25, sigma=40.0)
    risk = model.predict(2.0)
    due = 0.5 * (np.exp(-0.25 * 1.0) - np.exp(-0.25 * 3.0))
    for cell, (cx, cy) in enumerate(grid.centroids):
        mass = (norm.cdf(cx + 50, 130, 40) - norm.cdf(cx - 50, 130, 40)) * (
            norm.cdf(cy + 50, 160, 40) - norm.cdf(cy - 50, 160, 40)
        )
        assert risk[cell] == pytest.approx(mu[cell] * 2.0 + due * mass, rel=1e-9, abs=1e-15)


def test_log_likelihood_by_hand():
    # Two events 1 day and 3 m apart in one 100 m cell, observed on [0, 2).
    grid = grid_surface(100.0, "local", study_area=shapely.box(0, 0, 99, 99))
    ev = Events.from_arrays([[10.0, 10.0], [13.0, 14.0]], [0.5, 1.5])
    cells = grid.assign(ev.xy)
    init = EtasParams(np.array([0.4]), theta=0.3, omega=0.5, sigma=20.0)
    fit = em_fit(ev, cells, grid.measure, 0.0, 2.0, init=init, max_iter=1)
    p = EtasParams(fit.mu, fit.theta, fit.omega, fit.sigma)  # the parameters after one step
    bg = p.mu[0] / 10_000.0
    kernel = p.theta * p.omega * np.exp(-p.omega) * np.exp(-25.0 / (2 * p.sigma**2))
    lam = [bg, bg + kernel / (2 * np.pi * p.sigma**2)]
    compensator = p.mu[0] * 2.0 + p.theta * (
        (1 - np.exp(-p.omega * 1.5)) + (1 - np.exp(-p.omega * 0.5))
    )
    assert fit.log_likelihood == pytest.approx(np.log(lam).sum() - compensator, rel=1e-12)


@pytest.fixture(scope="module")
def chicago_window():
    from citywatch.forecast.pipeline import study_from_dataset
    from citywatch.forecast.surface import to_days

    study = study_from_dataset("chicago-southside", cell_m=250.0)
    until = to_days("2016-12-23")
    win = study.events.between(until - 365.0, until)
    cells = study.surface.assign(win.xy)
    inside = cells >= 0
    win = Events(win.xy[inside], win.t[inside], win.precision, win.crs)
    return win, cells[inside], study.surface.measure, until


def test_cold_fit_keeps_the_likeliest_of_separate_optima(chicago_window):
    win, cells, measure, until = chicago_window
    assert len(win) == 970
    mu = 0.5 * np.bincount(cells, minlength=len(measure)) / 365.0
    # From a 100 m kernel EM settles on a wide kernel with almost no triggering ...
    wide = em_fit(win, cells, measure, until - 365.0, until, init=EtasParams(mu, 0.5, 1 / 7, 100.0))
    assert wide.sigma == pytest.approx(97.1, abs=0.1) and wide.theta < 0.01
    assert wide.log_likelihood == pytest.approx(-16502.7, abs=0.1)
    # ... from 10 m on repeats at the same point, 38 days later: 210 log-units likelier.
    cold = em_fit(win, cells, measure, until - 365.0, until)
    assert cold.sigma == 1.0 and cold.theta == pytest.approx(0.0489, abs=1e-4)
    assert 1.0 / cold.omega == pytest.approx(38.0, abs=0.05)
    assert cold.log_likelihood == pytest.approx(-16292.1, abs=0.1)
    assert cold.converged
