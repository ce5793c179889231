"""Sensor registry routes: roles and station scope, status history, audit, dashboard layers."""

from __future__ import annotations

from sqlalchemy import select

from citywatch.store.dispatch_models import AuditRecord
from tests.api.conftest import Server

EAST_VILLAGE = {"id": "api-13", "lon": -73.982486, "lat": 40.731361}  # 1 Ave @ 14 St, pct 13
EAST_HARLEM = {"id": "api-23", "lon": -73.938074, "lat": 40.791427}  # 1 Ave @ 110 St, pct 23


def _register(server: Server, where: dict[str, object], **extra: object) -> dict:  # type: ignore[type-arg]
    body = {"kind": "ptz", "owner": "police", **where, **extra}
    with server.client("admin") as c:
        r = c.post("/api/v1/sensors", json=body)
    assert r.status_code == 201, r.text
    doc: dict = r.json()  # type: ignore[type-arg]
    return doc


def test_register_roles_scope_and_history(server: Server) -> None:
    a = _register(server, EAST_VILLAGE, power_off="23:00-06:00", name="1 Ave @ 14 St")
    assert (a["station"], a["bureau"], a["power_off"]) == ("13", "PBMS", "23:00-06:00")
    assert a["snap_m"] < 10 and a["history"][0]["status"] == "online"
    _register(server, EAST_HARLEM, owner="market")
    with server.client("disp") as c:
        r = c.post("/api/v1/sensors", json={"kind": "ptz", "owner": "police", **EAST_HARLEM})
        assert r.status_code == 403
    with server.client("admin") as c:
        r = c.post(
            "/api/v1/sensors",
            json={"kind": "ptz", "owner": "police", "id": "far", "lon": 0, "lat": 0},
        )
        assert r.status_code == 422
        r = c.post("/api/v1/sensors", json={"kind": "drone", "owner": "police", **EAST_HARLEM})
        assert r.status_code == 422
    with server.client("off13") as c:
        ids = [s["id"] for s in c.get("/api/v1/sensors").json()]
        assert "api-13" in ids and "api-23" not in ids
        assert c.get("/api/v1/sensors/api-23").status_code == 403
        assert c.put("/api/v1/sensors/api-23/status", json={"status": "offline"}).status_code == 403
        r = c.put("/api/v1/sensors/api-13/status", json={"status": "offline", "note": "dark"})
        assert r.status_code == 200, r.text
        assert [h["status"] for h in r.json()["history"]] == ["online", "offline"]
        assert r.json()["history"][1]["note"] == "dark"
    with server.client("offPBMN") as c:
        ids = [s["id"] for s in c.get("/api/v1/sensors").json()]
        assert "api-23" in ids and "api-13" not in ids
    with server.client("ana") as c:
        assert c.get("/api/v1/sensors/api-13").json()["status"] == "offline"
        assert c.put("/api/v1/sensors/api-13/status", json={"status": "online"}).status_code == 403
    with server.client("dev-a") as c:
        assert c.get("/api/v1/sensors").status_code == 403
    with server.client("admin") as c:
        assert c.get("/api/v1/sensors/none").status_code == 404
    with server.app.state.service.sessions() as s:
        actions = s.scalars(
            select(AuditRecord.action).where(AuditRecord.entity_id == "manhattan:api-13")
        ).all()
    assert actions == ["sensor.create", "sensor.status"]


def test_dashboard_layers(server: Server) -> None:
    _register(server, {"id": "layer-13", "lon": -73.9825, "lat": 40.7314}, range_m=100.0)
    with server.client("off13") as c:
        layer = c.get("/api/v1/sensors/layer").json()
        assert {f["properties"]["station"] for f in layer["features"]} == {"13"}
        colours = {f["properties"]["id"]: f["properties"]["colour"] for f in layer["features"]}
        assert colours["layer-13"] == "#1a9850"
        cov = c.get("/api/v1/surveillance/coverage").json()
        assert set(cov["by_area"]) == {"13"}
        assert cov["by_area"]["13"]["share_by_hour"][12] > 0
        blind = c.get("/api/v1/surveillance/blind-spots", params={"hour": 3, "top": 5}).json()
        assert len(blind["features"]) == 5
        assert {f["properties"]["area"] for f in blind["features"]} == {"13"}
        assert c.get("/api/v1/surveillance/blind-spots", params={"hour": 24}).status_code == 422
