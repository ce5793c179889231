"""Near-repeat Knox tables against the Near Repeat Calculator's published Chicago outputs."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import pdist

from citywatch.analytics.nearrepeat import (
    Bands,
    NearRepeatResult,
    near_repeat,
    near_repeat_window,
    verdict,
)
from citywatch.errors import ValidationError
from tests.analytics import nrc

BANDS_2016 = Bands(spatial_band=100, spatial_bands=3, temporal_band=2, temporal_bands=2)
BANDS_2014 = Bands(spatial_band=200, spatial_bands=1, temporal_band=7, temporal_bands=1)


@pytest.fixture(scope="module")
def nrc_2016() -> NearRepeatResult:
    xy, days = nrc.year(2016)
    return near_repeat(xy, days, BANDS_2016, iterations=199, seed=2016, single_precision=True)


def brute_force(xy: np.ndarray, days: np.ndarray, bands: Bands, metric: str) -> np.ndarray:
    """The table from every pair's distance and date difference (O(n^2), scipy's pdist)."""
    d = pdist(xy, "euclidean" if metric == "euclidean" else "cityblock")
    dt = pdist(days[:, None].astype(float), "cityblock")
    edges = bands.spatial_band * np.arange(1, bands.spatial_bands + 1)
    row = np.where(d == 0, 0, 1 + (d[:, None] >= edges).sum(axis=1))
    col = (dt[:, None] >= bands.temporal_band * np.arange(1, bands.temporal_bands + 1)).sum(axis=1)
    table = np.zeros(bands.shape, dtype=np.int64)
    np.add.at(table, (row, col), 1)
    return table


def test_observed_table_equals_the_nrc_2016_output(nrc_2016: NearRepeatResult) -> None:
    assert nrc_2016.events == 11_701
    assert nrc_2016.pairs == 11_701 * 11_700 // 2
    published = nrc.verbose_observed()
    # the NRC's verbose file as published (docs/near-repeat.md), so the parser cannot hide a miss
    assert published.tolist() == [
        [202, 51, 1_025],
        [189, 143, 7_762],
        [290, 343, 23_366],
        [456, 526, 41_305],
        [577_857, 760_260, 67_037_075],
    ]
    np.testing.assert_array_equal(nrc_2016.observed, published)


def test_nrc_reads_coordinates_in_single_precision() -> None:
    """In double precision a few pairs of >= 4 days fall on the other side of a band edge."""
    xy, days = nrc.year(2016)
    double = near_repeat(xy, days, BANDS_2016, iterations=1, seed=0).observed
    published = nrc.verbose_observed()
    np.testing.assert_array_equal(double[:, :2], published[:, :2])
    assert (double[:, 2] != published[:, 2]).any()
    assert double[:, 2].sum() == published[:, 2].sum()
    assert np.abs(double - published).sum() < 30


def test_expected_tables_agree_with_the_nrc_permutations(nrc_2016: NearRepeatResult) -> None:
    """Same permutation distribution per cell: Welch z of the two Monte Carlo means."""
    theirs = nrc.verbose_permutations()
    assert theirs.shape == (19, *BANDS_2016.shape)
    # the NRC permutes dates too: its column totals are those of the observed table
    np.testing.assert_array_equal(
        theirs.sum(axis=1), np.tile(nrc_2016.observed.sum(axis=0), (19, 1))
    )
    se = np.sqrt(theirs.var(axis=0, ddof=1) / 19 + nrc_2016.expected_sd**2 / 199)
    z = (theirs.mean(axis=0) - nrc_2016.expected) / se
    assert np.abs(z).max() < 4.5
    # ... and so the published Knox ratios (2 decimals) within Monte Carlo error
    published = nrc.summary_ratios("chicago_burglary_2016_NRsummary.htm.gz")
    ratio_se = nrc_2016.knox_ratio * se / nrc_2016.expected
    assert (np.abs(nrc_2016.knox_ratio - published) <= 0.005 + 4.5 * ratio_se).all()


def test_knox_ratios_match_the_nrc_2014_output() -> None:
    xy, days = nrc.year(2014)
    assert len(days) == 12_334
    result = near_repeat(xy, days, BANDS_2014, iterations=199, seed=2014, single_precision=True)
    published = nrc.summary_ratios("chicago_burglary_2014_NRsummary.htm.gz")
    # the NRC's mean of 99 permutations and ours of 199 both carry Monte Carlo error
    ratio_se = result.knox_ratio * result.expected_sd / result.expected * np.sqrt(1 / 99 + 1 / 199)
    assert (np.abs(result.knox_ratio - published) <= 0.005 + 4 * ratio_se).all()
    assert result.knox_ratio[0, 0] == pytest.approx(5.34, abs=0.3)
    assert result.knox_ratio[1, 0] == pytest.approx(1.28, abs=0.03)
    # the NRC: p = 0.01 (the best possible with 99) for both close cells
    assert result.p_value[0, 0] == result.p_value[1, 0] == 1 / 200


def test_window_and_verdict_match_the_nrc_2016_summary(nrc_2016: NearRepeatResult) -> None:
    """NRC: 1-100 m and 101-200 m 'up to 4 days', 201-300 m 'up to 2 days'; repeats 4 days."""
    window = near_repeat_window(nrc_2016)
    assert window is not None
    assert (window.distance_m, window.days, window.extents) == (300.0, 4, [4, 4, 2])
    repeat = near_repeat_window(nrc_2016, same_location=True)
    assert repeat is not None and (repeat.distance_m, repeat.days) == (0.0, 4)
    assert window.ratio == pytest.approx(2.68, rel=0.15)  # NRC: "about 168 percent greater"
    en = verdict(nrc_2016, "en")
    assert len(en) == 5 and "percent more likely than expected" in en[3]
    assert en[2].startswith("Near repeats: from 200 to 300 m") and "fewer than 2 days" in en[2]
    zh = verdict(nrc_2016, "zh")
    assert "200–300 米" in zh[2] and "高约" in zh[3]


def test_no_pattern_in_spatially_random_events() -> None:
    rng = np.random.default_rng(5)
    xy = rng.uniform(0, 5_000, size=(800, 2))
    days = rng.integers(0, 365, size=800)
    result = near_repeat(xy, days, Bands(100, 2, 7, 2), iterations=99, seed=1)
    assert near_repeat_window(result) is None
    assert verdict(result, "en")[0].startswith("No significant and meaningful near-repeat")


@pytest.mark.parametrize("metric", ["euclidean", "manhattan"])
def test_table_equals_brute_force_on_real_events(metric: str) -> None:
    xy, days = nrc.year(2015)
    xy, days = xy[:1500], days[:1500]
    bands = Bands(spatial_band=150, spatial_bands=4, temporal_band=3, temporal_bands=3)
    result = near_repeat(xy, days, bands, metric=metric, iterations=5, seed=3)
    np.testing.assert_array_equal(result.observed, brute_force(xy, days, bands, metric))
    assert result.observed.sum() == result.pairs


def test_band_edges_of_the_nrc_pathological_example() -> None:
    """T. Davies's two events 100 m and 3 days apart: NRC puts them in '4 to 6' days."""
    xy = np.array([[0.0, 0.0], [0.0, 100.0]])
    days = np.array([0, 3])
    wide = near_repeat(xy, days, Bands(200, 2, 3, 2), iterations=1, seed=0).observed
    assert wide[1, 1] == 1 and wide.sum() == 1  # [0, 200) m, [3, 6) days
    narrow = near_repeat(xy, days, Bands(100, 2, 3, 2), iterations=1, seed=0).observed
    assert narrow[2, 1] == 1  # [100, 200) m: the edge belongs to the band above


