"""The reform scenarios shipped in data/scenarios stay valid and say what their comments say."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from citywatch.sim.runner import draw_inputs, prepare
from citywatch.sim.scenario import load_scenario

SCENARIOS = Path(__file__).resolve().parents[2] / "data" / "scenarios"


def fleet_size(path: Path, unit_type: str) -> int:
    s = load_scenario(path)
    return sum(g.count * len(g.stations) for g in s.fleet if g.unit_type == unit_type)


@pytest.mark.parametrize("city", ["manhattan", "shenzhen"])
def test_before_and_after_differ_only_in_fleet_and_policy(city: str) -> None:
    before = load_scenario(SCENARIOS / f"{city}_before.toml")
    after = load_scenario(SCENARIOS / f"{city}_after.toml")
    assert (before.policy, after.policy) == ("station_first", "nearest")
    cars_before = fleet_size(SCENARIOS / f"{city}_before.toml", "patrol_car")
    assert fleet_size(SCENARIOS / f"{city}_after.toml", "patrol_car") == 2 * cars_before
    assert fleet_size(SCENARIOS / f"{city}_before.toml", "motorcycle") == 0
    assert fleet_size(SCENARIOS / f"{city}_after.toml", "motorcycle") > 0
    for field in (
        "pack",
        "start",
        "end",
        "demand",
        "call_handling",
        "on_scene",
        "congestion",
        "seed",
    ):
        assert getattr(before, field) == getattr(after, field), field


def test_network_demand_lies_on_the_city_network() -> None:
    scenario = load_scenario(SCENARIOS / "shenzhen_before.toml")
    prep = prepare(scenario)
    x = draw_inputs(prep, 0, scenario.seed)
    hours = scenario.duration_s / 3600
    # 30 an hour for a week: Poisson count within 4 standard deviations.
    assert abs(len(x.batch) - 30 * hours) < 4 * np.sqrt(30 * hours)
    nodes = set(zip(prep.pack.network.lon, prep.pack.network.lat, strict=True))
    assert set(zip(x.batch.lon, x.batch.lat, strict=True)) <= nodes
    assert all(s is not None for s in x.batch.station)


def test_incident_no_unit_can_reach_is_reported_not_queued_forever() -> None:
    from scipy.sparse.csgraph import breadth_first_order

    from citywatch.city import load_pack
    from citywatch.routing import Router
    from citywatch.sim.runner import run_scenario
    from tests.sim.conftest import make_scenario

    pack = load_pack("shenzhen")
    router = Router.from_pack(pack)
    g = router.graph("car")
    station = pack.stations[0]
    start = int(g.seg_a[router.snap((station.lon, station.lat), "car").segment[0]])
    reached = np.zeros(g.n_nodes, dtype=bool)
    reached[breadth_first_order(g.seconds, start, directed=True, return_predecessors=False)] = True
    lon, lat = pack.network.lon, pack.network.lat
    # A node that the station's cars cannot reach, whose snapped road is cut off as well.
    target = next(
        (float(lon[n]), float(lat[n]))
        for n in np.flatnonzero(~reached)
        if not reached[g.seg_a[router.snap((lon[n], lat[n]), "car").segment[0]]]
        and not reached[g.seg_b[router.snap((lon[n], lat[n]), "car").segment[0]]]
    )
    scenario = make_scenario(
        pack,
        {
            "scenario": {"days": 0.25, "replications": 1, "seed": 2},
            "demand": {"kind": "poisson", "rate_per_hour": 4.0, "points": [list(target)]},
            "fleet": [{"stations": [station.id], "unit_type": "patrol_car", "count": 2}],
        },
    )
    inc = run_scenario(scenario, workers=1).incidents
    assert len(inc) > 0 and (inc["status"] == "unanswered").all()
    assert (inc["unanswered_reason"] == "no unit of the fleet can reach it by road").all()
    assert not inc["waited"].any()
