"""Erlang formulas against published values and the textbook sums; minimum units by brute force."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from citywatch.errors import DataError, ValidationError
from citywatch.plan.hypercube import HypercubeModel
from citywatch.plan.staffing import (
    erlang_b,
    erlang_c,
    minimum_units,
    minimum_units_for_coverage,
    share_within,
    staffing_table,
)


def erlang_b_sum(n: int, a: float) -> float:
    terms = [a**k / math.factorial(k) for k in range(n + 1)]
    return terms[-1] / sum(terms)


def test_erlang_closed_forms() -> None:
    # B(1, a) = a / (1 + a); B(2, 1) = (1/2) / (1 + 1 + 1/2) = 0.2; C(2, 1) = 1/3 (M/M/2, rho 1/2).
    assert erlang_b(1, 0.8) == pytest.approx(0.8 / 1.8)
    assert erlang_b(2, 1.0) == pytest.approx(0.2)
    assert erlang_c(2, 1.0) == pytest.approx(1 / 3)
    # Erlang B table value: 10 erlangs on 15 circuits blocks 3.65 % (standard traffic tables).
    assert erlang_b(15, 10.0) == pytest.approx(0.0365, abs=5e-5)


@pytest.mark.parametrize(("n", "a"), [(3, 2.0), (7, 3.0), (20, 14.5), (50, 41.0)])
def test_erlang_matches_textbook_sums(n: int, a: float) -> None:
    b = erlang_b_sum(n, a)
    assert erlang_b(n, a) == pytest.approx(b, rel=1e-12)
    assert erlang_c(n, a) == pytest.approx(n * b / (n - a * (1 - b)), rel=1e-12)


@pytest.mark.parametrize("queue", ["none", "infinite"])
@pytest.mark.parametrize("load", [0.4, 3.0, 12.5])
def test_minimum_units_is_the_first_that_meets_the_target(queue: str, load: float) -> None:
    target = 0.05
    units = minimum_units(load, target, queue)  # type: ignore[arg-type]
    formula = erlang_b if queue == "none" else erlang_c
    assert formula(units, load) <= target
    smaller = units - 1
    if smaller >= 1 and (queue == "none" or smaller > load):
        assert formula(smaller, load) > target


def test_staffing_table() -> None:
    shifts = pd.DataFrame(
        {"shift": ["day", "night"], "calls_per_hour": [6.0, 10.0], "service_minutes": [30, 40]}
    )
    table = staffing_table(shifts, 0.05, "none", officers_per_unit=2)
    assert table["load_erlangs"].tolist() == pytest.approx([3.0, 10 * 40 / 60])
    assert table["units"].tolist() == [7, 11]  # B(6,3)=0.052 > 0.05 >= B(7,3)=0.0219
    assert table["officers"].tolist() == [14, 22]
    with pytest.raises(DataError, match="missing column"):
        staffing_table(shifts.drop(columns="service_minutes"), 0.05)
    with pytest.raises(ValidationError):
        minimum_units(1.0, 1.5)


def test_minimum_units_for_coverage_on_a_line() -> None:
    # Atoms on a line at 0..9 km, units posted evenly; travel time = distance.
    atoms = np.arange(10.0)

    def build(n: int) -> HypercubeModel:
        posts = (np.arange(n) + 0.5) * 10.0 / n
        travel = np.abs(posts[:, None] - atoms[None, :])
        prefs = np.argsort(travel.T, axis=1, kind="stable")
        return HypercubeModel(n, 1.0, "none", np.full(10, 0.1), prefs, travel)

    units, model, result = minimum_units_for_coverage(build, threshold=1.5, target=0.8)
    assert share_within(model, result, 1.5) >= 0.8
    previous = build(units - 1)
    assert share_within(previous, previous.solve(), 1.5) < 0.8


def test_share_within_counts_only_immediate_answers() -> None:
    # One unit, one atom at travel 1: with a loss system the share answered in time is the
    # probability the unit is free, 1 - B(1, a) = 1 / (1 + a).
    model = HypercubeModel(1, 1.0, "none", np.array([0.5]), np.array([[0]]), np.array([[1.0]]))
    assert share_within(model, model.solve(), 1.0) == pytest.approx(1 / 1.5)
    assert share_within(model, model.solve(), 0.5) == 0.0
    # With a queue: the share not waiting, 1 - C(1, a) = 1 - a.
    queued = HypercubeModel(1, 1.0, "infinite", np.array([0.5]), np.array([[0]]), np.array([[1.0]]))
    assert share_within(queued, queued.solve(), 1.0) == pytest.approx(0.5)


def test_two_thousand_units_match_the_erlang_b_recursion() -> None:
    # B(0) = 1, B(n) = a B(n-1) / (n + a B(n-1)): the standard stable recursion.
    load, target = 1950.0, 0.05
    b, n = 1.0, 0
    while b > target:
        n += 1
        b = load * b / (n + load * b)
    assert minimum_units(load, target) == n
    assert 1800 < n < 2000
    assert erlang_b(n, load) == pytest.approx(b, rel=1e-9)
