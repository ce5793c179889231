"""The single-threshold Knox test against an O(n^2) brute force on real Chicago burglaries."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import pdist
from scipy.stats import poisson

from citywatch.analytics.knox import knox, pairs_closer_in_time, spatial_pairs
from citywatch.analytics.nearrepeat import Bands, near_repeat
from citywatch.errors import ValidationError
from tests.analytics import nrc


def brute_force(xy: np.ndarray, t: np.ndarray, distance: float, days: float) -> tuple[int, ...]:
    """(statistic, n_space, n_time) from every pair's distance and time difference."""
    close_space = pdist(xy) <= distance
    close_time = pdist(t[:, None].astype(float), "cityblock") <= days
    return int((close_space & close_time).sum()), int(close_space.sum()), int(close_time.sum())


@pytest.fixture(scope="module")
def events() -> tuple[np.ndarray, np.ndarray]:
    xy, days = nrc.year(2016)
    return xy[:1000], days[:1000]


def test_knox_equals_brute_force_on_real_events(events: tuple[np.ndarray, np.ndarray]) -> None:
    xy, days = events
    result = knox(xy, days, 400.0, 14.0, iterations=99, seed=4)
    statistic, n_space, n_time = brute_force(xy, days, 400.0, 14.0)
    assert (result.statistic, result.n_space, result.n_time) == (statistic, n_space, n_time)
    assert result.pairs == 1000 * 999 // 2
    assert result.expected == pytest.approx(n_space * n_time / result.pairs)
    assert result.p_poisson == pytest.approx(1 - poisson.cdf(statistic - 1, result.expected))
    # the permutation statistics, recounted by brute force with the same shuffles
    rng = np.random.default_rng(4)
    permuted = [brute_force(xy, days[rng.permutation(1000)], 400.0, 14.0)[0] for _ in range(99)]
    assert result.permuted_mean == pytest.approx(np.mean(permuted))
    assert result.p_permutation == pytest.approx((1 + sum(p >= statistic for p in permuted)) / 100)


def test_burglaries_interact_in_space_and_time() -> None:
    xy, days = nrc.year(2016)
    result = knox(xy, days, 200.0, 7.0, iterations=99, seed=1)
    # the near-repeat table counts the same pairs by another path: d < 200 m, 0-7 days apart
    # (no pair of these events is exactly 200 m apart, where the two tests' edges differ)
    assert (spatial_pairs(xy, 200.0, "euclidean").distance == 200.0).sum() == 0
    table = near_repeat(xy, days, Bands(200, 1, 8, 1), iterations=1, seed=0).observed
    assert (result.statistic, result.n_space) == (table[:2, 0].sum(), table[:2].sum())
    assert result.ratio == pytest.approx(1.605, abs=0.001)
    assert result.p_permutation == 0.01 and result.p_poisson < 1e-12
    # the permutation mean estimates the same expectation as Knox's formula (SE about 0.3 %)
    assert result.permuted_mean == pytest.approx(result.expected, rel=0.012)


def test_thresholds_are_inclusive_and_times_may_be_fractional() -> None:
    xy = np.array([[0.0, 0.0], [300.0, 0.0], [300.0, 400.0], [5000.0, 0.0]])
    t = np.array([0.0, 2.5, 2.5, 0.25])
    result = knox(xy, t, 300.0, 2.5, iterations=9, seed=0)
    # close in space: only (0, 1), at 300 m exactly; close in time: all six pairs (<= 2.5 d)
    assert result.n_space == 1
    assert result.n_time == 6
    assert result.statistic == 1
    manhattan = knox(xy, t, 700.0, 2.5, metric="manhattan", iterations=9, seed=0)
    assert manhattan.n_space == 3  # (0,1) 300, (0,2) 700, (1,2) 400


def test_pair_time_counts_match_brute_force() -> None:
    t = np.random.default_rng(2).integers(0, 60, size=400).astype(float)
    diffs = pdist(t[:, None], "cityblock")
    limits = np.array([0.0, 1.0, 7.0, 30.0])
    np.testing.assert_array_equal(
        pairs_closer_in_time(t, limits, inclusive=True), [(diffs <= c).sum() for c in limits]
    )
    np.testing.assert_array_equal(
        pairs_closer_in_time(t, limits, inclusive=False), [(diffs < c).sum() for c in limits]
    )


def test_refuses_bad_input() -> None:
    with pytest.raises(ValidationError, match="at least two"):
        knox(np.zeros((1, 2)), np.zeros(1), 100, 1)
    with pytest.raises(ValidationError, match="non-negative"):
        knox(np.zeros((2, 2)), np.zeros(2), -1, 1)
    with pytest.raises(ValidationError, match="2 locations but 3 times"):
        knox(np.zeros((2, 2)), np.zeros(3), 100, 1)


def test_knox_counts_reproduce_an_independent_published_table() -> None:
    """T. Davies's Knox implementation (tobydavies/NearRepeat, notebook "Usage of Knox test")
    published this observed table for the Chicago 2016 burglaries, with right-closed bands
    [0, 0.1], (0.1, 200], (200, 400], (400, 600] m by [0, 7], (7, 14], (14, 21] days.  Its
    cells are differences of our inclusive ``d <= D and t <= T`` statistics."""
    published = [[342, 97, 62], [1892, 1514, 1362], [4145, 3643, 3592], [5805, 5143, 4919]]
    xy, days = nrc.year(2016)
    close = np.array(
        [
            [knox(xy, days, d, t, iterations=1, seed=0).statistic for t in (7, 14, 21)]
            for d in (0.1, 200, 400, 600)
        ]
    )
    cells = np.diff(np.diff(np.pad(close, ((1, 0), (1, 0))), axis=0), axis=1)
    np.testing.assert_array_equal(cells, published)
