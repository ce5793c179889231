"""Benchmarks of patrol deployment planning (``python benchmarks/bench_plan.py``).

All instances are SYNTHETIC and seeded (no real city): demand points clustered around hotspots in
a 20 km square, candidate sites uniform, Euclidean metres as the cost.  Each row is compared with
a baseline measured in the same run:

* MCLP 10,000 demand points x 2,000 sites, p = 400: time to a proven optimum with the sparse,
  row-merged, warm-started HiGHS model, against the same model without row merging and without
  the warm start, and against the plain greedy (objective and time).
* Hypercube exact, N = 15 (32,768 states): our parity Gauss-Seidel with Erlang level
  aggregation, against a direct sparse LU solve (SuperLU via scipy) of the same chain at N = 12
  (at N = 13 the LU already takes minutes because of fill-in).
* Hypercube approximate (Larson 1975), N = 400 units and 2,000 atoms, against the exact model's
  time at N = 15 and its accuracy against the exact model at N = 15.
* Posts on a real city (the Heidelberg pack, OSM): demand 1 on every road node of the car network
  (synthetic weights, real streets), candidate posts on a 1 km grid, 40 cars, 300 s: travel
  times and model data, then HiGHS to a proven optimum; baseline: the same reach matrix from
  scipy's ``dijkstra(limit=)`` in chunks of 256 sources (dense rows of the network's size).
* Staffing for about 2,000 units (1,950 erlangs, P(all busy) <= 5 %), against the Erlang B
  recursion.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as sla
from common import machine
from scipy.spatial import cKDTree

from citywatch.console import print_table
from citywatch.plan.coverage import MCLP, CoverageData, merge_identical_rows
from citywatch.plan.heuristic import greedy_local_search
from citywatch.plan.hypercube import HypercubeModel


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    """Result and wall-clock seconds of ``fn()``."""
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def mclp_instance(seed: int = 42, n: int = 10_000, m: int = 2_000, radius: float = 700.0) -> MCLP:
    """Synthetic clustered MCLP instance (metres), built sparsely with a k-d tree."""
    rng = np.random.default_rng(seed)
    side = 20_000.0
    centres = rng.uniform(0, side, (40, 2))
    hot = rng.random(n) < 0.7
    pts = np.where(
        hot[:, None],
        centres[rng.integers(0, 40, n)] + rng.normal(0, 800, (n, 2)),
        rng.uniform(0, side, (n, 2)),
    )
    sites = rng.uniform(0, side, (m, 2))
    pairs = cKDTree(sites).sparse_distance_matrix(cKDTree(pts), radius, output_type="coo_matrix")
    weights = rng.integers(1, 10, n).astype(float)
    data = CoverageData.from_pairs(
        range(n), weights, range(m), pairs.col, pairs.row, pairs.data, radius
    )
    return MCLP(data, 400)


def hypercube_instance(n: int, atoms: int, seed: int = 7, load_per_unit: float = 0.6):
    """Units and atoms uniform in a square; nearest-first preferences; loss system."""
    rng = np.random.default_rng(seed)
    units_xy = rng.uniform(0, 10, (n, 2))
    atoms_xy = rng.uniform(0, 10, (atoms, 2))
    travel = np.hypot(*(units_xy[:, None, :] - atoms_xy[None, :, :]).transpose(2, 0, 1))
    rates = rng.uniform(0.5, 1.5, atoms)
    rates *= load_per_unit * n / rates.sum()
    return HypercubeModel(n, 1.0, "none", rates, np.argsort(travel.T, axis=1), travel)


def direct_lu(model: HypercubeModel) -> np.ndarray:
    """Baseline: the 2^N chain's balance equations solved by sparse LU (SuperLU)."""
    n = model.units
    size = 1 << n
    states = np.arange(size)
    rows, cols, vals = [], [], []
    for pref, lam in zip(model.preferences, model.rates, strict=True):
        rem = states[:-1]
        for u in pref:
            free = ((rem >> u) & 1) == 0
            rows.append(rem[free])
            cols.append(rem[free] | (1 << u))
            vals.append(np.full(int(free.sum()), lam))
            rem = rem[~free]
    for u in range(n):
        has = states[((states >> u) & 1) == 1]
        rows.append(has)
        cols.append(has ^ (1 << u))
        vals.append(np.full(len(has), model.service_rate))
    q = sp.coo_array(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(size, size)
    ).tocsr()
    q = q - sp.diags_array(np.asarray(q.sum(axis=1)).ravel())
    a = sp.lil_array(q.T)
    a[0, :] = 1.0
    b = np.zeros(size)
    b[0] = 1.0
    return np.asarray(sla.spsolve(sp.csc_array(a), b))


