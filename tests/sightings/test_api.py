"""Sightings over HTTP: validation per read, hotlist hits routed to the station and its
neighbours, roles and visibility (REST and WebSocket), one-click incident, tracks, audit."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from websockets.sync.client import ClientConnection, connect

from citywatch.dispatch.accounts import Principal, Role, create_token, create_user
from citywatch.store.dispatch_models import AuditRecord, User
from tests.api.conftest import Server

# Manhattan: 1 Ave @ 14 St and 2 Ave @ 23 St lie in precinct 13 (Patrol Borough Manhattan
# South); 1 Ave @ 110 St in precinct 23 (Manhattan North).  Precinct 13 borders 6, 9, 10, 14
# and 17 (NYPD precinct map).
P13_A = {"lon": -73.982486, "lat": 40.731361}
P13_B = {"lon": -73.981380, "lat": 40.737640}
P23 = {"lon": -73.938074, "lat": 40.791427}
NEIGHBOURS_13 = ["10", "14", "17", "6", "9"]


def _account(server: Server, username: str, role: str, scope: str | None = None) -> None:
    with server.app.state.service.sessions.begin() as s:
        s.add(
            User(
                username=username, role=role, scope=scope, disabled=False, is_demo=False,
                created_at=datetime.now(UTC),
            )
        )  # fmt: skip
    token = server.app.state.tokens.issue(Principal(username, Role(role), scope))
    server.headers[username] = {"Authorization": f"Bearer {token}"}


def _feed(server: Server, username: str) -> None:
    with server.app.state.service.sessions.begin() as s:
        create_user(s, username, "sensor_feed")
        token = create_token(s, username, "alpr gateway")
    server.headers[username] = {"Authorization": f"Bearer {token}"}


def _sensor(server: Server, sensor_id: str, where: dict[str, float], kind: str) -> None:
    with server.client("admin") as c:
        r = c.post(
            "/api/v1/sensors", json={"id": sensor_id, "kind": kind, "owner": "police", **where}
        )
    assert r.status_code == 201, r.text


def _now(offset_s: float = 0.0) -> str:
    return (datetime.now(UTC) + timedelta(seconds=offset_s)).isoformat()


def _read(sensor: str, value: str, kind: str = "plate", **kw: Any) -> dict[str, Any]:
    return {"sensor_id": sensor, "seen_at": _now(-1), "kind": kind, "value": value, **kw}


def _entry(value: str, reason: str = "stolen_vehicle", **kw: Any) -> dict[str, Any]:
    return {
        "kind": "plate",
        "value": value,
        "reason": reason,
        "owner": "Precinct 13 detective squad",
        "legal_basis": "stolen vehicle report, NY VTL 1224",
        "case_ref": "CASE-1",
        "label": "grey sedan",
        "priority": 2,
        "purpose": "stolen car reported by its owner",
        **kw,
    }


def _alerts_on(ws: ClientConnection, n: int) -> list[dict[str, Any]]:
    seen = []
    while len(seen) < n:
        event = json.loads(ws.recv(timeout=20))
        if event["type"] == "sighting.alert":
            seen.append(event)
    return seen


def test_batch_validation_hits_routing_and_visibility(server: Server) -> None:
    _sensor(server, "sg-13a", P13_A, "plate_reader")
    _sensor(server, "sg-13b", P13_B, "fixed_camera")
    _sensor(server, "sg-23", P23, "plate_reader")
    _feed(server, "alpr-gw")
    _account(server, "off9", "station_officer", "9")
    _account(server, "off23", "station_officer", "23")
    with server.client("admin") as c:
        r = c.post(
            "/api/v1/units", json={"id": "SG-13-1", "unit_type": "patrol_car", "station": "13"}
        )
        assert r.status_code == 201, r.text
    with server.client("disp") as c:
        r = c.post("/api/v1/hotlists/entries", json=_entry("ABC 1234"))
        assert r.status_code == 201, r.text
        car = r.json()
        assert car["list_name"] == "stolen_vehicles" and car["value"] is None
        r = c.post("/api/v1/hotlists/entries", json=_entry("ZZZ 999", case_ref="CASE-2"))
        assert r.status_code == 201, r.text
        assert (
            c.post("/api/v1/hotlists/entries", json={**_entry("Q1"), "purpose": ""}).status_code
            == 422
        )

    tok = {u: server.headers[u]["Authorization"][7:] for u in ("off13", "off9", "off23", "ana")}
    with contextlib.ExitStack() as stack:
        ws = {
            u: stack.enter_context(connect(f"{server.ws_url}?access_token={t}"))
            for u, t in tok.items()
        }
        reads = [
            _read("sg-13a", "abc-1234", confidence=0.93),  # hit (spacing and case ignored)
            _read("sg-13a", "NOTLISTED"),
            _read("nope", "ABC1234"),  # unknown sensor
            {**_read("sg-13a", "ABC1234"), "seen_at": _now(60)},  # in the future
            {**_read("sg-13a", "ABC1234"), "seen_at": _now(-3 * 86_400)},  # too old
            _read("sg-13a", "TAG1", kind="ebike_tag"),  # a plate reader reads no tags
            _read("sg-13a", "not-hex", hashed=True),
            _read("sg-13a", "ABC1234", lon=0.0, lat=0.0),  # mobile reader outside the city
        ]
        with server.client("alpr-gw") as c:
            r = c.post("/api/v1/sightings", json={"sightings": reads})
            assert r.status_code == 200, r.text
            out = r.json()
            assert (out["stored"], out["hits"], out["refused"]) == (2, 1, 6)
            res = out["results"]
            assert res[0]["hit"] and res[0]["alert_id"] == out["alerts_created"][0]
            assert res[1]["stored"] and not res[1]["hit"]
            fields = [x["error"]["field"] if x["error"] else None for x in res]
            assert fields == [None, None, "sensor_id", "seen_at", "seen_at", "kind", "value", "lon"]
            assert res[2]["error"]["status"] == 404
            # a feed account reads nothing
            assert c.get("/api/v1/sightings/alerts").status_code == 403
            assert c.get("/api/v1/units").status_code == 403
            # whole-request limits: 1,001 reads, long values, unknown fields
            big = {"sightings": [_read("sg-13a", "X")] * 1001}
            assert c.post("/api/v1/sightings", json=big).status_code == 422
            assert (
                c.post(
                    "/api/v1/sightings", json={"sightings": [_read("sg-13a", "X" * 129)]}
                ).status_code
                == 422
            )
            assert (
                c.post(
                    "/api/v1/sightings", json={"sightings": [{**_read("sg-13a", "X"), "face": 1}]}
                ).status_code
                == 422
            )
        alert_id = out["alerts_created"][0]
        # a hit in precinct 23 afterwards: the first alert off23 sees is that one
        with server.client("alpr-gw") as c:
            r = c.post("/api/v1/sightings", json={"sightings": [_read("sg-23", "ZZZ999")]})
            other_id = r.json()["alerts_created"][0]
        (first13,) = _alerts_on(ws["off13"], 1)
        (first9,) = _alerts_on(ws["off9"], 1)
        (first23,) = _alerts_on(ws["off23"], 1)
        assert first13["data"]["id"] == first9["data"]["id"] == alert_id
        assert first23["data"]["id"] == other_id
        alert = first13["data"]
        assert alert["station"] == "13" and alert["kind"] == "hotlist_hit"
        assert (
            sorted(r["station"] for r in alert["recipients"] if r["role"] == "neighbour")
            == NEIGHBOURS_13
        )
        assert alert["recommended"][0]["unit_id"] == "SG-13-1"
        assert (alert["label"], alert["case_ref"], alert["reason"]) == (
            "grey sedan",
            "CASE-1",
            "stolen_vehicle",
        )
        # the analyst reads no hotlist: its stream gets neither alert (a later incident
        # event, visible to it, arrives first)
        with server.client("admin") as c:
            c.post("/api/v1/incidents", json={"category": "theft", "location": P23})
        while True:
            event = json.loads(ws["ana"].recv(timeout=20))
            assert event["type"] != "sighting.alert"
            if event["type"] == "incident.created":
                break

    def ids(user: str) -> list[int]:
        with server.client(user) as c:
            r = c.get("/api/v1/sightings/alerts")
            assert r.status_code == 200, r.text
            return [a["id"] for a in r.json()]

    assert alert_id in ids("off13") and alert_id in ids("off9") and alert_id in ids("disp")
    assert (
        alert_id not in ids("off23")
        and alert_id not in ids("off1")
        and alert_id not in ids("offPBMN")
    )
    assert ids("ana") == []
    with server.client("off23") as c:
        assert c.get(f"/api/v1/sightings/alerts/{alert_id}").status_code == 403
        assert c.post(f"/api/v1/sightings/alerts/{alert_id}/incident").status_code == 403
        assert c.get(f"/api/v1/sightings/tracks/{car['id']}").json()["features"] == []

    # a second read 2 minutes later at the other sensor joins the alert: a track
    with server.client("alpr-gw") as c:
        r = c.post("/api/v1/sightings", json={"sightings": [_read("sg-13b", "ABC1234")]})
        assert r.json()["alerts_updated"] == [alert_id] and r.json()["alerts_created"] == []
    with server.client("off13") as c:
        detail = c.get(f"/api/v1/sightings/alerts/{alert_id}").json()
        assert detail["sightings"] == 2 and detail["sensor_id"] == "sg-13b"
        assert [t["sensor_id"] for t in detail["track"]] == ["sg-13a", "sg-13b"]
        track = c.get(f"/api/v1/sightings/tracks/{car['id']}").json()
        line = track["features"][0]["geometry"]
        assert line["type"] == "LineString" and len(line["coordinates"]) == 2
        # one click opens an incident at the latest sighting, in precinct 13
        r = c.post(f"/api/v1/sightings/alerts/{alert_id}/incident")
        assert r.status_code == 201, r.text
        incident = r.json()
        assert (incident["category"], incident["station"]) == ("vehicle_theft", "13")
        again = c.get(f"/api/v1/sightings/alerts/{alert_id}").json()
        assert (again["status"], again["incident_id"]) == ("incident", incident["id"])
        assert c.post(f"/api/v1/sightings/alerts/{alert_id}/incident").status_code == 409
        r = c.post(f"/api/v1/sightings/alerts/{alert_id}/status", json={"status": "closed"})
        assert r.status_code == 200 and r.json()["status"] == "closed"

    # searching every sighting of a plate: admins and commanders, with a purpose, audited
    with server.client("disp") as c:
        q = {"kind": "plate", "value": "NOTLISTED", "purpose": "check"}
        assert c.get("/api/v1/sightings", params=q).status_code == 403
    with server.client("admin") as c:
        q = {"kind": "plate", "value": "notlisted", "purpose": "case 7 follow-up"}
        found = c.get("/api/v1/sightings", params=q).json()
        assert [(f["sensor_id"], f["hit"], f["value"]) for f in found] == [("sg-13a", False, None)]
        assert c.get("/api/v1/sightings", params={**q, "purpose": ""}).status_code == 422
    with server.app.state.service.sessions() as s:

        def audits(action: str) -> list[AuditRecord]:
            # in chain order: PostgreSQL returns unordered rows in any order
            q = select(AuditRecord).where(AuditRecord.action == action)
            return list(s.scalars(q.order_by(AuditRecord.seq)))

        assert any(
            a.after["purpose"] == "stolen car reported by its owner"
            for a in audits("hotlist.create")
        )
        assert any(
            a.after["purpose"] == "case 7 follow-up" and a.after["returned"] == 1
            for a in audits("sightings.search")
        )
        ingest = [a for a in audits("sightings.ingest") if a.actor == "alpr-gw"]
        assert [(a.after["stored"], a.after["hits"], a.after["refused"]) for a in ingest][:1] == [
            (2, 1, 6)
        ]
        created = [x for a in ingest for x in a.after["alerts_created"]]
        first = next(x for x in created if x["id"] == alert_id)
        assert {x["id"] for x in created} >= {alert_id, other_id}
        assert (first["station"], first["recommended"][0]["unit_id"]) == ("13", "SG-13-1")
        assert len(first["recipients"]) == 6
        statuses = [
            a.after["status"]
            for a in audits("sighting_alert.status")
            if a.entity_id == str(alert_id)
        ]
        assert statuses == ["incident", "closed"]


def test_hotlist_roles_over_http(server: Server) -> None:
    offender = _entry("CASE-REF-9", reason="repeat_offender", kind="subject_ref")
    with server.client("off13") as c:
        assert c.post("/api/v1/hotlists/entries", json=offender).status_code == 403
        assert "watchlist" in c.get("/api/v1/hotlists").json()
    with server.client("admin") as c:
        r = c.post("/api/v1/hotlists/entries", json=offender)
        assert r.status_code == 201, r.text
        entry = r.json()
        r = c.patch(
            f"/api/v1/hotlists/entries/{entry['id']}", json={"priority": 1, "purpose": "escalated"}
        )
        assert r.json()["priority"] == 1
    with server.client("disp") as c:
        assert "watchlist" not in c.get("/api/v1/hotlists").json()
        q = {"purpose": "check", "list": "watchlist"}
        assert c.get("/api/v1/hotlists/entries", params=q).status_code == 403
    with server.client("ana") as c:
        assert c.get("/api/v1/hotlists").json() == []
        assert (
            c.get(
                "/api/v1/hotlists/entries", params={"purpose": "x", "list": "stolen_vehicles"}
            ).status_code
            == 403
        )
    with server.client("off13") as c:
        found = c.get(
            "/api/v1/hotlists/entries", params={"purpose": "briefing", "list": "watchlist"}
        ).json()
        assert [e["id"] for e in found] == [entry["id"]]
        r = c.post(f"/api/v1/hotlists/entries/{entry['id']}/withdraw", json={"purpose": "x"})
        assert r.status_code == 403
    with server.client("admin") as c:
        r = c.post(f"/api/v1/hotlists/entries/{entry['id']}/withdraw", json={"purpose": "arrested"})
        assert r.json()["status"] == "withdrawn"
