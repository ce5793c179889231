"""The engine's record building and point registration, on arrays small enough to check by hand."""

from __future__ import annotations

import numpy as np

from citywatch.city import CityPack
from citywatch.routing import Router
from citywatch.sim.engine import _teams, _texts
from citywatch.sim.travel import SearchTravel


def test_teams_join_each_incidents_units_in_dispatch_order() -> None:
    # Assignments in dispatch order: incident 2 got a, then c, then e; incident 1 none.
    teams = _teams(4, np.array([2, 0, 2, 3, 2]), np.array(list("abcde"), dtype=object))
    assert teams.tolist() == ["b", "", "a;c;e", "d"]


def test_teams_without_assignments_are_empty() -> None:
    teams = _teams(2, np.zeros(0, np.int64), np.zeros(0, dtype=object))
    assert teams.tolist() == ["", ""]


def test_texts_by_code_and_none_for_codes_without_one() -> None:
    codes = np.array([0, 1, 3, -1, 5, 1])
    assert _texts({1: "one", 3: "three"}, codes).tolist() == [
        None,
        "one",
        "three",
        None,
        None,
        "one",
    ]


def test_register_numbers_distinct_points_in_order_of_first_appearance(
    pack: CityPack, router: Router
) -> None:
    travel = SearchTravel(router, ["car"])
    nodes = np.c_[pack.network.lon, pack.network.lat][[10, 20, 30]] + 1e-5
    ids = travel.register(nodes[[1, 0, 1, 2, 0]])
    assert ids.tolist() == [0, 1, 0, 2, 1]
    assert np.array_equal(travel.lonlat, nodes[[1, 0, 2]])
    # Known points keep their ids; a new one is appended and snapped like the others.
    again = travel.register([*nodes[[2, 1]].tolist(), (nodes[0, 0] + 1e-5, nodes[0, 1])])
    assert again.tolist() == [2, 0, 3]
    assert travel.loc_seg.shape == (1, 4)
    snap = router.snap(travel.lonlat, "car")
    assert np.array_equal(travel.loc_seg[0], snap.segment)
    assert np.allclose(travel.loc_frac[0], snap.fraction)
