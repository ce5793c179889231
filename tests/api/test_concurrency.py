"""Races settled by the database: one unit, many dispatchers; one Idempotency-Key, many retries."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import text

from citywatch.dispatch.audit import verify_chain
from citywatch.dispatch.positions import verify_positions
from tests.api.conftest import Server

CLIENTS = 16


def race(
    server: Server, user: str, calls: list[tuple[str, str, dict[str, Any], dict[str, str]]]
) -> list[httpx.Response]:
    """Fire the calls from separate threads and connections, released at the same instant."""
    barrier = threading.Barrier(len(calls))
    out: list[httpx.Response | None] = [None] * len(calls)

    def run(i: int) -> None:
        method, path, body, headers = calls[i]
        with server.client(user) as c:
            c.get("/api/v1/me")  # open the connection before the start line
            barrier.wait()
            out[i] = c.request(method, path, json=body, headers=headers)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r is not None for r in out)
    return [r for r in out if r is not None]


def test_many_dispatchers_one_unit_exactly_one_wins(server: Server) -> None:
    disp = server.client("disp")
    disp.post("/api/v1/units", json={"id": "R-1", "unit_type": "patrol_car", "station": "13"})
    incidents = [
        disp.post(
            "/api/v1/incidents",
            json={"category": "theft", "location": {"lon": -73.99, "lat": 40.736}},
        ).json()["id"]
        for _ in range(4)
    ]
    calls = [
        ("POST", f"/api/v1/incidents/{incidents[i % 4]}/assignments", {"unit_id": "R-1"}, {})
        for i in range(CLIENTS)
    ]
    responses = race(server, "disp", calls)
    assert Counter(r.status_code for r in responses) == {201: 1, 409: CLIENTS - 1}
    winner = next(r for r in responses if r.status_code == 201).json()
    for r in responses:
        if r.status_code == 409:
            assert r.json()["error"]["message"] == (
                f"unit R-1 is dispatched on incident {winner['incident_id']}, not available"
            )
    with server.app.state.service.sessions() as s:
        active = s.execute(
            text("SELECT incident_id FROM assignments WHERE unit_id = 'R-1' AND active")
        ).all()
    assert [row[0] for row in active] == [winner["incident_id"]]
    unit = disp.get("/api/v1/units/R-1").json()
    assert (unit["status"], unit["incident_id"]) == ("dispatched", winner["incident_id"])


def test_concurrent_retries_with_one_idempotency_key_create_one_incident(server: Server) -> None:
    body = {"category": "robbery", "priority": 1, "location": {"lon": -73.9903, "lat": 40.7359}}
    calls = [
        ("POST", "/api/v1/incidents", body, {"Idempotency-Key": "race-key-1"})
        for _ in range(CLIENTS)
    ]
    responses = race(server, "disp", calls)
    assert Counter(r.status_code for r in responses) == {201: 1, 200: CLIENTS - 1}
    assert len({r.json()["id"] for r in responses}) == 1
    with server.app.state.service.sessions() as s:
        n = s.scalar(
            text("SELECT count(*) FROM incident_dispatch WHERE idempotency_key = 'race-key-1'")
        )
    assert n == 1


def test_many_units_on_one_incident_at_once_all_succeed(server: Server) -> None:
    # Units racing each other on one incident (dispatch, then arrival) must not make each
    # other fail: the incident's follow-up status is decided on a fresh, locked read.
    disp = server.client("disp")
    units = [f"M-{i}" for i in range(8)]
    for uid in units:
        disp.post("/api/v1/units", json={"id": uid, "unit_type": "patrol_car", "station": "13"})
    inc = disp.post(
        "/api/v1/incidents", json={"category": "theft", "location": {"lon": -73.99, "lat": 40.736}}
    ).json()["id"]
    calls = [("POST", f"/api/v1/incidents/{inc}/assignments", {"unit_id": u}, {}) for u in units]
    assert [r.status_code for r in race(server, "disp", calls)] == [201] * len(units)
    calls = [("POST", f"/api/v1/units/{u}/status", {"status": "on_scene"}, {}) for u in units]
    assert [r.status_code for r in race(server, "disp", calls)] == [200] * len(units)
    detail = disp.get(f"/api/v1/incidents/{inc}").json()
    assert detail["status"] == "on_scene"
    assert [e["data"]["to"] for e in detail["timeline"] if e["type"] == "incident.status"] == [
        "dispatched",
        "on_scene",
    ]
    assert len([a for a in detail["assignments"] if a["active"]]) == len(units)


def test_audit_chain_stays_intact_under_concurrent_writers(server: Server) -> None:
    disp = server.client("disp")
    for i in range(8):
        disp.post("/api/v1/units", json={"id": f"Q-{i}", "unit_type": "foot", "station": "13"})
    now = datetime.now(UTC).isoformat()
    calls = [
        ("PUT", f"/api/v1/units/Q-{i}/position", {"lon": -73.99, "lat": 40.736, "at": now}, {})
        for i in range(8)
    ]
    assert [r.status_code for r in race(server, "disp", calls)] == [200] * 8
    assert server.app.state.service.seal_positions() >= 0  # the sealer may have been first
    with server.app.state.service.sessions() as s:
        check = verify_chain(s)
        covered = verify_positions(s)
        sealed = s.scalar(
            text(
                "SELECT count(*) FROM unit_positions p JOIN position_batches b"
                " ON b.id = p.batch_id WHERE p.unit_id LIKE 'Q-%' AND b.audit_seq IS NOT NULL"
            )
        )
    assert check.ok, check
    assert covered.ok and covered.unsealed == 0, covered
    assert sealed == 8
