"""The demo feed over a real dispatch service with a controllable clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import shapely

from citywatch.city import CityPack
from citywatch.city.network import haversine_m
from citywatch.demo.cli import ensure_fleet
from citywatch.demo.feed import FEED_USER, DemoFeed, FeedConfig, Leg
from citywatch.dispatch.service import DispatchService
from citywatch.errors import ValidationError
from citywatch.routing import Router
from tests.dispatch.conftest import ADMIN, Clock, make_service
from tests.web.conftest import calls_from_nodes


@pytest.fixture(scope="module")
def router(manhattan: CityPack) -> Router:
    return Router.from_pack(manhattan)


@pytest.fixture
def service(tmp_path: Path, manhattan: CityPack, router: Router) -> DispatchService:
    svc = make_service(tmp_path, manhattan, router, Clock(datetime(2026, 3, 2, 14, tzinfo=UTC)))
    assert ensure_fleet(svc) == 4 * len(manhattan.stations)
    return svc


def tick(feed: DemoFeed, clock: Clock, seconds: float = 2.0) -> None:
    clock.advance(seconds)
    feed.step()


def test_leg_moves_at_constant_speed_along_the_route() -> None:
    coords = np.array([[-73.98, 40.75], [-73.98, 40.76], [-73.97, 40.76]])
    start = datetime(2026, 1, 1, tzinfo=UTC)
    leg = Leg("patrol", coords, 100.0, start)
    first = float(haversine_m(-73.98, 40.75, -73.98, 40.76))
    second = float(haversine_m(-73.98, 40.76, -73.97, 40.76))
    assert leg.position(start) == (-73.98, 40.75)
    assert leg.position(start + timedelta(seconds=100)) == pytest.approx((-73.97, 40.76))
    assert leg.position(start + timedelta(seconds=500)) == pytest.approx((-73.97, 40.76))
    # After the share first / (first + second) of the time the unit is at the corner.
    corner = start + timedelta(seconds=100 * first / (first + second))
    assert leg.position(corner) == pytest.approx((-73.98, 40.76), abs=1e-9)
    mid = leg.position(start + timedelta(seconds=50))
    # Half the time is half the length: here still on the first (longer) segment.
    assert first > (first + second) / 2
    along = float(haversine_m(-73.98, 40.75, mid[0], mid[1]))
    assert mid[0] == -73.98
    assert along == pytest.approx((first + second) / 2, rel=1e-3)
    assert not leg.done(start + timedelta(seconds=99.9))
    assert leg.done(start + timedelta(seconds=100))


def test_call_dispatch_drive_scene_clear_and_return(
    service: DispatchService, manhattan: CityPack
) -> None:
    clock: Clock = service.clock  # type: ignore[assignment]
    config = FeedConfig(initial_calls=2, auto_dispatch_s=30, on_scene_s=120, patrol_share=0)
    feed = DemoFeed(service, calls_from_nodes(manhattan, clock(), rate_per_hour=0.5), config)
    feed.step()
    incidents = service.list_incidents(ADMIN)
    assert len(incidents) == 2 and {i["status"] for i in incidents} == {"received"}
    assert all(i["created_by"] == FEED_USER for i in incidents)
    tick(feed, clock, 20)
    assert {i["status"] for i in service.list_incidents(ADMIN)} == {"received"}
    # The person at the dashboard did not act: the recommended unit is sent after 30 s.
    target = incidents[0]["id"]
    expected = service.recommend(ADMIN, target, k=1).team[0]
    tick(feed, clock, 12)
    detail = service.get_incident(ADMIN, target)
    (assignment,) = detail["assignments"]
    assert assignment["unit_id"] == expected and assignment["assigned_by"] == FEED_USER
    assert detail["status"] == "en_route"
    leg = feed.legs[expected]
    assert leg.seconds == pytest.approx(assignment["eta_s"], rel=1e-6)
    route = shapely.LineString(leg.coords)
    dispatched = clock()
    while service.get_unit(ADMIN, expected)["status"] == "en_route":
        tick(feed, clock)
        unit = service.get_unit(ADMIN, expected)
        if unit["status"] == "en_route":
            here = shapely.Point(unit["located"]["lon"], unit["located"]["lat"])
            assert route.distance(here) < 1e-7  # on the road, about 1 cm
        assert clock() - dispatched < timedelta(seconds=leg.seconds + 10)
    detail = service.get_incident(ADMIN, target)
    assert detail["status"] == "on_scene"
    # On scene at the first tick after the road ETA.
    travel = (detail["arrived_at"] - detail["dispatched_at"]).total_seconds()
    assert assignment["eta_s"] <= travel < assignment["eta_s"] + config.tick_s + 1e-6
    tick(feed, clock, 60)
    assert service.get_incident(ADMIN, target)["status"] == "on_scene"
    tick(feed, clock, 62)
    assert service.get_incident(ADMIN, target)["status"] == "cleared"
    unit = service.get_unit(ADMIN, expected)
    assert unit["status"] == "returning"
    for _ in range(2000):
        if service.get_unit(ADMIN, expected)["status"] == "available":
            break
        tick(feed, clock, 5)
    unit = service.get_unit(ADMIN, expected)
    assert unit["status"] == "available"
    station = service.stations[unit["station"]]
    home = haversine_m(station.lon, station.lat, unit["located"]["lon"], unit["located"]["lat"])
    assert float(home) < manhattan.max_snap_m


def test_patrols_stay_near_their_station_and_cancellation_is_absorbed(
    service: DispatchService, manhattan: CityPack
) -> None:
    clock: Clock = service.clock  # type: ignore[assignment]
    config = FeedConfig(initial_calls=1, auto_dispatch_s=2, patrol_share=1.0, patrol_radius_m=800)
    feed = DemoFeed(service, calls_from_nodes(manhattan, clock(), rate_per_hour=0.5), config)
    feed.step()
    patrolling = {uid: leg for uid, leg in feed.legs.items() if leg.purpose == "patrol"}
    assert len(patrolling) == 4 * len(manhattan.stations)
    for uid, leg in patrolling.items():
        station = service.stations[service.get_unit(ADMIN, uid)["station"]]
        end = leg.coords[-1]
        assert float(haversine_m(station.lon, station.lat, end[0], end[1])) <= 800 + 250
    tick(feed, clock, 6)
    (incident,) = service.list_incidents(ADMIN)
    unit_id = service.get_incident(ADMIN, incident["id"])["assignments"][0]["unit_id"]
    service.set_incident_status(ADMIN, incident["id"], "cancelled")
    tick(feed, clock, 6)
    assert service.get_unit(ADMIN, unit_id)["status"] == "available"
    assert feed.legs[unit_id].purpose == "patrol"
    moved = [u for u in service.list_units(ADMIN) if not u["position_stale"]]
    assert len(moved) == len(patrolling)


def test_config_is_validated() -> None:
    with pytest.raises(ValidationError):
        FeedConfig(tick_s=0)
    with pytest.raises(ValidationError):
        FeedConfig(patrol_share=1.5)


def test_units_waiting_at_their_station_keep_reporting(
    service: DispatchService, manhattan: CityPack
) -> None:
    # Parked units report like a real AVL device, so a recommendation made minutes into the
    # demo does not find every unit stale.
    clock: Clock = service.clock  # type: ignore[assignment]
    config = FeedConfig(initial_calls=0, patrol_share=0.0, idle_report_s=60)
    feed = DemoFeed(service, calls_from_nodes(manhattan, clock(), rate_per_hour=0.01), config)
    for _ in range(10 * 30):  # ten minutes, well past the staleness limit
        tick(feed, clock)
    units = service.list_units(ADMIN)
    assert len(units) == 4 * len(manhattan.stations)
    assert not any(u["position_stale"] for u in units)
    for unit in units:
        station = service.stations[unit["station"]]
        where = unit["located"]
        assert float(haversine_m(station.lon, station.lat, where["lon"], where["lat"])) < 1.0
