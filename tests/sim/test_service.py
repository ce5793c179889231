"""The live dispatch service and the simulator recommend the same team for the same state.

The service ranks units from its database with the Router; the simulator calls the same policy
function with the same unit and incident views, but travel from the precomputed matrices.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from citywatch.city import CityPack
from citywatch.dispatch.policy import IncidentView, UnitView, recommend
from citywatch.routing import Router
from citywatch.sim.runner import scenario_policy
from citywatch.sim.travel import SearchTravel
from tests.dispatch.conftest import ADMIN, Clock, make_service
from tests.sim.conftest import make_scenario
from tests.sim.test_travel import near_nodes


@pytest.mark.parametrize("policy", ["nearest", "station_first"])
def test_live_service_and_simulator_agree(
    policy: str, pack: CityPack, router: Router, car_travel: SearchTravel, tmp_path: Path
) -> None:
    service = make_service(tmp_path, pack, router, Clock())
    scenario = make_scenario(
        pack,
        {
            "demand": {"kind": "poisson", "rate_per_hour": 1.0, "points": [[-73.99, 40.75]]},
            "dispatch": {"policy": policy, "threshold_s": 300},
            "fleet": [{"stations": ["14"], "unit_type": "patrol_car", "count": 1}],
        },
    )
    rng = np.random.default_rng(21)
    stations = [s.id for s in pack.stations]
    types = ["patrol_car", "special_police"]
    views = []
    for i, (lon, lat) in enumerate(near_nodes(pack, rng, 30)):
        uid, utype, st = f"u{i}", types[i % 2], stations[i % len(stations)]
        service.create_unit(ADMIN, id=uid, unit_type=utype, station=st)
        service.update_position(ADMIN, uid, float(lon), float(lat), service.clock())
        views.append(UnitView(uid, utype, "car", st, float(lon), float(lat)))
    for category, priority in (("theft", 3), ("robbery", 1), ("shooting", 1)):
        for lon, lat in near_nodes(pack, rng, 3):
            created, _ = service.create_incident(
                ADMIN, category=category, priority=priority, lon=float(lon), lat=float(lat)
            )
            live = service.recommend(
                ADMIN, created["id"], k=5, policy=policy, threshold_s=scenario.threshold_s
            )
            station = pack.locate(float(lon), float(lat))["station"]
            view = IncidentView(created["id"], category, priority, float(lon), float(lat), station)
            sim = recommend(view, views, car_travel, scenario_policy(scenario), k=5)
            assert sim.team == live.team, (category, policy)
            assert sim.status == live.status
            assert [c.unit_id for c in sim.candidates] == [c.unit_id for c in live.candidates]
            np.testing.assert_allclose(
                [c.eta_s for c in sim.candidates], [c.eta_s for c in live.candidates], atol=1e-3
            )
