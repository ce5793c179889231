"""Hypercube model: published example, Erlang formulas and a dense brute-force chain."""

from __future__ import annotations

import math
from itertools import product

import numpy as np
import pytest

from citywatch.errors import DataError, ValidationError
from citywatch.plan.hypercube import HypercubeModel, larson_q


def erlang_b(n: int, a: float) -> float:
    """Textbook Erlang B: (a^N / N!) / sum_k a^k / k!."""
    terms = [a**k / math.factorial(k) for k in range(n + 1)]
    return terms[-1] / sum(terms)


def erlang_c(n: int, a: float) -> float:
    """Textbook Erlang C from Erlang B: N B / (N - a (1 - B))."""
    b = erlang_b(n, a)
    return n * b / (n - a * (1 - b))


def dense_reference(model: HypercubeModel, queue_cap: int = 400) -> dict[str, np.ndarray]:
    """Stationary law of the chain with explicit queue states, by a dense linear solve."""
    n, mu = model.units, model.service_rate
    lam = model.rates.sum()
    full = (1 << n) - 1
    extra = queue_cap if model.queue == "infinite" else 0
    size = (1 << n) + extra  # states 0..full, then (full, queue = 1..cap)
    gen = np.zeros((size, size))
    disp_rate = np.zeros((size, n, len(model.rates)))  # dispatch rate (unit, atom) per state
    for s in range(1 << n):
        for a, pref in enumerate(model.preferences):
            free = [u for u in pref if not (s >> u) & 1]
            if free:
                gen[s, s | (1 << free[0])] += model.rates[a]
                disp_rate[s, free[0], a] += model.rates[a]
        for u in range(n):
            if (s >> u) & 1:
                gen[s, s ^ (1 << u)] += mu
    if extra:
        gen[full, 1 << n] += lam
        for qlen in range(1, extra + 1):
            idx = (1 << n) + qlen - 1
            gen[idx, idx - 1 if qlen > 1 else full] += n * mu
            disp_rate[idx, :, :] += mu * model.rates[None, :] / lam  # completing unit takes it
            if qlen < extra:
                gen[idx, idx + 1] += lam
    np.fill_diagonal(gen, -gen.sum(axis=1))
    system = np.vstack([gen.T, np.ones(size)])
    rhs = np.zeros(size + 1)
    rhs[-1] = 1
    pi = np.linalg.lstsq(system, rhs, rcond=None)[0]
    states = pi[: 1 << n].copy()
    states[full] += pi[1 << n :].sum()
    workloads = np.array(
        [states[[s for s in range(1 << n) if (s >> u) & 1]].sum() for u in range(n)]
    )
    dispatch = np.einsum("s,sua->ua", pi, disp_rate)
    return {"states": states, "workloads": workloads, "dispatch": dispatch / dispatch.sum()}


def random_model(seed: int, n: int, atoms: int, queue: str, load: float) -> HypercubeModel:
    rng = np.random.default_rng(seed)
    units_xy = rng.uniform(0, 10, (n, 2))
    atoms_xy = rng.uniform(0, 10, (atoms, 2))
    travel = np.hypot(*(units_xy[:, None, :] - atoms_xy[None, :, :]).transpose(2, 0, 1))
    rates = rng.uniform(0.2, 1.0, atoms)
    rates *= load / rates.sum()
    return HypercubeModel(n, 1.0, queue, rates, np.argsort(travel.T, axis=1), travel)  # type: ignore[arg-type]


# Larson & Odoni, Urban Operations Research (Prentice-Hall 1981), sections 5.4.3 and 5.5.3:
# three units, mu = 1, lambda = 1.5, infinite queue.  Dispatch preferences (Table 5-4), with
# units numbered from 0 here: primary area of unit 1 (atoms 1, 2 backed by unit 2, atom 4 backed
# by unit 3), areas of units 2 and 3 backed by unit 1.  The atom rates of Figure 5.11 are not
# reproduced in the text; only their totals by preference list matter, and we use the split
# that reproduces the book's exact workloads of units 1 and 2 with area 1 at 50 % of demand
# (as the book states).  Published: exact workloads 0.5574, 0.4734, 0.4693; approximate
# 0.5627, 0.4716, 0.4657; Q(3, 1/2, j) = 1, 0.73684, 0.63158.
BOOK_PREFS = np.array([[0, 1, 2], [0, 2, 1], [1, 0, 2], [2, 0, 1]])
BOOK_RATES = np.array([0.303281, 0.75 - 0.303281, 0.403505, 0.75 - 0.403505])


def test_larson_q_matches_published_values() -> None:
    assert larson_q(3, 1.5, "infinite") == pytest.approx([1.0, 0.73684, 0.63158], abs=5e-6)


def test_book_three_unit_example() -> None:
    model = HypercubeModel(3, 1.0, "infinite", BOOK_RATES, BOOK_PREFS)
    exact = model.solve_exact()
    assert exact.workloads[0] == pytest.approx(0.5574, abs=5e-5)
    assert exact.workloads[1] == pytest.approx(0.4734, abs=5e-5)
    # Not fitted: the third workload follows from the queue tail being handled right.
    assert exact.workloads[2] == pytest.approx(0.4693, abs=1.5e-4)
    # P(all free) of M/M/3 with a = 1.5: 1 / (1 + 1.5 + 1.125 + 1.125) = 0.210526.
    assert exact.state_probabilities is not None
    assert exact.state_probabilities[0] == pytest.approx(4 / 19, abs=1e-9)
    approx = model.solve_approximate()
    # The book stops at a convergence tolerance of 0.001 and the rate split is inferred, so
    # the published approximate workloads are met to about 3e-3.
    assert approx.workloads == pytest.approx([0.5627, 0.4716, 0.4657], abs=3e-3)
    assert np.abs(approx.workloads - exact.workloads).max() < 0.01  # "about 1 percent"


