"""AVL batches: per-fix results, the same validation as the single PUT, bulk storage, sealing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import text

from citywatch.dispatch.accounts import create_token, create_user
from citywatch.dispatch.audit import verify_chain
from citywatch.dispatch.positions import verify_positions
from tests.api.conftest import Server

LOC = {"lon": -73.99, "lat": 40.736}


def _units(server: Server, *ids: str) -> None:
    for uid in ids:
        r = server.client("disp").post(
            "/api/v1/units", json={"id": uid, "unit_type": "patrol_car", "station": "13"}
        )
        assert r.status_code in (201, 409), r.text


def _fix(uid: str, at: datetime, lon: float = -73.99, lat: float = 40.736) -> dict[str, Any]:
    return {"unit_id": uid, "lon": lon, "lat": lat, "at": at.isoformat()}


def test_batch_gives_a_result_per_fix_like_single_puts(server: Server) -> None:
    _units(server, "B-1", "B-2")
    disp = server.client("disp")
    now = datetime.now(UTC)
    fixes = [
        _fix("B-1", now - timedelta(seconds=20)),
        _fix("B-1", now - timedelta(seconds=10), lon=-73.991),  # the newest of B-1
        _fix("B-2", now - timedelta(seconds=5)),
        _fix("nope", now),  # unknown unit
        _fix("B-2", now, lon=-74.0445, lat=40.6892),  # Liberty Island: off the car network
        _fix("B-2", now + timedelta(seconds=59)),  # in the future
        _fix("B-1", now, lon=-70.0, lat=40.7),  # outside the pack
    ]
    r = disp.post("/api/v1/positions", json={"fixes": fixes})
    assert r.status_code == 200, r.text
    out = r.json()
    assert (out["stored"], out["applied"], out["refused"]) == (3, 2, 4)
    results = out["results"]
    assert [x["index"] for x in results] == list(range(7))
    assert [(x["stored"], x["applied"]) for x in results[:3]] == [
        (True, False),
        (True, True),
        (True, True),
    ]
    # Each refusal is the error the single PUT of that fix gives.
    for i in range(3, 7):
        fix = fixes[i]
        single = disp.put(
            f"/api/v1/units/{fix['unit_id']}/position",
            json={k: fix[k] for k in ("lon", "lat", "at")},
        )
        err = results[i]["error"]
        assert single.status_code == err["status"], (single.text, err)
        assert single.json()["error"]["code"] == err["code"]
        assert single.json()["error"]["message"] == err["message"]
    unit = disp.get("/api/v1/units/B-1").json()
    assert unit["position"]["lon"] == -73.991
    # An older fix afterwards joins the history only.
    r = disp.post("/api/v1/positions", json={"fixes": [_fix("B-1", now - timedelta(seconds=30))]})
    assert r.json()["results"][0] == {
        "index": 0,
        "unit_id": "B-1",
        "stored": True,
        "applied": False,
        "error": None,
    }
    assert disp.get("/api/v1/units/B-1").json()["position"]["lon"] == -73.991
    with server.app.state.service.sessions() as s:
        history = s.execute(
            text("SELECT count(*) FROM unit_positions WHERE unit_id IN ('B-1', 'B-2')")
        ).scalar_one()
    assert history == 4


def test_a_device_may_batch_only_its_own_unit(server: Server) -> None:
    _units(server, "B-9", "B-3")
    with server.app.state.service.sessions.begin() as s:
        create_user(s, "dev-b9", "unit_device", unit_id="B-9")
        token = create_token(s, "dev-b9", "tablet")
    now = datetime.now(UTC)
    dev = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"})
    r = dev.post("/api/v1/positions", json={"fixes": [_fix("B-9", now), _fix("B-3", now)]})
    assert r.status_code == 200
    codes = [x["error"] and x["error"]["code"] for x in r.json()["results"]]
    assert codes == [None, "forbidden"]
    r = server.client("ana").post("/api/v1/positions", json={"fixes": [_fix("B-3", now)]})
    assert r.json()["results"][0]["error"]["code"] == "forbidden"


def test_every_stored_fix_is_covered_by_the_chain_and_tampering_shows(server: Server) -> None:
    _units(server, "C-1")
    disp = server.client("disp")
    now = datetime.now(UTC)
    fixes = [_fix("C-1", now - timedelta(seconds=k), lon=-73.99 + k * 1e-5) for k in range(50)]
    assert disp.post("/api/v1/positions", json={"fixes": fixes}).json()["stored"] == 50
    service = server.app.state.service
    service.seal_positions()
    with service.sessions() as s:
        assert verify_chain(s).ok
        check = verify_positions(s)
    assert check.ok and check.unsealed == 0, check
    assert check.fixes >= 50
    engine = service.sessions.kw["bind"]
    with engine.begin() as conn:  # a database owner moves one fix
        conn.execute(
            text(
                "UPDATE unit_positions SET lon = lon + 0.001 WHERE id ="
                " (SELECT max(id) FROM unit_positions WHERE unit_id = 'C-1')"
            )
        )
    with service.sessions() as s:
        check = verify_positions(s)
    assert not check.ok and "were changed, added or deleted" in (check.reason or "")
    with engine.begin() as conn:  # put it back
        conn.execute(
            text(
                "UPDATE unit_positions SET lon = lon - 0.001 WHERE id ="
                " (SELECT max(id) FROM unit_positions WHERE unit_id = 'C-1')"
            )
        )
    with service.sessions() as s:
        assert verify_positions(s).ok
