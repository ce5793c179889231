"""Exact MCLP reductions (plan.reduce): against brute-force enumeration of every site set."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.sparse as sp

from citywatch.plan.coverage import MCLP, CoverageData
from citywatch.plan.heuristic import greedy_local_search
from citywatch.plan.reduce import dominated_sites, lagrangian_fixing


def _brute(cover: np.ndarray, w: np.ndarray, p: int, fixed: np.ndarray) -> tuple[float, list]:  # type: ignore[type-arg]
    best, argbest = -1.0, []
    for sites in itertools.combinations(range(cover.shape[1]), p):
        chosen = np.zeros(cover.shape[1], dtype=bool)
        chosen[list(sites)] = True
        if np.any(fixed & ~chosen):
            continue
        value = float(w[(cover @ chosen) > 0].sum())
        if value > best + 1e-9:
            best, argbest = value, [chosen]
        elif abs(value - best) <= 1e-9:
            argbest.append(chosen)
    return best, argbest


def _instance(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:  # type: ignore[type-arg]
    rng = np.random.default_rng(seed)
    n, m = int(rng.integers(10, 40)), int(rng.integers(8, 14))
    cover = (rng.random((n, m)) < rng.uniform(0.08, 0.4)).astype(float)
    cover[:, m - 1] = cover[:, 0]  # an identical pair
    w = rng.uniform(0.0, 3.0, n) * (rng.random(n) < 0.9)
    fixed = np.zeros(m, dtype=bool)
    if seed % 3 == 0:
        fixed[int(rng.integers(0, m))] = True
    return cover, w, fixed, int(rng.integers(1, 4)) + int(fixed.sum())


@pytest.mark.parametrize("seed", range(40))
def test_reduced_mclp_equals_brute_force(seed: int) -> None:
    cover, w, fixed, p = _instance(seed)
    m = cover.shape[1]
    data = CoverageData(
        np.arange(len(w)).astype(str).astype(object),
        w,
        np.arange(m).astype(str).astype(object),
        sp.csr_array(cover),
        fixed,
    )
    best, _ = _brute(cover, w, p, fixed)
    for reduce in (True, False):
        result = MCLP(data, units=p).solve(reduce=reduce)
        assert result.status == "optimal" and result.gap < 1e-6
        assert result.objective == pytest.approx(best, abs=1e-9)
        assert int(result.selected.sum()) == p and not np.any(fixed & ~result.selected)


@pytest.mark.parametrize("seed", range(40))
def test_no_reduction_removes_every_optimum(seed: int) -> None:
    cover, w, _, p = _instance(seed)
    keep = w > 0
    cover, w = cover[keep], w[keep]
    best, optima = _brute(cover, w, p, np.zeros(cover.shape[1], dtype=bool))
    removed = dominated_sites(sp.csr_array(cover))
    assert removed[-1] or not cover[:, -1].any()  # the copy of site 0 goes
    if int((~removed).sum()) >= p:  # some optimum avoids every dominated site
        assert any(not np.any(o & removed) for o in optima)
    else:  # the kept sites together cover every coverable row
        assert float(w[(cover @ ~removed) > 0].sum()) == pytest.approx(best)
    model = MCLP.from_matrix(np.where(cover > 0, 0.0, np.inf), 0.0, weights=w, units=p)
    known = greedy_local_search(model, with_bound=False).objective
    excluded, bound = lagrangian_fixing(sp.csr_array(cover), w, p, known, iterations=400)
    assert bound >= best - 1e-9
    # an excluded site is in no optimum at all
    assert not any(np.any(o & excluded) for o in optima)


def test_lagrangian_fixing_removes_sites_that_cannot_pay() -> None:
    # two heavy disjoint sites and ten light ones: with p = 2 only the heavy pair is optimal
    cover = np.zeros((14, 12))
    cover[0:2, 0] = 1
    cover[2:4, 1] = 1
    for j in range(2, 12):
        cover[4 + j - 2, j] = 1
    w = np.array([10.0, 10.0, 10.0, 10.0] + [1.0] * 10)
    excluded, bound = lagrangian_fixing(sp.csr_array(cover), w, 2, 40.0)
    assert bound == pytest.approx(40.0)
    assert excluded.tolist() == [False, False] + [True] * 10
