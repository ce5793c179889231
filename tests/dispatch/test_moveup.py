"""Move-up: coverage rules and their donors, and DMEXCLP against hand values and brute force."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from citywatch.dispatch.moveup import (
    CoverageRules,
    MoveUpModel,
    best_move,
    coverage_counts,
    expected_coverage,
    load_coverage_rules,
    rule_violations,
    suggest_moves,
)
from citywatch.dispatch.policy import UnitView
from citywatch.errors import DataError

# ----------------------------------------------------------------------------- rules

STATIONS = {"A": (0.0, 0.0), "B": (1.0, 0.0), "C": (3.0, 0.0)}


def _unit(uid: str, station: str, lon: float, status: str = "available", t: str = "patrol_car"):
    mode = "foot" if t == "foot" else "car"
    return UnitView(uid, t, mode, station, lon, 0.0, status=status)


def _travel(sources: np.ndarray, mode: str, target, limit_s):
    """Straight line along the x axis, 100 s per degree by car, 1,000 s on foot."""
    per = 100.0 if mode == "car" else 1000.0
    seconds = np.abs(sources[:, 0] - target[0]) * per
    if limit_s is not None:
        seconds = np.where(seconds <= limit_s, seconds, np.inf)
    return seconds, seconds * 10.0


def _rules(tmp_path: Path, text: str) -> CoverageRules:
    path = tmp_path / "coverage.toml"
    path.write_text(text, encoding="utf-8")
    return load_coverage_rules(path)


RULES = """
[[rule]]
unit_type = "patrol_car"
min_available = 1

