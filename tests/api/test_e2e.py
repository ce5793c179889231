"""End to end over HTTP and WebSocket against a real uvicorn server on loopback.

Units stand at real Manhattan places; recommendations are checked against networkx brute force
on every unit, then a unit is dispatched and walked through its lifecycle, KPIs are read, and
every change is seen on the event stream.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from websockets.sync.client import ClientConnection, connect

from citywatch.dispatch.accounts import Principal, Role
from tests.api.conftest import Server
from tests.routing.brute import brute_many_to_one

# (lon, lat) of real places, read off OpenStreetMap.
PLACES = {
    "times_square": (-73.9855, 40.7580),
    "union_square": (-73.9903, 40.7359),
    "washington_square": (-73.9973, 40.7308),
    "wall_street": (-74.0090, 40.7060),
    "grand_central": (-73.9772, 40.7527),
    "columbus_circle": (-73.9819, 40.7681),
    "apollo_theater": (-73.9500, 40.8100),
    "chelsea_market": (-74.0060, 40.7424),
    "essex_street": (-73.9880, 40.7190),
    "lincoln_center": (-73.9835, 40.7725),
}
UNITS = [
    ("E-car-1", "patrol_car", "times_square"),
    ("E-car-2", "patrol_car", "wall_street"),
    ("E-car-3", "patrol_car", "apollo_theater"),
    ("E-moto-1", "motorcycle", "grand_central"),
    ("E-foot-1", "foot", "washington_square"),
    ("E-bike-1", "bicycle", "chelsea_market"),
    ("E-horse-1", "mounted", "columbus_circle"),
    ("E-swat-1", "special_police", "essex_street"),
]


def recv(ws: ClientConnection, until: str, timeout: float = 20.0) -> list[dict[str, Any]]:
    """Events received up to and including the first of type ``until``."""
    seen = []
    while True:
        event = json.loads(ws.recv(timeout=timeout))
        seen.append(event)
        if event["type"] == until:
            return seen


def test_end_to_end(server: Server) -> None:
    admin = server.client("admin")
    service = server.app.state.service
    token = server.headers["disp"]["Authorization"].split()[1]
    with connect(f"{server.ws_url}?access_token={token}") as ws:
        # Units at real places, each registered with the station that covers its place.
        now = datetime.now(UTC)
        for uid, utype, place in UNITS:
            lon, lat = PLACES[place]
            station = service.pack.locate(lon, lat)["station"]
            r = admin.post(
                "/api/v1/units", json={"id": uid, "unit_type": utype, "station": station}
            )
            assert r.status_code == 201, r.text
            r = admin.put(
                f"/api/v1/units/{uid}/position",
                json={"lon": lon, "lat": lat, "at": now.isoformat()},
            )
            assert r.json()["applied"] is True
        events = recv(ws, "unit.moved")
        assert events[0]["type"] == "unit.created" and events[0]["unit_id"] == "E-car-1"

        disp = server.client("disp")
        t_call = datetime.now(UTC) - timedelta(seconds=1)
        lon, lat = PLACES["union_square"]
        r = disp.post(
            "/api/v1/incidents",
            json={
                "category": "theft",
                "priority": 3,
                "location": {"lon": lon, "lat": lat},
                "caller_notes": "phone snatched near the subway entrance",
            },
        )
        assert r.status_code == 201, r.text
        incident = r.json()
        assert (incident["station"], incident["bureau"], incident["status"]) == (
            "13",
            "PBMS",
            "received",
        )
        assert incident["category_label"] == {"en": "Theft", "zh": "盗窃"}
        created = recv(ws, "incident.created")[-1]
        assert created["incident_id"] == incident["id"] and created["actor"] == "disp"

        # Recommendations rank every unit; compare with networkx on the split graph, per mode.
        r = disp.get(f"/api/v1/incidents/{incident['id']}/recommendations", params={"k": 100})
        rec = r.json()
        assert rec["status"] == "ok" and rec["policy"] == "nearest"
        ours = {c["unit_id"]: c for c in rec["candidates"] if c["unit_id"].startswith("E-")}
        assert set(ours) == {u[0] for u in UNITS}
        for uid, utype, place in UNITS:
            mode = service.rules.mode_of(utype)
            want = brute_many_to_one(service.router, mode, np.array([PLACES[place]]), (lon, lat))[0]
            assert ours[uid]["eta_s"] == pytest.approx(want, rel=1e-9), uid
            assert ours[uid]["mode"] == mode and ours[uid]["position_stale"] is False
        etas = [c["eta_s"] for c in rec["candidates"]]
        assert etas == sorted(etas)
        best = rec["candidates"][0]["unit_id"]
        assert rec["team"] == [best]

        r = disp.post(f"/api/v1/incidents/{incident['id']}/assignments", json={"unit_id": best})
        assert r.status_code == 201, r.text
        assert r.json()["eta_s"] == pytest.approx(rec["candidates"][0]["eta_s"])
        assert recv(ws, "assignment.created")[-1]["unit_id"] == best
        for status in ("en_route", "on_scene"):
            r = disp.post(f"/api/v1/units/{best}/status", json={"status": status})
            assert r.status_code == 200 and r.json()["to"] == status
        r = disp.post(f"/api/v1/incidents/{incident['id']}/status", json={"status": "cleared"})
        assert r.status_code == 200
        tail = recv(ws, "incident.status")
        while tail[-1]["data"]["to"] != "cleared":
            tail = recv(ws, "incident.status")

        detail = disp.get(f"/api/v1/incidents/{incident['id']}").json()
        assert detail["status"] == "cleared"
        assert [e["type"] for e in detail["timeline"]][:3] == [
            "incident.created",
            "incident.status",
            "assignment.created",
        ]
        assert all(e["actor"] == "disp" for e in detail["timeline"])
        assert service.get_unit(Principal("test", Role.ADMIN), best)["status"] == "returning"

        # KPIs of the window holding just this incident.
        received = datetime.fromisoformat(detail["received_at"])
        arrived = datetime.fromisoformat(detail["arrived_at"])
        dispatched = datetime.fromisoformat(detail["dispatched_at"])
        r = disp.get(
            "/api/v1/kpis", params={"from": t_call.isoformat(), "to": datetime.now(UTC).isoformat()}
        )
        (g,) = r.json()["groups"]
        assert (g["incidents"], g["reached"]) == (1, 1)
        assert g["response_s"]["mean"] == pytest.approx(
            (arrived - received).total_seconds(), abs=1e-6
        )
        assert g["call_to_dispatch_s"]["p50"] == pytest.approx(
            (dispatched - received).total_seconds(), abs=1e-6
        )
        assert g["share_on_scene_within"] == {"180": 1.0, "600": 1.0}
        units = r.json()["units"]
        assert units["by_station"]["13"]["area_km2"] == pytest.approx(service.pack.area_km2("13"))


def test_stale_positions_over_http(server: Server) -> None:
    admin = server.client("admin")
    admin.post("/api/v1/units", json={"id": "S-1", "unit_type": "patrol_car", "station": "1"})
    old = datetime.now(UTC) - timedelta(hours=1)
    r = admin.put(
        "/api/v1/units/S-1/position", json={"lon": -73.99, "lat": 40.73, "at": old.isoformat()}
    )
    assert r.json()["applied"] is True
    unit = admin.get("/api/v1/units/S-1").json()
    station = server.app.state.service.stations["1"]
    assert unit["position_stale"] is True
    assert unit["located"] == {"lon": station.lon, "lat": station.lat}
    assert unit["position"]["lon"] == -73.99


def test_validation_errors_name_the_field(server: Server) -> None:
    disp = server.client("disp")
    cases = [
        (
            {"category": "theft", "location": {"lon": -70.0, "lat": 40.7}},
            "location",
            "outside the city pack",
        ),
        (
            {"category": "theft", "location": {"lon": -73.98, "lat": 91}},
            "location.lat",
            "less than or equal",
        ),
        (
            {"category": "unicorns", "location": {"lon": -73.98, "lat": 40.75}},
            "category",
            "unknown category",
        ),
        (
            {"category": "theft", "location": {"lon": -73.98, "lat": 40.75}, "priority": 9},
            "priority",
            "less than",
        ),
        ({"category": "theft"}, "location", "Field required"),
    ]
    for body, fld, message in cases:
        r = disp.post("/api/v1/incidents", json=body)
        assert r.status_code == 422, body
        err = r.json()["error"]
        assert (err["status"], err["code"], err["field"]) == (422, "validation_error", fld), err
        assert message in err["message"]
    # Liberty Island lies in precinct 1 but nearly 3 km from any road a car can use.
    liberty = {"category": "theft", "location": {"lon": -74.0445, "lat": 40.6892}}
    err = disp.post("/api/v1/incidents", json=liberty).json()["error"]
    assert (err["status"], err["code"], err["field"]) == (422, "off_network", "location")
    assert "from the nearest road usable by car" in err["message"]
    r = disp.put(
        "/api/v1/units/E-none/position",
        json={"lon": -73.98, "lat": 40.75, "at": "2026-01-01T00:00:00"},
    )
    assert r.status_code == 422 and r.json()["error"]["field"] == "at"
    r = disp.get("/api/v1/incidents/live:nope")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = disp.get("/api/v1/no-such-route")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_illegal_transition_and_busy_unit(server: Server) -> None:
    disp = server.client("disp")
    disp.post("/api/v1/units", json={"id": "L-1", "unit_type": "foot", "station": "13"})
    r = disp.post("/api/v1/units/L-1/status", json={"status": "on_scene"})
    assert r.status_code == 409
    assert r.json()["error"]["message"] == (
        "unit cannot go from available to on_scene; "
        "allowed from available: dispatched, out_of_service"
    )
    r = disp.post("/api/v1/units/L-1/status", json={"status": "out_of_service"})
    assert r.status_code == 200
    inc = disp.post(
        "/api/v1/incidents", json={"category": "theft", "location": {"lon": -73.99, "lat": 40.736}}
    ).json()
    r = disp.post(f"/api/v1/incidents/{inc['id']}/assignments", json={"unit_id": "L-1"})
    assert r.status_code == 409 and "L-1 is out_of_service" in r.json()["error"]["message"]


def test_idempotency_over_http(server: Server) -> None:
    disp = server.client("disp")
    body = {"category": "burglary", "location": {"lon": -73.99, "lat": 40.736}}
    first = disp.post("/api/v1/incidents", json=body, headers={"Idempotency-Key": "call-778"})
    again = disp.post("/api/v1/incidents", json=body, headers={"Idempotency-Key": "call-778"})
    assert (first.status_code, again.status_code) == (201, 200)
    assert (
        again.headers["Idempotent-Replayed"] == "true" and again.json()["id"] == first.json()["id"]
    )
    other = disp.post(
        "/api/v1/incidents", json={**body, "priority": 1}, headers={"Idempotency-Key": "call-778"}
    )
    assert other.status_code == 409 and other.json()["error"]["field"] == "Idempotency-Key"
    # Keys are scoped per user: another caller's equal key is another call, not a replay
    # (nor a 409 that would reveal the first caller's request).
    admin = server.client("admin")
    theirs = admin.post("/api/v1/incidents", json=body, headers={"Idempotency-Key": "call-778"})
    assert theirs.status_code == 201 and "Idempotent-Replayed" not in theirs.headers
    assert theirs.json()["id"] != first.json()["id"]
    assert theirs.json()["created_by"] == "admin"
    changed = admin.post(
        "/api/v1/incidents", json={**body, "priority": 1}, headers={"Idempotency-Key": "call-778"}
    )
    assert changed.status_code == 409
    replay = admin.post("/api/v1/incidents", json=body, headers={"Idempotency-Key": "call-778"})
    assert replay.status_code == 200 and replay.json()["id"] == theirs.json()["id"]


def test_openapi_document(server: Server) -> None:
    doc = server.client().get("/openapi.json").json()
    for path in [
        "/api/v1/incidents",
        "/api/v1/incidents/{incident_id}/recommendations",
        "/api/v1/incidents/{incident_id}/assignments",
        "/api/v1/units/{unit_id}/position",
        "/api/v1/kpis",
        "/api/v1/auth/token",
    ]:
        assert path in doc["paths"], path
    assert server.client().get("/api/v1/health").json()["pack"] == "manhattan"


def test_tokens_in_websocket_urls_are_redacted_from_logs(server: Server) -> None:
    record = logging.LogRecord(
        "uvicorn.error",
        logging.INFO,
        __file__,
        1,
        '%s - "WebSocket %s" [accepted]',
        ("127.0.0.1:5000", "/api/v1/events?access_token=eyJ.secret.sig&x=1"),
        None,
    )
    for f in logging.getLogger("uvicorn.error").filters:
        f.filter(record)
    assert (
        record.getMessage()
        == '127.0.0.1:5000 - "WebSocket /api/v1/events?access_token=***&x=1" [accepted]'
    )
