"""Roles and jurisdiction scope, endpoint by endpoint."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from websockets.exceptions import InvalidStatus, WebSocketException
from websockets.sync.client import connect

from citywatch.dispatch.accounts import create_token, create_user, disable_user
from tests.api.conftest import PASSWORD, Server

UNION_SQUARE = {"lon": -73.9903, "lat": 40.7359}  # precinct 13, bureau PBMS
WALL_STREET = {"lon": -74.0090, "lat": 40.7060}  # precinct 1, bureau PBMS
HARLEM = {"lon": -73.9500, "lat": 40.8100}  # precinct 28, bureau PBMN


@pytest.fixture(scope="module")
def world(server: Server) -> Iterator[dict[str, str]]:
    admin = server.client("admin")
    for uid, station in [("A13-1", "13"), ("A13-2", "13"), ("A1-1", "1"), ("A28-1", "28")]:
        assert (
            admin.post(
                "/api/v1/units", json={"id": uid, "unit_type": "patrol_car", "station": station}
            ).status_code
            == 201
        )
    ids = {}
    for name, loc in [("inc13", UNION_SQUARE), ("inc1", WALL_STREET), ("inc28", HARLEM)]:
        r = admin.post("/api/v1/incidents", json={"category": "theft", "location": loc})
        ids[name] = r.json()["id"]
    assert admin.get(f"/api/v1/incidents/{ids['inc28']}").json()["bureau"] == "PBMN"
    yield ids


def code(r: object) -> int:
    return r.status_code  # type: ignore[attr-defined]


def test_station_officer_per_endpoint(server: Server, world: dict[str, str]) -> None:
    c = server.client("off13")
    own, other = world["inc13"], world["inc1"]
    assert code(c.get(f"/api/v1/incidents/{own}")) == 200
    denied = {
        "get incident": c.get(f"/api/v1/incidents/{other}"),
        "recommendations": c.get(f"/api/v1/incidents/{other}/recommendations"),
        "assign": c.post(f"/api/v1/incidents/{other}/assignments", json={"unit_id": "A13-2"}),
        "incident status": c.post(
            f"/api/v1/incidents/{other}/status", json={"status": "cancelled"}
        ),
        "create incident elsewhere": c.post(
            "/api/v1/incidents", json={"category": "theft", "location": WALL_STREET}
        ),
        "get unit": c.get("/api/v1/units/A1-1"),
        "unit position": c.put(
            "/api/v1/units/A1-1/position", json={**WALL_STREET, "at": datetime.now(UTC).isoformat()}
        ),
        "unit status": c.post("/api/v1/units/A1-1/status", json={"status": "out_of_service"}),
        "create unit elsewhere": c.post(
            "/api/v1/units", json={"id": "X-1", "unit_type": "foot", "station": "1"}
        ),
    }
    for what, r in denied.items():
        assert code(r) == 403, what
        assert r.json()["error"]["code"] == "forbidden", what
    assert "outside your scope (13)" in denied["get incident"].json()["error"]["message"]
    # Lists and KPIs hold only the officer's station.
    listed = {i["id"] for i in c.get("/api/v1/incidents").json()}
    assert own in listed and other not in listed and world["inc28"] not in listed
    assert {u["station"] for u in c.get("/api/v1/units").json()} == {"13"}
    kpis = c.get("/api/v1/kpis", params={"by": "station"}).json()
    assert {g["group"] for g in kpis["groups"]} == {"13"}
    assert set(kpis["units"]["by_station"]) == {"13"}
    # Within its own station the officer works normally, and may send any station's unit.
    assert code(c.get(f"/api/v1/incidents/{own}/recommendations")) == 200
    assert code(c.post(f"/api/v1/incidents/{own}/assignments", json={"unit_id": "A1-1"})) == 201


def test_bureau_scope(server: Server, world: dict[str, str]) -> None:
    c = server.client("offPBMN")
    assert code(c.get(f"/api/v1/incidents/{world['inc28']}")) == 200
    assert code(c.get(f"/api/v1/incidents/{world['inc13']}")) == 403
    assert {u["id"] for u in c.get("/api/v1/units").json()} >= {"A28-1"}
    assert "A13-1" not in {u["id"] for u in c.get("/api/v1/units").json()}


def test_analyst_reads_only(server: Server, world: dict[str, str]) -> None:
    c = server.client("ana")
    assert code(c.get(f"/api/v1/incidents/{world['inc1']}")) == 200
    assert code(c.get("/api/v1/kpis")) == 200
    assert (
        code(c.post("/api/v1/incidents", json={"category": "theft", "location": UNION_SQUARE}))
        == 403
    )
    assert (
        code(c.post(f"/api/v1/incidents/{world['inc1']}/assignments", json={"unit_id": "A13-2"}))
        == 403
    )
    assert code(c.post("/api/v1/units/A13-2/status", json={"status": "out_of_service"})) == 403


def test_unit_device_posts_only_its_own_position_and_status(
    server: Server, world: dict[str, str]
) -> None:
    c = server.client("dev-a")
    now = datetime.now(UTC).isoformat()
    assert c.get("/api/v1/me").json() == {
        "username": "dev-a",
        "role": "unit_device",
        "scope": None,
        "unit_id": "A13-1",
    }
    assert code(c.put("/api/v1/units/A13-1/position", json={**UNION_SQUARE, "at": now})) == 200
    assert code(c.put("/api/v1/units/A13-2/position", json={**UNION_SQUARE, "at": now})) == 403
    assert code(c.post("/api/v1/units/A13-1/status", json={"status": "out_of_service"})) == 200
    assert code(c.post("/api/v1/units/A13-1/status", json={"status": "available"})) == 200
    assert code(c.post("/api/v1/units/A13-2/status", json={"status": "out_of_service"})) == 403
    for r in [
        c.get("/api/v1/incidents"),
        c.get(f"/api/v1/incidents/{world['inc13']}"),
        c.post("/api/v1/incidents", json={"category": "theft", "location": UNION_SQUARE}),
        c.get("/api/v1/units"),
        c.get("/api/v1/kpis"),
    ]:
        assert code(r) == 403


def test_authentication_failures(server: Server) -> None:
    anon = server.client()
    r = anon.get("/api/v1/incidents")
    assert r.status_code == 401 and r.headers["WWW-Authenticate"] == "Bearer"
    assert r.json()["error"]["code"] == "not_authenticated"
    r = anon.get("/api/v1/incidents", headers={"Authorization": "Bearer not-a-token"})
    assert r.status_code == 401 and r.json()["error"]["message"] == "invalid access token"
    secret = server.app.state.settings.jwt_secret
    past = datetime.now(UTC) - timedelta(hours=1)
    expired = jwt.encode(
        {"sub": "disp", "role": "dispatcher", "exp": past}, secret, algorithm="HS256"
    )
    r = anon.get("/api/v1/incidents", headers={"Authorization": f"Bearer {expired}"})
    assert r.status_code == 401 and "expired" in r.json()["error"]["message"]
    forged = jwt.encode(
        {"sub": "x", "role": "admin", "exp": past + timedelta(hours=2)}, "k" * 40, algorithm="HS256"
    )
    assert (
        anon.get("/api/v1/incidents", headers={"Authorization": f"Bearer {forged}"}).status_code
        == 401
    )
    r = anon.post("/api/v1/auth/token", data={"username": "disp", "password": "wrong password"})
    assert (
        r.status_code == 401 and r.json()["error"]["message"] == "incorrect user name or password"
    )


def test_demo_account_and_disabled_device(server: Server) -> None:
    sessions = server.app.state.service.sessions
    with sessions.begin() as s:
        create_user(s, "demo", "admin", password=PASSWORD, demo=True)
        create_user(s, "dev-b", "unit_device", unit_id="A13-2")
        token = create_token(s, "dev-b")
    anon = server.client()
    r = anon.post("/api/v1/auth/token", data={"username": "demo", "password": PASSWORD})
    assert r.status_code == 401
    assert r.json()["error"]["message"] == "demo accounts work only in demo mode"
    headers = {"Authorization": f"Bearer {token}"}
    assert anon.get("/api/v1/me", headers=headers).status_code == 200
    with sessions.begin() as s:
        disable_user(s, "dev-b")
    r = anon.get("/api/v1/me", headers=headers)
    assert r.status_code == 401 and r.json()["error"]["message"] == "invalid or revoked API token"


def test_event_stream_respects_scope(server: Server, world: dict[str, str]) -> None:
    with pytest.raises((InvalidStatus, WebSocketException)), connect(server.ws_url) as ws:
        ws.recv(timeout=5)
    token = server.headers["off13"]["Authorization"].split()[1]
    admin = server.client("admin")
    with connect(f"{server.ws_url}?access_token={token}") as ws:
        r1 = admin.post("/api/v1/incidents", json={"category": "theft", "location": WALL_STREET})
        r13 = admin.post("/api/v1/incidents", json={"category": "theft", "location": UNION_SQUARE})
        event = json.loads(ws.recv(timeout=20))
        assert event["type"] == "incident.created"
        assert event["incident_id"] == r13.json()["id"] != r1.json()["id"]