[[rule]]
station = "C"
unit_type = "patrol_car"
min_available = 2
"""


def test_bundled_rules_load() -> None:
    rules = load_coverage_rules()
    assert rules.minimum("any station", "patrol_car") == 1
    assert rules.minimum("any station", "foot") == 0


def test_violations_and_donors_on_a_hand_made_fleet(tmp_path: Path) -> None:
    rules = _rules(tmp_path, RULES)
    fleet = [
        _unit("A1", "A", 0.0, status="dispatched"),  # A's only car is out: A short by 1
        _unit("B1", "B", 1.0),
        _unit("B2", "B", 1.2),  # B has 2, needs 1: can spare one
        _unit("C1", "C", 3.0),  # C needs 2, has 1: short, cannot give
        _unit("F1", "A", 0.1, t="foot"),  # a foot unit never counts for a car rule
    ]
    violations = rule_violations(fleet, rules)
    assert [(v.station, v.unit_type, v.required, v.available) for v in violations] == [
        ("A", "patrol_car", 1, 0),
        ("C", "patrol_car", 2, 1),
    ]
    moves = suggest_moves(fleet, rules, _travel, STATIONS)
    # A gets B1 (100 s, nearer than B2 at 120 s); then B has 1 = its minimum: C gets nobody.
    assert [(m.station, m.unit_id, m.from_station) for m in moves] == [
        ("A", "B1", "B"),
        ("C", None, None),
    ]
    assert moves[0].eta_s == pytest.approx(100.0)
    assert moves[0].metres == pytest.approx(1000.0)


def test_donors_are_timed_once_per_mode_in_their_own_mode(tmp_path: Path) -> None:
    rules = _rules(tmp_path, "[[rule]]\nstation = 'A'\nunit_type = 'mounted'\nmin_available = 1\n")
    calls: list[tuple[str, int]] = []

    def travel(sources: np.ndarray, mode: str, target, limit_s):
        calls.append((mode, len(sources)))
        return _travel(sources, mode, target, limit_s)

    fleet = [
        UnitView("M1", "mounted", "bicycle", "B", 1.0, 0.0),
        UnitView("M2", "mounted", "foot", "C", 0.05, 0.0),  # slow mode but 50 s away
        UnitView("M3", "mounted", "bicycle", "C", 2.0, 0.0),
    ]
    moves = suggest_moves(fleet, rules, travel, STATIONS)
    assert sorted(calls) == [("bicycle", 2), ("foot", 1)]
    assert [(m.unit_id, m.eta_s) for m in moves] == [("M2", pytest.approx(50.0))]


def test_donor_beyond_the_limit_is_not_suggested(tmp_path: Path) -> None:
    rules = _rules(tmp_path, RULES)
    fleet = [_unit("A1", "A", 0.0, status="on_scene"), _unit("B1", "B", 1.0), _unit("B2", "B", 1)]
    assert suggest_moves(fleet, rules, _travel, STATIONS, limit_s=50.0)[0].unit_id is None
    assert suggest_moves(fleet, rules, _travel, STATIONS, limit_s=150.0)[0].unit_id == "B1"


def test_no_violation_no_move(tmp_path: Path) -> None:
    rules = _rules(tmp_path, RULES)
    fleet = [_unit("A1", "A", 0.0), _unit("C1", "C", 3.0), _unit("C2", "C", 3.0)]
    assert rule_violations(fleet, rules) == []
    assert suggest_moves(fleet, rules, _travel, STATIONS) == []


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("[[rule]]\nunit_type = 'patrol_car'\nmin_availble = 1\n", "min_availble"),
        ("[rules]\n", "rules"),
        ("[[rule]]\nunit_type = 'tank'\nmin_available = 1\n", "tank"),
        ("[[rule]]\nunit_type = 'foot'\nmin_available = 0\n", "min_available"),
    ],
)
def test_bad_rule_files_are_refused_naming_the_key(tmp_path: Path, text: str, named: str) -> None:
    with pytest.raises(DataError, match=named):
        _rules(tmp_path, text)


def test_two_rules_for_the_same_station_and_type_are_refused(tmp_path: Path) -> None:
    rule = "[[rule]]\nstation = 'A'\nunit_type = 'foot'\nmin_available = 1\n"
    with pytest.raises(DataError, match="A/foot"):
        _rules(tmp_path, rule * 2)


# ----------------------------------------------------------------------------- DMEXCLP


def _hand_model() -> MoveUpModel:
    # Site 0 covers nodes 0, 1; site 1 covers 1, 2; site 2 covers 2 (seconds within 180 s).
    seconds = np.array([[60.0, 170.0, 400.0], [300.0, 90.0, 120.0], [500.0, 250.0, 0.0]])
    return MoveUpModel.from_seconds({"car": seconds}, np.array([1.0, 2.0, 3.0]))


def test_expected_coverage_by_hand_on_three_nodes() -> None:
    model = _hand_model()
    sites = np.array([0, 0])
    assert coverage_counts(model, sites, ["car", "car"]).tolist() == [2, 2, 0]
    # q = 0.5: 1*(1-.25) + 2*(1-.25) + 3*0 = 2.25
    assert expected_coverage(model, sites, ["car", "car"], 0.5) == pytest.approx(2.25)
    # Moves of one unit: to site 1 gives k = (1, 2, 1): .5 + 1.5 + 1.5 = 3.5; to site 2
    # gives k = (1, 1, 1): .5 + 1 + 1.5 = 3.0.  DMEXCLP picks site 1.
    move = best_move(model, sites, ["car", "car"], 0.5)
    assert move is not None
    assert (move.unit, move.origin, move.destination) == (0, 0, 1)
    assert move.before == pytest.approx(2.25)
    assert move.after == pytest.approx(3.5)
    assert move.gain == pytest.approx(1.25)


def test_move_bound_and_movable_mask() -> None:
    model = _hand_model()
    move_s = np.array([[0.0, 400.0, 200.0], [0.0, 100.0, 200.0]])
    # Unit 0 may not move: unit 1 goes to site 1 (same gain).
    m = best_move(model, np.array([0, 0]), ["car"] * 2, 0.5, movable=np.array([False, True]))
    assert m is not None and (m.unit, m.destination) == (1, 1)
    # Within 150 s only unit 1 -> site 1 is allowed; within 50 s nothing.
    m = best_move(model, np.array([0, 0]), ["car"] * 2, 0.5, move_s=move_s, max_move_s=150.0)
    assert m is not None and (m.unit, m.destination, m.travel_s) == (1, 1, 100.0)
    assert (
        best_move(model, np.array([0, 0]), ["car"] * 2, 0.5, move_s=move_s, max_move_s=50) is None
    )


def test_no_improving_move_returns_none() -> None:
    model = _hand_model()
    # One unit at site 1 and one at site 0 cover every node: no single move gains.
    assert best_move(model, np.array([1, 0]), ["car", "car"], 0.3) is None


def _brute_force(model, sites, modes, q, move_s, max_move_s):
    best = -np.inf
    before = expected_coverage(model, sites, modes, q)
    for j, b in itertools.product(range(len(sites)), range(model.n_sites)):
        if b == sites[j] or (max_move_s is not None and move_s[j, b] > max_move_s):
            continue
        moved = sites.copy()
        moved[j] = b
        best = max(best, expected_coverage(model, moved, modes, q) - before)
    return best


@settings(max_examples=150, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_sites=st.integers(1, 6),
    n_nodes=st.integers(1, 8),
    n_units=st.integers(1, 5),
    q=st.floats(0.0, 0.95),
    bounded=st.booleans(),
)
def test_chosen_move_equals_brute_force(seed, n_sites, n_nodes, n_units, q, bounded) -> None:
    rng = np.random.default_rng(seed)
    seconds = {
        "car": rng.uniform(0, 400, (n_sites, n_nodes)),
        "foot": rng.uniform(0, 900, (n_sites, n_nodes)),
    }
    model = MoveUpModel.from_seconds(seconds, rng.integers(0, 5, n_nodes).astype(float))
    sites = rng.integers(0, n_sites, n_units)
    modes = rng.choice(["car", "foot"], n_units).tolist()
    move_s = rng.uniform(0, 600, (n_units, n_sites))
    limit = 300.0 if bounded else None
    move = best_move(model, sites, modes, q, move_s=move_s if bounded else None, max_move_s=limit)
    expected = _brute_force(model, sites, modes, q, move_s, limit)
    if move is None:  # gains within rounding (1e-12 of the demand) are no gain
        assert expected <= 1e-12 * max(1.0, float(model.demand.sum()))
    else:
        assert move.gain == pytest.approx(expected, abs=1e-9)
        moved = sites.copy()
        moved[move.unit] = move.destination
        assert expected_coverage(model, moved, modes, q) == pytest.approx(move.after, abs=1e-9)
        assert move.destination != sites[move.unit]
        if bounded:
            assert move.travel_s is not None and move.travel_s <= limit


def test_sparse_reach_matrix_gives_the_same_model() -> None:
    import scipy.sparse as sp

    dense = np.array([[0.0, 170.0, np.inf], [300.0, 90.0, 180.0]])
    stored = np.where(np.isfinite(dense), dense + 1.0, 0.0)  # reach_matrix convention
    a = MoveUpModel.from_seconds({"car": dense}, np.ones(3))
    b = MoveUpModel.from_seconds({"car": sp.csr_array(stored)}, np.ones(3))
    assert (a.covered["car"].toarray() == b.covered["car"].toarray()).all()
    assert a.covered["car"].toarray().tolist() == [[1, 1, 0], [0, 1, 1]]
