"""Benchmark of one DMEXCLP move-up decision (``python benchmarks/bench_moveup.py``).

Real network, synthetic fleet: the Manhattan pack's road network (car mode), every road node a
candidate site AND a demand node (weight 1: all road nodes as demand), 400 idle cars on seeded
random road nodes, busy fraction 0.3, the 3-minute threshold.  One decision = the best move of
ANY of the 400 cars to ANY of the sites (:func:`citywatch.dispatch.moveup.best_move`).

Baseline, same run: brute force, i.e. the expected coverage recomputed from scratch for every
(car, site) move (vectorised over the sites of one car).  Brute force over all 400 cars takes
minutes, so it is timed on ``BRUTE_UNITS`` cars and scaled to 400 (labelled); on those cars the
best gain of the two methods must agree.
"""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np
from common import machine

from citywatch.city import load_pack
from citywatch.dispatch.kpis import RESPONSE_TARGETS_S
from citywatch.dispatch.moveup import MoveUpModel, best_move, coverage_counts
from citywatch.plan.posts import reach_matrix
from citywatch.routing import Router

SEED = 7
UNITS = 400
BRUTE_UNITS = 8
Q = 0.3
REPEAT = 5


def measured(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    """Result, CPU seconds and peak traced memory (MiB) of one call."""
    tracemalloc.start()
    started = time.process_time()
    out = fn()
    cpu = time.process_time() - started
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return out, cpu, peak


def brute_force(model: MoveUpModel, sites: np.ndarray, units: np.ndarray) -> float:
    """Best gain over the moves of ``units``, each move's coverage computed from scratch."""
    modes = ["car"] * len(sites)
    k = coverage_counts(model, sites, modes)
    before = float(model.demand @ (1 - Q**k))
    dense = model.covered["car"].toarray()
    best = -np.inf
    for j in units.tolist():
        # k after moving car j to each site b, all b at once: (sites, nodes)
        k_moved = (k - dense[sites[j]])[None, :] + dense
        after = (1 - Q**k_moved) @ model.demand
        after[sites[j]] = -np.inf
        best = max(best, float(after.max()) - before)
    return best


def main() -> None:
    print(machine())
    pack = load_pack("manhattan")
    router = Router.from_pack(pack)
    n = len(pack.network.lon)
    nodes = np.arange(n)
    (model, build_cpu, build_mem) = measured(
        lambda: MoveUpModel.from_seconds(
            {"car": reach_matrix(router, "car", nodes, nodes, RESPONSE_TARGETS_S[0]).T},
            np.ones(n),
        )
    )
    print(
        f"Manhattan: {n} road nodes = sites = demand nodes, {model.covered['car'].nnz} "
        f"(site, node) pairs within {RESPONSE_TARGETS_S[0]:.0f} s; model build "
        f"{build_cpu:.2f} s CPU, peak {build_mem:.0f} MiB (once per city and threshold)"
    )
    rng = np.random.default_rng(SEED)
    sites = rng.integers(0, n, UNITS)
    modes = ["car"] * UNITS
    times = []
    for _ in range(REPEAT):
        move, cpu, peak = measured(lambda: best_move(model, sites, modes, Q))
        times.append(cpu)
    assert move is not None
    subset = np.sort(rng.choice(UNITS, BRUTE_UNITS, replace=False))
    mask = np.isin(np.arange(UNITS), subset)
    sub_move = best_move(model, sites, modes, Q, movable=mask)
    brute, brute_cpu, brute_peak = measured(lambda: brute_force(model, sites, subset))
    assert sub_move is not None and abs(sub_move.gain - brute) <= 1e-9 * n, (sub_move, brute)
    per_unit = brute_cpu / BRUTE_UNITS
    print(
        f"one decision, {UNITS} cars x {n} sites: median {np.median(times) * 1e3:.0f} ms CPU "
        f"(min {min(times) * 1e3:.0f}, {REPEAT} runs), peak {peak:.0f} MiB; "
        f"gain {move.gain:.2f} demand nodes (car {move.unit} -> node {move.destination})"
    )
    print(
        f"brute force: {brute_cpu:.2f} s CPU for {BRUTE_UNITS} cars ({per_unit:.2f} s per car; "
        f"scaled to {UNITS} cars: {per_unit * UNITS:.0f} s), peak {brute_peak:.0f} MiB; "
        f"same best gain on those cars ({brute:.4f}); speed-up "
        f"{per_unit * UNITS / float(np.median(times)):.0f}x"
    )


if __name__ == "__main__":
    main()
