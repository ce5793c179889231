"""Coverage models against brute-force enumeration of every site set on small instances."""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from citywatch.errors import DataError, SolverError, ValidationError
from citywatch.plan.coverage import (
    LSCP,
    MCLP,
    MEXCLP,
    BackupCoverage,
    CoverageData,
    SiteGroup,
    merge_identical_rows,
)
from citywatch.plan.heuristic import greedy_local_search


def random_instance(seed: int, n: int = 14, m: int = 7) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    costs = rng.uniform(0, 10, (n, m))
    costs[rng.random((n, m)) < 0.3] = np.inf  # unreachable pairs
    weights = rng.integers(1, 10, n).astype(float)
    return costs, weights


def brute_value(
    costs: np.ndarray, w: np.ndarray, radius: float, sites: tuple[int, ...], g
) -> float:
    counts = (costs[:, list(sites)] <= radius).sum(axis=1)
    return float(sum(wi * g(int(c)) for wi, c in zip(w, counts, strict=True)))


def brute_best(costs, w, radius, p, g, fixed=()):
    best = -1.0
    for sites in combinations(range(costs.shape[1]), p):
        if set(fixed) <= set(sites):
            best = max(best, brute_value(costs, w, radius, sites, g))
    return best


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("p", [1, 2, 3])
def test_mclp_equals_brute_force(seed: int, p: int) -> None:
    costs, w = random_instance(seed)
    result = MCLP.from_matrix(costs, 4.0, weights=w, units=p).solve()
    expected = brute_best(costs, w, 4.0, p, lambda c: min(c, 1))
    assert result.status == "optimal"
    assert result.objective == pytest.approx(expected)
    assert result.covered_weight == pytest.approx(expected)
    assert len(result.selected_sites) == p
    assert result.gap == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("seed", range(5))
def test_mexclp_equals_brute_force(seed: int) -> None:
    costs, w = random_instance(seed)
    q = 0.35
    result = MEXCLP.from_matrix(costs, 5.0, weights=w, units=3, busy_fraction=q).solve()
    expected = brute_best(costs, w, 5.0, 3, lambda c: 1 - q**c)
    assert result.objective == pytest.approx(expected)


@pytest.mark.parametrize("theta", [0.2, 0.5, 0.8])
@pytest.mark.parametrize("seed", range(4))
def test_backup_equals_brute_force(seed: int, theta: float) -> None:
    costs, w = random_instance(seed)
    result = BackupCoverage.from_matrix(costs, 5.0, weights=w, units=3, theta=theta).solve()
    expected = brute_best(costs, w, 5.0, 3, lambda c: theta * (c >= 1) + (1 - theta) * (c >= 2))
    assert result.objective == pytest.approx(expected)


@pytest.mark.parametrize("seed", range(6))
def test_lscp_equals_brute_force(seed: int) -> None:
    costs, w = random_instance(seed, n=10, m=8)
    radius = 7.0
    reachable = (costs <= radius).any(axis=1)
    costs, w = costs[reachable], w[reachable]
    result = LSCP.from_matrix(costs, radius, weights=w).solve()
    smallest = next(
        p
        for p in range(1, costs.shape[1] + 1)
        if any((costs[:, list(s)] <= radius).any(axis=1).all() for s in combinations(range(8), p))
    )
    assert result.objective == smallest
    assert result.covered.all()


def test_radius_is_inclusive() -> None:
    costs = np.array([[5.0, np.inf], [5.000001, np.inf]])
    result = MCLP.from_matrix(costs, 5.0, units=1).solve()
    assert result.covered.tolist() == [True, False]


def test_fixed_sites_stay_and_groups_bound() -> None:
    costs, w = random_instance(3)
    fixed = np.zeros(7, dtype=bool)
    fixed[6] = True
    result = MCLP.from_matrix(costs, 4.0, weights=w, units=3, fixed=fixed).solve()
    assert "6" in result.selected_sites
    assert result.objective == pytest.approx(
        brute_best(costs, w, 4.0, 3, lambda c: min(c, 1), fixed=(6,))
    )
    group = SiteGroup("A", np.array([0, 1, 2]), min_units=2, max_units=2)
    grouped = MCLP.from_matrix(costs, 4.0, weights=w, units=3, groups=[group]).solve()
    expected = max(
        brute_value(costs, w, 4.0, s, lambda c: min(c, 1))
        for s in combinations(range(7), 3)
        if len(set(s) & {0, 1, 2}) == 2
    )
    assert sum(s in {"0", "1", "2"} for s in grouped.selected_sites) == 2
    assert grouped.objective == pytest.approx(expected)


