"""The pursuit routes: analysis of an incident's flight and one-click dispatch of its plan."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from citywatch.api.app import create_app
from citywatch.api.settings import Settings
from citywatch.city import CityPack
from citywatch.pursuit.analysis import Flight, plan_report
from citywatch.pursuit.intercept import PursuitUnit
from citywatch.pursuit.reach import Incident
from citywatch.routing import Router
from citywatch.store.dispatch_models import AuditRecord
from tests.api.conftest import Server, seed_users, start_server, stop_server

TIMES_SQUARE = {"lon": -73.9855, "lat": 40.7580}
#: (unit, type, station): cars and a motorcycle team of the Midtown precincts.
FLEET = [
    ("P14-c1", "patrol_car", "14"),
    ("P14-m1", "motorcycle", "14"),
    ("P18-c1", "patrol_car", "18"),
    ("P13-c1", "patrol_car", "13"),
    ("P10-c1", "patrol_car", "10"),
    ("P17-c1", "patrol_car", "17"),
]
BODY = {"mode": "motorcycle", "k": 3, "routes": 300, "seed": 7, "delay_s": 60, "cameras": False}


@pytest.fixture(scope="module")
def srv(
    tmp_path_factory: pytest.TempPathFactory, manhattan: tuple[CityPack, Router]
) -> Iterator[Server]:
    pack, router = manhattan
    db = Path(tmp_path_factory.mktemp("pursuit")) / "citywatch.db"
    server = start_server(
        create_app(Settings(pack="manhattan", db_url=f"sqlite:///{db}"), pack=pack, router=router)
    )
    seed_users(server)
    admin = server.client("admin")
    for uid, utype, station in FLEET:
        r = admin.post("/api/v1/units", json={"id": uid, "unit_type": utype, "station": station})
        assert r.status_code == 201, r.text
    yield server
    stop_server(server)


def _incident(srv: Server) -> str:
    r = srv.client("admin").post(
        "/api/v1/incidents", json={"category": "robbery", "location": TIMES_SQUARE}
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def test_pursuit_equals_the_core_and_reports_its_shares(
    srv: Server, manhattan: tuple[CityPack, Router]
) -> None:
    pack, router = manhattan
    inc_id = _incident(srv)
    r = srv.client("ana").post(f"/api/v1/incidents/{inc_id}/pursuit", json=BODY)  # read only
    assert r.status_code == 200, r.text
    doc = r.json()
    rings = doc["rings"]["geojson"]["features"]
    assert [f["properties"]["minutes"] for f in rings] == [10, 5, 3, 1]
    km = [row["street_km"] for row in doc["rings"]["summary"]]
    assert km == sorted(km) and km[0] > 0
    assert doc["hiding"]["assumptions"]["routes"] == 300
    assert doc["hiding"]["assumptions"]["person_level_inputs"] is False
    assert 0 < doc["hiding"]["ranking"][0]["p_end"] <= 1
    # The same analysis computed by the core directly: same checkpoints, same shares.
    incident = srv.client("admin").get(f"/api/v1/incidents/{inc_id}").json()
    at = datetime.fromisoformat(incident["received_at"])
    units = srv.client("admin").get("/api/v1/units").json()
    fleet = [
        PursuitUnit(u["id"], u["unit_type"], u["mode"], u["located"]["lon"], u["located"]["lat"])
        for u in units
    ]
    inc = Incident(incident["lon"], incident["lat"], at, "motorcycle")
    flight = Flight.simulate(pack, inc, router=router, n_routes=300, seed=7)
    want = plan_report(flight, fleet, 3, delay_s=60.0)
    plan = doc["plan"]
    assert [c["unit"] for c in plan["checkpoints"]] == [c["unit"] for c in want["checkpoints"]]
    assert [c["node"] for c in plan["checkpoints"]] == [c["node"] for c in want["checkpoints"]]
    assert plan["out_of_sample"]["share"] == pytest.approx(want["out_of_sample"]["share"])
    assert plan["naive"]["share"] == pytest.approx(want["naive"]["share"])
    oos = plan["out_of_sample"]
    assert oos["ci_low"] <= oos["share"] <= oos["ci_high"]
    assert plan["method"] == "milp" and plan["in_sample"]["gap"] == 0
    assert doc["units_available"] == len(FLEET)


def test_pursuit_refuses_bad_input_in_the_one_error_shape(srv: Server) -> None:
    inc_id = _incident(srv)
    c = srv.client("disp")
    url = f"/api/v1/incidents/{inc_id}/pursuit"
    for body, field in [
        ({"k": 0}, "k"),
        ({"k": 21}, "k"),
        ({"routes": 10}, "routes"),
        ({"minutes": [45]}, "minutes"),
        ({"minutes": []}, "minutes"),
        ({"mode": "tank"}, "mode"),
        ({"seed": -1}, "seed"),
        ({"bogus": 1}, "bogus"),
        ({"origin": {"lon": 116.4, "lat": 39.9}}, "origin"),
    ]:
        r = c.post(url, json={**BODY, **body})
        assert r.status_code == 422, (body, r.text)
        err = r.json()["error"]
        assert err["code"] == "validation_error" and err["field"] == field, (body, err)
    received = datetime.fromisoformat(c.get(f"/api/v1/incidents/{inc_id}").json()["received_at"])
    early = {**TIMES_SQUARE, "at": (received - timedelta(minutes=5)).isoformat()}
    r = c.post(url, json={**BODY, "sighting": early})
    assert r.status_code == 422 and "before the incident" in r.json()["error"]["message"]
    assert c.post("/api/v1/incidents/nope/pursuit", json=BODY).status_code == 404
    dev = srv.client("dev-a").post(url, json=BODY)
    assert dev.status_code == 403 and dev.json()["error"]["code"] == "forbidden"


def test_a_sighting_moves_the_origin(srv: Server) -> None:
    inc_id = _incident(srv)
    c = srv.client("disp")
    received = datetime.fromisoformat(c.get(f"/api/v1/incidents/{inc_id}").json()["received_at"])
    seen = {"lon": -73.9772, "lat": 40.7527, "at": (received + timedelta(seconds=2)).isoformat()}
    time.sleep(2)  # a sighting in the past
    body = {**BODY, "delay_s": None, "sighting": {**seen, "heading_deg": 180}}
    doc = c.post(f"/api/v1/incidents/{inc_id}/pursuit", json=body).json()
    assert doc["origin"]["source"] == "sighting"
    assert (doc["origin"]["lon"], doc["origin"]["lat"]) == (seen["lon"], seen["lat"])
    assert datetime.fromisoformat(doc["origin"]["at"]) == datetime.fromisoformat(seen["at"])
    assert doc["origin"]["sighting"] == {"by": "hand", "heading_deg": 180}
    assert doc["hiding"]["assumptions"]["heading_deg"] == 180
    assert doc["delay_s"] == pytest.approx(60 + doc["elapsed_s"], abs=0.11)


def test_dispatch_applies_the_plan_atomically_and_audited(srv: Server) -> None:
    inc_id = _incident(srv)
    disp = srv.client("disp")
    plan = disp.post(f"/api/v1/incidents/{inc_id}/pursuit", json=BODY).json()["plan"]
    cps = [
        {"unit_id": c["unit"], "lon": c["lon"], "lat": c["lat"], "eta_s": c["eta_s"]}
        for c in plan["checkpoints"]
    ]
    assert len(cps) >= 2
    url = f"/api/v1/incidents/{inc_id}/pursuit/dispatch"
    denied = srv.client("ana").post(url, json={"checkpoints": cps})
    assert denied.status_code == 403
    sessions = srv.app.state.service.sessions

    def audited() -> int:
        with sessions() as s:
            q = select(func.count()).where(AuditRecord.action == "assignment.created")
            return int(s.scalar(q) or 0)

    audited_before = audited()
    r = disp.post(url, json={"checkpoints": cps})
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["assigned"] == len(cps)
    assert [x["unit_id"] for x in out["results"]] == [c["unit_id"] for c in cps]
    assert all(x["result"] == "assigned" for x in out["results"])
    for c in cps:
        assert disp.get(f"/api/v1/units/{c['unit_id']}").json()["status"] == "dispatched"
    detail = disp.get(f"/api/v1/incidents/{inc_id}").json()
    assert detail["status"] == "dispatched"
    events = [e for e in detail["timeline"] if e["type"] == "assignment.created"]
    assert [e["unit_id"] for e in events] == [c["unit_id"] for c in cps]
    assert events[0]["data"]["detail"]["pursuit_checkpoint"]["lon"] == cps[0]["lon"]
    assert audited() == audited_before + len(cps)
    # Again, with one more unit that is still available: all refused, nothing assigned.
    free = next(u for u in disp.get("/api/v1/units?status=available").json())["id"]
    again = [*cps, {"unit_id": free, **TIMES_SQUARE}]
    r = disp.post(url, json={"checkpoints": again})
    assert r.status_code == 409
    err = r.json()["error"]
    assert err["code"] == "conflict" and err["field"] == "unit_ids"
    results = {d["unit_id"]: d for d in err["details"]}
    assert results[free]["result"] == "not_applied"
    assert all(results[c["unit_id"]]["reason"] == "unit is dispatched" for c in cps)
    assert disp.get(f"/api/v1/units/{free}").json()["status"] == "available"
    assert audited() == audited_before + len(cps)
    r = disp.post(url, json={"checkpoints": [{"unit_id": "ghost", **TIMES_SQUARE}]})
    assert r.status_code == 409 and r.json()["error"]["details"][0]["reason"] == "not_found"
    dup = disp.post(url, json={"checkpoints": [{"unit_id": free, **TIMES_SQUARE}] * 2})
    assert dup.status_code == 422 and dup.json()["error"]["field"] == "unit_ids"


# ---------------------------------------------------------------- sighting hand-off
#: Two plate readers in Midtown: where the stolen car is read first (the incident is opened
#: there from its alert) and a block away a little later (the sighting the pursuit starts from).
READER_A = {"lon": -73.9855, "lat": 40.7580}
READER_B = {"lon": -73.9772, "lat": 40.7527}


def _hit_then_incident(srv: Server, plate: str) -> tuple[str, dict[str, Any]]:
    """A stolen-car hit at reader A opened as an incident, then a later hit at reader B; the
    incident id and the second sighting as the store keeps it."""
    from tests.sightings.test_api import _entry, _feed, _now, _read, _sensor

    if "alpr-gw" not in srv.headers:
        _sensor(srv, "ps-a", READER_A, "plate_reader")
        _sensor(srv, "ps-b", READER_B, "plate_reader")
        _feed(srv, "alpr-gw")
    disp = srv.client("disp")
    assert disp.post("/api/v1/hotlists/entries", json=_entry(plate)).status_code == 201
    feed = srv.client("alpr-gw")
    first = feed.post("/api/v1/sightings", json={"sightings": [_read("ps-a", plate)]}).json()
    (alert_id,) = first["alerts_created"]
    r = disp.post(f"/api/v1/sightings/alerts/{alert_id}/incident")
    assert r.status_code == 201, r.text
    incident = r.json()
    later = {**_read("ps-b", plate), "seen_at": _now(0.5)}
    time.sleep(1.0)  # the second read is after the incident was received, and in the past
    second = feed.post("/api/v1/sightings", json={"sightings": [later]}).json()
    assert second["hits"] == 1, second
    track = disp.get(f"/api/v1/sightings/alerts/{second['alerts_created'][0]}").json()["track"]
    return str(incident["id"]), track[-1]


def test_a_stored_sighting_moves_origin_clock_and_heading(srv: Server) -> None:
    inc_id, seen = _hit_then_incident(srv, "PUR 001")
    disp = srv.client("disp")
    listed = disp.get(f"/api/v1/incidents/{inc_id}/pursuit/sightings").json()
    # The first read opened the incident (before it was received); the later one is linked.
    assert [s["id"] for s in listed["sightings"]] == [seen["id"]]
    assert listed["sightings"][0]["sensor_id"] == "ps-b"
    assert 0 <= listed["sightings"][0]["elapsed_s"] < 60
    assert "value" not in listed["sightings"][0]
    url = f"/api/v1/incidents/{inc_id}/pursuit"
    for sighting in ({"latest": True, "heading_deg": 90}, {"id": seen["id"], "heading_deg": 90}):
        r = disp.post(url, json={**BODY, "delay_s": None, "sighting": sighting})
        assert r.status_code == 200, r.text
        doc = r.json()
        origin = doc["origin"]
        assert origin["source"] == "sighting" and origin["heading_deg"] == 90
        assert (origin["lon"], origin["lat"]) == (seen["lon"], seen["lat"])
        assert datetime.fromisoformat(origin["at"]) == datetime.fromisoformat(seen["seen_at"])
        assert origin["sighting"]["id"] == seen["id"]
        assert origin["sighting"]["by"] == ("latest" if "latest" in sighting else "id")
        assert doc["hiding"]["assumptions"]["heading_deg"] == 90
        # Units leave now, the offender left the sighting then: the delay counts the time since.
        assert doc["delay_s"] == pytest.approx(60 + doc["elapsed_s"], abs=0.11)
        assert 0 < doc["elapsed_s"] < 60
    # The analyst reads no hotlist: it sees no linked sighting and may not use one.
    ana = srv.client("ana")
    assert ana.get(f"/api/v1/incidents/{inc_id}/pursuit/sightings").json()["sightings"] == []
    r = ana.post(url, json={**BODY, "sighting": {"id": seen["id"]}})
    assert r.status_code == 403 and r.json()["error"]["field"] == "sighting"
    r = ana.post(url, json={**BODY, "sighting": {"latest": True}})
    assert r.status_code == 422 and "no linked sighting" in r.json()["error"]["message"]


def test_the_sighting_of_a_pursuit_is_refused_in_the_one_error_shape(srv: Server) -> None:
    inc_id = _incident(srv)
    c = srv.client("disp")
    url = f"/api/v1/incidents/{inc_id}/pursuit"
    received = datetime.fromisoformat(c.get(f"/api/v1/incidents/{inc_id}").json()["received_at"])
    soon = (received + timedelta(seconds=1)).isoformat()
    for sighting, field, message in [
        ({"latest": True}, "sighting", "no linked sighting"),
        ({"id": 987654321}, "sighting", "no sighting 987654321"),
        ({"id": 1, "lon": -73.98, "lat": 40.75, "at": soon}, "sighting", "exactly one of"),
        ({"lon": -73.98, "lat": 40.75}, "sighting", "needs lon, lat and at"),
        ({}, "sighting", "exactly one of"),
        ({**TIMES_SQUARE, "at": soon, "heading_deg": 400}, "sighting.heading_deg", ""),
        (
            {**TIMES_SQUARE, "at": (received + timedelta(hours=1)).isoformat()},
            "sighting",
            "in the future",
        ),
        ({"lon": 116.4, "lat": 39.9, "at": soon}, "sighting", "outside the city pack"),
    ]:
        r = c.post(url, json={**BODY, "sighting": sighting})
        err = r.json()["error"]
        assert r.status_code in (404, 422) and err["field"] == field, (sighting, err)
        assert message in err["message"], (sighting, err)
    both = {**BODY, "heading_deg": 45, "sighting": {**TIMES_SQUARE, "at": soon}}
    err = c.post(url, json=both).json()["error"]
    assert err["field"] == "heading_deg" and "sighting.heading_deg" in err["message"]
    dev = srv.client("dev-a").get(f"/api/v1/incidents/{inc_id}/pursuit/sightings")
    assert dev.status_code == 403
