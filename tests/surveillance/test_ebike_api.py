"""E-bike registry routes: roles and station scope, minimal contact, theft -> hotlist, stats."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from citywatch.store.dispatch_models import AuditRecord
from citywatch.store.sightings_models import HotlistEntryRow
from tests.api.conftest import Server

EAST_VILLAGE = {"lon": -73.982486, "lat": 40.731361}  # 1 Ave @ 14 St, precinct 13


def _layer_ids(c: Any) -> set[str]:
    r = c.get("/api/v1/ebikes/thefts/layer")
    assert r.status_code == 200, r.text
    return {f["properties"]["id"] for f in r.json()["features"]}


def test_register_theft_and_recover_through_the_api(server: Server) -> None:
    with server.client("off13") as c:
        r = c.post("/api/v1/ebikes", json={"tag": "API-0001", "make": "Niu", "contact": "a@b.org"})
        assert r.status_code == 201, r.text
        bike = r.json()
        assert (bike["station"], bike["tag_hint"], bike["contact"]) == ("13", "0001", "a@b.org")
        assert c.post("/api/v1/ebikes", json={"tag": "API-0001"}).status_code == 409
        bad = c.post("/api/v1/ebikes", json={"tag": "API-0002", "contact": "Jane Doe"})
        assert bad.status_code == 422 and "telephone" in bad.text
        extra = c.post("/api/v1/ebikes", json={"tag": "API-0003", "owner_name": "Jane"})
        assert extra.status_code == 422  # nothing but the listed fields is accepted
    with server.client("disp") as c:
        assert (
            c.post("/api/v1/ebikes", json={"tag": "API-0004", "station": "13"}).status_code == 403
        )
        found = c.post("/api/v1/ebikes/lookup", json={"tag": "api 0001"}).json()
        assert found["contact"] is None and found["has_contact"] is True
    with server.client("off1") as c:
        assert c.post("/api/v1/ebikes/lookup", json={"tag": "API-0001"}).status_code == 403
        assert all(b["tag_hint"] != "0001" for b in c.get("/api/v1/ebikes").json())
    stolen_at = datetime.now(UTC) - timedelta(hours=2)
    with server.client("off13") as c:
        r = c.post(
            "/api/v1/ebikes/thefts",
            json={"tag": "API-0001", "occurred_at": stolen_at.isoformat(), **EAST_VILLAGE},
        )
        assert r.status_code == 201, r.text
        report = r.json()
        assert (report["station"], report["status"]) == ("13", "open")
        naive = c.post(
            "/api/v1/ebikes/thefts", json={"tag": "API-0001", "occurred_at": "2026-01-01T10:00"}
        )
        assert naive.status_code == 422
        stolen = c.get("/api/v1/ebikes", params={"status": "stolen"}).json()
        assert "0001" in [b["tag_hint"] for b in stolen]
    with server.app.state.service.sessions() as s:
        entry = s.get(HotlistEntryRow, report["hotlist_entry_id"])
        assert entry is not None and (entry.list_name, entry.status) == ("stolen_ebikes", "active")
    hour = stolen_at.astimezone(ZoneInfo("America/New_York")).hour
    with server.client("ana") as c:
        assert c.get("/api/v1/ebikes").status_code == 403  # analysts: aggregates only
        stats = c.get("/api/v1/ebikes/stats").json()
        area = {a["area"]: a for a in stats["by_area"]}
        assert area["13"]["total"] >= 1 and area["13"]["by_hour"][hour] >= 1
        assert c.get("/api/v1/ebikes/thefts/layer").status_code == 403
    with server.client("off1") as c:
        assert [a["area"] for a in c.get("/api/v1/ebikes/stats").json()["by_area"]] == ["1"]
        assert report["incident_id"] not in _layer_ids(c)  # precinct 13 is not theirs
    with server.client("disp") as c:
        ids = _layer_ids(c)
        assert report["incident_id"] in ids
        (feature,) = [f for f in c.get("/api/v1/ebikes/thefts/layer").json()["features"]
                      if f["properties"]["id"] == report["incident_id"]]  # fmt: skip
        assert feature["properties"]["items"] == [{"kind": "ebike", "make": "Niu", "colour": None}]
        assert c.get("/api/v1/ebikes/thefts").json()[0]["items"][0]["make"] == "Niu"
    with server.client("dev-a") as c:
        assert c.get("/api/v1/ebikes/stats").status_code == 403
        assert c.get("/api/v1/ebikes/thefts/layer").status_code == 403
    with server.client("off13") as c:
        assert c.post("/api/v1/ebikes/recover", json={"tag": "API-0001"}).status_code == 200
        assert c.post("/api/v1/ebikes/recover", json={"tag": "API-0001"}).status_code == 409
        assert c.post("/api/v1/ebikes/deregister", json={"tag": "API-0001"}).status_code == 200
        assert c.post("/api/v1/ebikes/lookup", json={"tag": "API-0001"}).status_code == 404
    with server.app.state.service.sessions() as s:
        actions = s.scalars(
            select(AuditRecord.action)
            .where(
                AuditRecord.entity == "ebike", AuditRecord.entity_id == f"manhattan:{bike['id']}"
            )
            .order_by(AuditRecord.seq)
        ).all()
    assert actions == ["ebike.register", "ebike.theft_report", "ebike.recover", "ebike.deregister"]
