"""Street-segment surfaces of the Manhattan pack."""

from __future__ import annotations

import numpy as np
import pytest

from citywatch.city import load_pack
from citywatch.forecast.etas import EtasParams, EtasPredictor
from citywatch.forecast.predictors import NaivePredictor
from citywatch.forecast.surface import Events, segment_surface


@pytest.fixture(scope="module")
def segments():
    return segment_surface(load_pack("manhattan"))


def test_one_cell_per_street_and_snapping(segments):
    # 9,452 directed edges; a two-way street is one cell.
    assert len(segments) == 7338
    assert segments.measure.min() > 0
    near = segments.centroids[[10, 20]] + np.array([3.0, -4.0])  # 5 m off the midpoints
    far = segments.centroids[:1] + np.array([0.0, 5_000.0])  # in New Jersey or the river
    assert segments.assign(np.vstack([near, far])).tolist()[:2] == [10, 20]
    assert segments.assign(far).tolist() == [-1]


def test_predictors_on_segments(segments):
    xy = segments.centroids[[5, 5, 7]]
    ev = Events.from_arrays(xy, [9.5, 9.6, 9.7], crs=segments.crs)
    naive = NaivePredictor(segments).fit(ev, 10.0).predict(1.0)
    assert naive[5] == 2 and naive[7] == 1 and naive.sum() == 3
    etas = EtasPredictor(segments).fit(ev, 10.0)
    etas.fitted = EtasParams(np.zeros(len(segments)), theta=0.5, omega=1.0, sigma=80.0)
    # Over a very long horizon every offspring still to come falls on some street: theta x the
    # share of each event's offspring not yet born at the origin (ages 0.5, 0.4, 0.3 days).
    risk = etas.predict(1e6)
    assert risk.sum() == pytest.approx(0.5 * np.exp(-np.array([0.5, 0.4, 0.3])).sum(), rel=1e-9)
    assert risk[5] > 0 and risk[7] > 0