def test_permutations_are_seeded_and_p_values_follow_the_formula() -> None:
    xy, days = nrc.year(2017)
    xy, days = xy[:3000], days[:3000]
    bands = Bands(200, 2, 7, 2)
    a = near_repeat(xy, days, bands, iterations=49, seed=11)
    b = near_repeat(xy, days, bands, iterations=49, seed=11)
    c = near_repeat(xy, days, bands, iterations=49, seed=12)
    np.testing.assert_array_equal(a.expected, b.expected)
    assert not np.array_equal(a.expected, c.expected)
    np.testing.assert_allclose(a.p_value, (1 + a.exceed) / 50)
    assert a.p_value.min() >= 1 / 50 and a.p_value.max() <= 1
    data = a.as_dict()
    assert list(data)[:8] == [
        "rows", "columns", "observed", "expected", "knox_ratio", "p_value", "iterations", "pairs"
    ]  # fmt: skip
    assert data["rows"] == ["same location", "0-200 m", "200-400 m", ">= 400 m"]
    assert data["columns"] == ["0-6 days", "7-13 days", ">= 14 days"]
    assert near_repeat(xy, days, bands, iterations=3).seed >= 0  # a fresh seed is reported


def test_invalid_input_is_refused() -> None:
    xy = np.zeros((3, 2))
    with pytest.raises(ValidationError, match="temporal band"):
        Bands(100, 1, 0, 1)
    with pytest.raises(ValidationError, match="whole day"):
        near_repeat(xy, np.array([0.5, 1, 2]), Bands(100, 1, 1, 1))
    with pytest.raises(ValidationError, match="finite"):
        near_repeat(np.array([[0, np.nan], [1, 1]]), np.array([0, 1]), Bands(100, 1, 1, 1))
    with pytest.raises(ValidationError, match="unknown distance"):
        near_repeat(xy, np.arange(3), Bands(100, 1, 1, 1), metric="chebyshev")
    with pytest.raises(ValidationError, match="at least one iteration"):
        near_repeat(xy, np.arange(3), Bands(100, 1, 1, 1), iterations=0)


@pytest.mark.parametrize("metric", ["euclidean", "manhattan"])
def test_pairs_exactly_on_band_edges(metric: str) -> None:
    """Grid points 30-40-50 m apart put many pairs exactly on the 50 m edges and at distance 0."""
    rng = np.random.default_rng(9)
    xy = rng.integers(0, 12, size=(600, 2)) * np.array([30.0, 40.0])
    days = rng.integers(0, 40, size=600)
    bands = Bands(spatial_band=50, spatial_bands=5, temporal_band=3, temporal_bands=4)
    result = near_repeat(xy, days, bands, metric=metric, iterations=3, seed=0)
    np.testing.assert_array_equal(result.observed, brute_force(xy, days, bands, metric))