def city_rows() -> list[tuple[str, str, str]]:
    """Posts on the Heidelberg pack and 2,000-unit staffing (see the module docstring)."""
    import resource

    from scipy.sparse.csgraph import dijkstra

    from citywatch.city import load_pack
    from citywatch.plan.posts import plan_posts, road_node_demand, thinned_nodes
    from citywatch.plan.staffing import minimum_units
    from citywatch.routing import Router

    pack = load_pack("heidelberg")
    router = Router.from_pack(pack)
    demand = road_node_demand(router)
    sites = thinned_nodes(pack, router, 1000.0)
    plan, total_s = timed(
        lambda: plan_posts(pack, demand, {"car": 40}, 300.0, router=router, candidates=sites)
    )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rows = [
        (
            f"Posts, Heidelberg: {len(demand.nodes):,} road nodes x {len(sites):,} grid posts, "
            "40 cars, 300 s",
            f"{plan.build_seconds:.1f} s build + {plan.result.seconds:.1f} s HiGHS "
            f"({total_s:.1f} s total)",
            f"{plan.result.status}, gap {plan.result.gap:.1g}, {plan.covered_share:.1%} of nodes "
            f"within 300 s; peak {peak:.0f} MiB",
        )
    ]
    graph = router.graph("car").seconds

    def scipy_reach() -> int:
        stored = 0
        for start in range(0, len(sites), 256):
            dist = dijkstra(graph, indices=sites[start : start + 256], limit=300.0)
            stored += int(np.isfinite(dist).sum())
        return stored

    (pairs, scipy_s), (_, ours_s) = (
        timed(scipy_reach),
        timed(lambda: router.node_reach("car", sites, 300.0)),
    )
    rows.append(
        (
            "  baseline: reach matrix, scipy dijkstra(limit) x 256 vs bounded searches",
            f"{scipy_s:.2f} s vs {ours_s:.2f} s",
            f"{pairs:,} pairs within 300 s",
        )
    )
    load = 1950.0
    units, staff_s = timed(lambda: minimum_units(load, 0.05))

    def recursion() -> int:
        b, n = 1.0, 0
        while b > 0.05:
            n += 1
            b = load * b / (n + load * b)
        return n

    brute, brute_s = timed(recursion)
    rows.append(
        (
            "Staffing, 1,950 erlangs (Erlang B, P(all busy) <= 5 %)",
            f"{staff_s:.2f} s (recursion {brute_s * 1e3:.1f} ms)",
            f"{units:,} units (recursion: {brute:,})",
        )
    )
    return rows


def main() -> None:
    """Run every benchmark and print one table."""
    rows: list[tuple[str, str, str]] = []
    model, build_s = timed(mclp_instance)
    data = model.data
    rows.append(
        (
            "MCLP instance (synthetic)",
            f"{len(data.weights):,} points x {len(data.site_ids):,} sites, p=400, R=700 m",
            f"{data.cover.nnz:,} pairs within R, built in {build_s:.2f} s; "
            f"{merge_identical_rows(data.cover)[0].shape[0]:,} rows after merging",
        )
    )
    exact, exact_s = timed(model.solve)
    rows.append(
        (
            "MCLP exact (merged, warm start)",
            f"{exact_s:.2f} s to {exact.status}",
            f"objective {exact.objective:,.0f}, gap {exact.gap:.1e}",
        )
    )
    plain, plain_s = timed(lambda: model.solve(merge_rows=False, warm_start=False))
    rows.append(
        (
            "  baseline: unmerged, no warm start",
            f"{plain_s:.2f} s to {plain.status}",
            f"objective {plain.objective:,.0f}",
        )
    )
    greedy, greedy_s = timed(lambda: greedy_local_search(model, max_passes=0, with_bound=False))
    rows.append(
        (
            "  baseline: plain greedy",
            f"{greedy_s:.2f} s",
            f"objective {greedy.objective:,.0f} "
            f"({1 - greedy.objective / exact.objective:.2%} below the optimum)",
        )
    )
    heur, heur_s = timed(lambda: greedy_local_search(model))
    rows.append(
        (
            "Greedy + swaps (with LP bound)",
            f"{heur_s:.2f} s",
            f"objective {heur.objective:,.0f}, gap to LP bound {heur.gap:.3%}",
        )
    )

    hc15 = hypercube_instance(15, 300)
    exact15, hc_s = timed(hc15.solve_exact)
    rows.append(
        (
            "Hypercube exact N=15, 300 atoms",
            f"{hc_s:.2f} s",
            f"{exact15.iterations} sweeps, P(all busy) {exact15.p_all_busy:.4f}",
        )
    )
    hc12 = hypercube_instance(12, 300)
    ours12, ours12_s = timed(hc12.solve_exact)
    lu12, lu12_s = timed(lambda: direct_lu(hc12))
    assert ours12.state_probabilities is not None
    diff = float(np.abs(lu12 - ours12.state_probabilities).max())
    rows.append(
        (
            "  baseline N=12: sparse LU vs ours",
            f"{lu12_s:.2f} s vs {ours12_s:.2f} s",
            f"max state-probability difference {diff:.1e}",
        )
    )
    approx15, approx15_s = timed(hc15.solve_approximate)
    err = float(np.abs(approx15.workloads - exact15.workloads).max())
    rows.append(
        (
            "Hypercube approximate N=15",
            f"{approx15_s:.3f} s",
            f"max workload error vs exact {err:.4f}",
        )
    )
    hc400 = hypercube_instance(400, 2000)
    approx400, approx400_s = timed(hc400.solve_approximate)
    rows.append(
        (
            "Hypercube approximate N=400, 2,000 atoms",
            f"{approx400_s:.2f} s",
            f"{approx400.iterations} iterations, P(all busy) {approx400.p_all_busy:.4f}",
        )
    )
    rows += city_rows()
    print_table(f"Patrol planning benchmarks — {machine()}", ("case", "time", "result"), rows)


if __name__ == "__main__":
    main()