@pytest.mark.parametrize("n", [1, 2, 4, 6])
def test_all_busy_equals_erlang(n: int) -> None:
    for queue, formula in (("none", erlang_b), ("infinite", erlang_c)):
        load = 0.7 * n
        model = random_model(n, n, 7, queue, load)
        assert model.solve_exact().p_all_busy == pytest.approx(formula(n, load), rel=1e-9)
        assert model.solve_approximate().p_all_busy == pytest.approx(formula(n, load), rel=1e-9)


@pytest.mark.parametrize(("queue", "seed"), list(product(["none", "infinite"], range(3))))
def test_exact_matches_dense_chain(queue: str, seed: int) -> None:
    model = random_model(seed, 4, 6, queue, 2.2)
    ref = dense_reference(model)
    exact = model.solve_exact()
    assert exact.state_probabilities == pytest.approx(ref["states"], abs=1e-9)
    assert exact.workloads == pytest.approx(ref["workloads"], abs=1e-9)
    assert exact.dispatch == pytest.approx(ref["dispatch"], abs=1e-9)
    first = model.preferences[:, 0]
    cross = 1 - ref["dispatch"][first, np.arange(6)].sum()
    assert exact.cross_area_fraction == pytest.approx(cross, abs=1e-9)
    assert model.travel_times is not None
    assert exact.mean_travel_time == pytest.approx(
        float((ref["dispatch"] * model.travel_times).sum()), abs=1e-9
    )


def test_single_unit_approximation_is_exact() -> None:
    model = random_model(3, 1, 4, "none", 0.8)
    assert model.solve_approximate().workloads == pytest.approx(model.solve_exact().workloads)
    assert model.solve_exact().workloads[0] == pytest.approx(0.8 / 1.8)  # Erlang B, N = 1


def test_approximation_close_to_exact_on_random_cities() -> None:
    for seed in range(3):
        model = random_model(seed, 8, 30, "infinite", 3.2)
        gap = np.abs(model.solve_approximate().workloads - model.solve_exact().workloads)
        assert gap.max() < 0.03


def test_exact_twelve_units_workloads_sum_to_load() -> None:
    model = random_model(5, 12, 40, "infinite", 7.0)
    result = model.solve_exact()
    assert result.workloads.sum() == pytest.approx(7.0, rel=1e-9)  # each call busies one unit
    assert result.state_probabilities is not None
    assert result.state_probabilities.sum() == pytest.approx(1.0)


def test_invalid_models_are_rejected() -> None:
    with pytest.raises(ValidationError, match="preference"):
        HypercubeModel(2, 1.0, "none", np.array([1.0]), np.array([[0, 0]]))
    with pytest.raises(ValidationError, match="stable queue"):
        HypercubeModel(2, 1.0, "infinite", np.array([3.0]), np.array([[0, 1]])).solve_exact()
    with pytest.raises(DataError, match="missing field"):
        HypercubeModel.from_dict({"units": 2, "service_rate": 1.0})


def simulate(model: HypercubeModel, calls: int, seed: int) -> tuple[np.ndarray, float, float]:
    """Event simulation of the dispatch rule: busy-time shares, P(all busy), cross-area share."""
    rng = np.random.default_rng(seed)
    n, mu = model.units, model.service_rate
    lam = model.rates.sum()
    atom_p = model.rates / lam
    free_at = np.zeros(n)  # time each unit becomes free
    busy_time = np.zeros(n)
    queue: list[tuple[float, int]] = []  # (arrival time, atom) of waiting calls
    t, cross, all_busy_time = 0.0, 0, 0.0
    for _ in range(calls):
        gap = rng.exponential(1 / lam)
        # Serve queued calls as units free up before the next arrival (FCFS).
        while queue and free_at.min() <= t + gap:
            u = int(np.argmin(free_at))
            _, atom = queue.pop(0)
            cross += model.preferences[atom, 0] != u
            service = rng.exponential(1 / mu)
            busy_time[u] += service
            free_at[u] += service
        start, t = t, t + gap
        all_busy_time += max(0.0, min(free_at.min(), t) - start) if not queue else gap
        atom = int(rng.choice(len(atom_p), p=atom_p))
        free = [u for u in model.preferences[atom] if free_at[u] <= t]
        if free:
            u = free[0]
            cross += u != model.preferences[atom, 0]
            service = rng.exponential(1 / mu)
            busy_time[u] += service
            free_at[u] = t + service
        else:
            queue.append((t, atom))
    return busy_time / t, all_busy_time / t, cross / calls


def test_exact_matches_event_simulation() -> None:
    # An independent check of the model's semantics (FCFS queue, first free preferred unit).
    model = HypercubeModel(3, 1.0, "infinite", BOOK_RATES, BOOK_PREFS)
    exact = model.solve_exact()
    busy, all_busy, cross = simulate(model, 120_000, seed=11)
    assert busy == pytest.approx(exact.workloads, abs=0.01)
    assert all_busy == pytest.approx(exact.p_all_busy, abs=0.01)
    assert cross == pytest.approx(exact.cross_area_fraction, abs=0.01)
