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