def test_infeasible_groups_raise_solver_error() -> None:
    costs, w = random_instance(1)
    groups = [SiteGroup("A", np.arange(7), min_units=5)]
    with pytest.raises(SolverError):
        MCLP.from_matrix(costs, 4.0, weights=w, units=3, groups=groups).solve()


def test_lscp_rejects_uncoverable_demand() -> None:
    costs = np.array([[1.0, 2.0], [np.inf, 9.0]])
    with pytest.raises(ValidationError, match="no site within the radius"):
        LSCP.from_matrix(costs, 5.0)


def test_merge_identical_rows() -> None:
    cover = sp.csr_array(np.array([[1, 0, 1], [0, 0, 0], [1, 0, 1], [0, 1, 0]]))
    merged, row_of = merge_identical_rows(cover)
    assert merged.shape == (2, 3)
    assert row_of.tolist() == [0, -1, 0, 1]


@pytest.mark.parametrize("seed", range(4))
def test_heuristic_is_feasible_and_bounded(seed: int) -> None:
    rng = np.random.default_rng(seed)
    d = rng.uniform(0, 100, (300, 2))
    s = rng.uniform(0, 100, (60, 2))
    costs = np.hypot(*(d[:, None, :] - s[None, :, :]).transpose(2, 0, 1))
    w = rng.integers(1, 5, 300).astype(float)
    model = MCLP.from_matrix(costs, 12.0, weights=w, units=8)
    exact = model.solve()
    heur = greedy_local_search(model)
    assert heur.selected.sum() == 8
    assert heur.objective <= exact.objective + 1e-9
    assert heur.bound >= exact.objective - 1e-6  # the LP bound bounds the optimum
    assert heur.gap == pytest.approx((heur.bound - heur.objective) / heur.bound)
    assert heur.objective >= 0.9 * exact.objective  # greedy + swaps is near-optimal here


def test_heuristic_local_search_reaches_optimum_on_tiny_cases() -> None:
    # On these small instances a swap-optimal solution matches brute force.
    for seed in range(5):
        costs, w = random_instance(seed)
        model = MCLP.from_matrix(costs, 4.0, weights=w, units=2)
        heur = greedy_local_search(model)
        assert heur.objective <= brute_best(costs, w, 4.0, 2, lambda c: min(c, 1)) + 1e-9


def test_from_frames_validates() -> None:
    demand = pd.DataFrame({"id": ["a", "b"], "weight": [1.0, 2.0]})
    sites = pd.DataFrame({"id": ["s1", "s2"], "fixed": [0, 1]})
    costs = pd.DataFrame({"demand_id": ["a", "b"], "site_id": ["s1", "s2"], "cost": [3.0, 9.0]})
    data = CoverageData.from_frames(demand, sites, costs, 5.0)
    assert data.fixed.tolist() == [False, True]
    assert data.cover.toarray().tolist() == [[1, 0], [0, 0]]
    bad = costs.assign(site_id=["s1", "zz"])
    with pytest.raises(DataError, match="unknown site ids zz"):
        CoverageData.from_frames(demand, sites, bad, 5.0)
    with pytest.raises(DataError, match="missing column"):
        CoverageData.from_frames(demand.drop(columns="weight"), sites, costs, 5.0)


@pytest.mark.parametrize("seed", range(3))
def test_merging_rows_keeps_the_optimum(seed: int) -> None:
    rng = np.random.default_rng(seed)
    costs = rng.integers(0, 6, (80, 10)).astype(float)  # coarse costs: many identical rows
    w = rng.uniform(0.5, 2.0, 80)
    for model in (
        MCLP.from_matrix(costs, 1.0, weights=w, units=3),
        MEXCLP.from_matrix(costs, 1.0, weights=w, units=3, busy_fraction=0.4),
    ):
        merged = model.solve()
        plain = model.solve(merge_rows=False, warm_start=False)
        assert merged.objective == pytest.approx(plain.objective)
    assert merge_identical_rows(sp.csr_array(costs <= 1.0))[0].shape[0] < 80
