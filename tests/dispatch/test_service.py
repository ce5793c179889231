"""The dispatch service on SQLite: exact recommendations, staleness, lifecycles, KPIs, audit."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import text

from citywatch.city import CityPack
from citywatch.dispatch.accounts import Principal, Role
from citywatch.dispatch.audit import verify_chain
from citywatch.dispatch.service import DispatchService
from citywatch.errors import ConflictError, PermissionDeniedError, SnapError, ValidationError
from citywatch.routing import Router
from tests.dispatch.conftest import ADMIN, Clock, RecordingSink, make_service
from tests.routing.brute import brute_many_to_one

UNIT_TYPES = ["patrol_car", "motorcycle", "foot", "bicycle", "mounted", "special_police"]


def random_points(pack: CityPack, rng: np.random.Generator, n: int) -> np.ndarray:
    """Network nodes shifted by up to ~15 m (so points fall beside the road), inside the pack."""
    lon, lat = pack.network.lon, pack.network.lat
    out: list[tuple[float, float]] = []
    while len(out) < n:
        i = int(rng.integers(len(lon)))
        p = (float(lon[i] + rng.uniform(-1e-4, 1e-4)), float(lat[i] + rng.uniform(-1e-4, 1e-4)))
        if pack.contains(*p):
            out.append(p)
    return np.array(out)


@pytest.mark.parametrize("pack_name", ["manhattan", "shenzhen"])
def test_recommendations_equal_brute_force(
    pack_name: str, request: pytest.FixtureRequest, tmp_path: Path, clock: Clock
) -> None:
    pack, router = request.getfixturevalue(pack_name)
    service = make_service(tmp_path, pack, router, clock)
    rng = np.random.default_rng(7)
    positions = random_points(pack, rng, 36)
    stations = [s.id for s in pack.stations]
    for i, (lon, lat) in enumerate(positions):
        uid = f"u{i}"
        service.create_unit(
            ADMIN, id=uid, unit_type=UNIT_TYPES[i % 6], station=stations[i % len(stations)]
        )
        service.update_position(ADMIN, uid, lon, lat, clock())
    # Four units are busy on a first incident: they must not be ranked.
    first, _ = service.create_incident(
        ADMIN, category="theft", lon=positions[0][0], lat=positions[0][1]
    )
    busy = {"u0", "u1", "u2", "u3"}
    for uid in sorted(busy):
        service.assign(ADMIN, first["id"], uid)
    free = [i for i in range(len(positions)) if f"u{i}" not in busy]
    for target in random_points(pack, rng, 3):
        incident, _ = service.create_incident(
            ADMIN, category="theft", priority=3, lon=target[0], lat=target[1]
        )
        rec = service.recommend(ADMIN, incident["id"], k=100)
        got = {c.unit_id: c.eta_s for c in rec.candidates}
        want: dict[str, float] = {}
        for mode in sorted({service.rules.mode_of(UNIT_TYPES[i % 6]) for i in free}):
            idx = [i for i in free if service.rules.mode_of(UNIT_TYPES[i % 6]) == mode]
            seconds = brute_many_to_one(router, mode, positions[idx], (target[0], target[1]))
            want.update({f"u{i}": s for i, s in zip(idx, seconds, strict=True) if np.isfinite(s)})
        assert set(got) == set(want)
        for uid, eta in want.items():
            assert got[uid] == pytest.approx(eta, rel=1e-9, abs=1e-6), uid
        etas = [c.eta_s for c in rec.candidates]
        assert etas == sorted(etas)
        assert rec.team == (min(want, key=lambda u: (want[u], u)),)


def test_stale_unit_is_located_at_its_post_or_station(
    service: DispatchService, clock: Clock
) -> None:
    station = service.stations["13"]
    service.create_unit(ADMIN, id="car", unit_type="patrol_car", station="13")
    service.create_unit(
        ADMIN, id="posted", unit_type="patrol_car", station="13", post=(-73.9857, 40.7484)
    )
    service.update_position(ADMIN, "car", -73.99, 40.73, clock())
    unit = service.get_unit(ADMIN, "car")
    assert unit["position_stale"] is False and unit["located"] == {"lon": -73.99, "lat": 40.73}
    clock.advance(service.config.stale_after_s + 1)
    unit = service.get_unit(ADMIN, "car")
    assert unit["position_stale"] is True
    assert unit["located"] == {"lon": station.lon, "lat": station.lat}
    assert service.get_unit(ADMIN, "posted")["located"] == {"lon": -73.9857, "lat": 40.7484}
    incident, _ = service.create_incident(ADMIN, category="theft", lon=-73.985, lat=40.735)
    rec = service.recommend(ADMIN, incident["id"])
    assert rec.status == "all_stale" and all(c.position_stale for c in rec.candidates)
    want = brute_many_to_one(
        service.router, "car", np.array([[station.lon, station.lat]]), (-73.985, 40.735)
    )
    assert {c.unit_id: c.eta_s for c in rec.candidates}["car"] == pytest.approx(want[0])


def test_late_position_is_kept_but_does_not_move_the_unit(
    service: DispatchService, clock: Clock
) -> None:
    service.create_unit(ADMIN, id="car", unit_type="patrol_car", station="13")
    assert service.update_position(ADMIN, "car", -73.99, 40.73, clock())["applied"] is True
    late = service.update_position(ADMIN, "car", -73.98, 40.74, clock() - timedelta(seconds=30))
    assert late["applied"] is False
    assert service.get_unit(ADMIN, "car")["position"]["lon"] == -73.99
    with service.sessions() as s:
        assert s.scalar(text("SELECT count(*) FROM unit_positions WHERE unit_id = 'car'")) == 2
    with pytest.raises(ValidationError, match="outside the city pack") as err:
        service.update_position(ADMIN, "car", -70.0, 40.73, clock())
    assert err.value.field == "lon"
    # Liberty Island is inside precinct 1 but ~2.9 km from any road: refused, so that one unit
    # there cannot break every recommendation.
    with pytest.raises(SnapError, match="from the nearest road usable by car") as snap:
        service.update_position(ADMIN, "car", -74.0445, 40.6892, clock())
    assert (snap.value.field, snap.value.code) == ("lon", "off_network")
    with pytest.raises(SnapError) as snap:
        service.create_unit(ADMIN, id="x", unit_type="foot", station="1", post=(-74.0445, 40.6892))
    assert snap.value.field == "post"
    with pytest.raises(ValidationError, match="future"):
        service.update_position(ADMIN, "car", -73.99, 40.73, clock() + timedelta(hours=1))


def test_lifecycle_kpis_and_timeline(service: DispatchService, clock: Clock) -> None:
    t0 = clock()
    for uid, station in [("a", "13"), ("b", "13"), ("c", "1")]:
        service.create_unit(ADMIN, id=uid, unit_type="patrol_car", station=station)
    inc1, _ = service.create_incident(
        ADMIN, category="robbery", priority=2, lon=-73.985, lat=40.735
    )
    clock.advance(60)
    service.assign(ADMIN, inc1["id"], "a")
    clock.advance(30)
    service.set_unit_status(ADMIN, "a", "en_route")
    clock.advance(150)
    service.set_unit_status(ADMIN, "a", "on_scene")  # response 240 s, dispatch 60 s, travel 180 s
    clock.advance(600)
    service.set_incident_status(ADMIN, inc1["id"], "cleared")
    assert service.get_unit(ADMIN, "a")["status"] == "returning"
    detail = service.get_incident(ADMIN, inc1["id"])
    assert detail["status"] == "cleared"
    assert [a["outcome"] for a in detail["assignments"]] == ["completed"]
    assert [(e["type"], e["data"].get("to")) for e in detail["timeline"]] == [
        ("incident.created", None),
        ("incident.status", "dispatched"),
        ("assignment.created", None),
        ("incident.status", "en_route"),
        ("unit.status", "en_route"),
        ("incident.status", "on_scene"),
        ("unit.status", "on_scene"),
        ("incident.status", "cleared"),
        ("assignment.ended", None),
        ("unit.status", "returning"),
    ]
    # A second incident reached in 120 s (dispatch 100 s, travel 20 s), a third cancelled.
    inc2, _ = service.create_incident(ADMIN, category="theft", lon=-73.99, lat=40.73)
    clock.advance(100)
    service.assign(ADMIN, inc2["id"], "b")
    clock.advance(20)
    service.set_unit_status(ADMIN, "b", "on_scene")
    inc3, _ = service.create_incident(ADMIN, category="theft", lon=-73.99, lat=40.73)
    service.assign(ADMIN, inc3["id"], "c")
    service.set_incident_status(ADMIN, inc3["id"], "cancelled")
    assert service.get_unit(ADMIN, "c")["status"] == "available"

    out = service.kpis(ADMIN, start=t0, end=clock() + timedelta(seconds=1))
    (g,) = out["groups"]
    assert (g["incidents"], g["cancelled"], g["dispatched"], g["reached"]) == (3, 1, 3, 2)
    assert g["response_s"] == {"n": 2, "mean": 180.0, "p50": 180.0, "p90": 120 + 0.9 * 120}
    assert g["call_to_dispatch_s"]["mean"] == pytest.approx((60 + 100 + 0) / 3)
    assert g["travel_s"] == {"n": 2, "mean": 100.0, "p50": 100.0, "p90": 20 + 0.9 * 160}
    assert g["share_on_scene_within"] == {"180": 0.5, "600": 1.0}
    by_station = service.kpis(ADMIN, start=t0, end=clock() + timedelta(seconds=1), by="station")
    assert [(x["group"], x["incidents"]) for x in by_station["groups"]] == [("13", 1), ("9", 2)]
    units = out["units"]
    assert (
        units["by_station"]["13"]["available"] == 0 and units["by_station"]["1"]["available"] == 1
    )
    assert units["on_street"] == 3
    area = sum(service.pack.area_km2(s.jurisdiction) for s in service.pack.stations)
    assert units["on_street_per_km2"] == pytest.approx(3 / area)


def test_called_off_unit_returns_incident_to_received(service: DispatchService) -> None:
    service.create_unit(ADMIN, id="a", unit_type="foot", station="13")
    inc, _ = service.create_incident(ADMIN, category="theft", lon=-73.985, lat=40.735)
    service.assign(ADMIN, inc["id"], "a")
    service.set_unit_status(ADMIN, "a", "available")
    detail = service.get_incident(ADMIN, inc["id"])
    assert detail["status"] == "received" and detail["assignments"][0]["outcome"] == "called_off"
    with pytest.raises(ConflictError, match="allowed from available: dispatched, out_of_service"):
        service.set_unit_status(ADMIN, "a", "on_scene")
    with pytest.raises(ConflictError, match="by assigning it"):
        service.set_unit_status(ADMIN, "a", "dispatched")


def test_idempotency_key_and_validation(service: DispatchService) -> None:
    args = {"category": "theft", "lon": -73.985, "lat": 40.735}
    a, created_a = service.create_incident(ADMIN, **args, idempotency_key="k1", request_hash="h1")
    b, created_b = service.create_incident(ADMIN, **args, idempotency_key="k1", request_hash="h1")
    assert (created_a, created_b) == (True, False) and a["id"] == b["id"]
    with pytest.raises(ConflictError, match="different request"):
        service.create_incident(ADMIN, **args, idempotency_key="k1", request_hash="h2")
    assert len(service.list_incidents(ADMIN)) == 1
    with pytest.raises(ValidationError, match="unknown category") as err:
        service.create_incident(ADMIN, category="jaywalking", lon=-73.985, lat=40.735)
    assert err.value.field == "category"
    with pytest.raises(ValidationError) as err:
        service.create_incident(ADMIN, category="theft", lon=-73.985, lat=95.0)
    assert err.value.field == "lat"
    analyst = Principal("ana", Role.ANALYST)
    with pytest.raises(PermissionDeniedError):
        service.create_incident(analyst, **args)


def test_audit_chain_detects_tampering(
    tmp_path: Path, manhattan: tuple[CityPack, Router], clock: Clock
) -> None:
    service = make_service(tmp_path, *manhattan, clock)
    service.create_unit(ADMIN, id="a", unit_type="patrol_car", station="13")
    inc, _ = service.create_incident(ADMIN, category="theft", lon=-73.985, lat=40.735)
    service.assign(ADMIN, inc["id"], "a")
    with service.sessions() as s:
        check = verify_chain(s)
    assert check.ok and check.records == 4  # unit, incident, incident status, assignment
    engine = service.sessions.kw["bind"]
    with engine.begin() as conn, pytest.raises(Exception, match="append-only"):
        conn.execute(text("UPDATE audit_log SET actor = 'mallory' WHERE seq = 2"))
    with engine.begin() as conn:  # someone with the database owner's rights
        conn.execute(text("DROP TRIGGER audit_log_no_update"))
        conn.execute(text("DROP TRIGGER audit_log_no_delete"))
        conn.execute(text("UPDATE audit_log SET actor = 'mallory' WHERE seq = 2"))
    with service.sessions() as s:
        check = verify_chain(s)
    assert (check.ok, check.broken_seq, check.reason) == (
        False,
        2,
        "content does not match its hash",
    )
    with engine.begin() as conn:
        conn.execute(text("UPDATE audit_log SET actor = 'chief' WHERE seq = 2"))
        conn.execute(text("DELETE FROM audit_log WHERE seq = 3"))
    with service.sessions() as s:
        check = verify_chain(s)
    assert (check.ok, check.broken_seq, check.reason) == (False, 3, "record 3 is missing")


def test_events_are_staged_for_every_change(service: DispatchService, clock: Clock) -> None:
    service.create_unit(ADMIN, id="a", unit_type="patrol_car", station="13")
    service.update_position(ADMIN, "a", -73.99, 40.73, clock())
    inc, _ = service.create_incident(ADMIN, category="theft", lon=-73.985, lat=40.735)
    service.assign(ADMIN, inc["id"], "a")
    sink = service.sink
    assert isinstance(sink, RecordingSink)
    assert [e["type"] for e in sink.events] == [
        "unit.created",
        "unit.moved",
        "incident.created",
        "incident.status",
        "assignment.created",
    ]
    assert sink.events[-1]["station"] == "13" and sink.events[-1]["bureau"] == "PBMS"
