"""AVL batches: per-fix results, the same validation as the single PUT, bulk storage, sealing."""

from __future__ import annotations

import json
import random
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy import text

from citywatch.api.events import CHANNEL
from citywatch.dispatch.accounts import Principal, Role, create_token, create_user
from citywatch.dispatch.audit import verify_chain
from citywatch.dispatch.positions import verify_positions
from citywatch.store.dispatch_models import Unit
from tests.api.conftest import Server

LOC = {"lon": -73.99, "lat": 40.736}
#: Inwood, far from the incidents of the other tests sharing the server (units placed here
#: in bulk do not crowd their recommendations).
FAR = {"lon": -73.924902, "lat": 40.861553}


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


def test_concurrent_batches_of_the_same_units_neither_deadlock_nor_lose(server: Server) -> None:
    # Batches naming the same units in different orders, at once: the units are locked in id
    # order, so none waits for another in a cycle; the newest fix of each unit wins.
    ids = [f"K-{k}" for k in range(30)]
    _units(server, *ids)
    base = datetime.now(UTC) - timedelta(seconds=60)
    answers: list[int] = []

    def sender(thread: int) -> None:
        rng = random.Random(thread)
        with server.client("disp") as c:
            for rnd in range(5):
                step = rnd * 4 + thread  # unique per batch: its fixes' time and longitude
                order = rng.sample(ids, len(ids))
                fixes = [
                    _fix(
                        u, base + timedelta(milliseconds=step), FAR["lon"] + step * 1e-6, FAR["lat"]
                    )
                    for u in order
                ]
                r = c.post("/api/v1/positions", json={"fixes": fixes})
                answers.append(r.json()["stored"] if r.status_code == 200 else -r.status_code)

    threads = [threading.Thread(target=sender, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert answers == [30] * 20
    newest = FAR["lon"] + 19 * 1e-6  # round 4 of thread 3
    disp = server.client("disp")
    for u in ids:
        assert disp.get(f"/api/v1/units/{u}").json()["position"]["lon"] == pytest.approx(newest)
    with server.app.state.service.sessions() as s:
        stored = s.execute(
            text("SELECT count(*) FROM unit_positions WHERE unit_id LIKE 'K-%'")
        ).scalar_one()
    assert stored == 600


def test_a_unit_this_worker_does_not_know_yet_is_found_in_the_database(server: Server) -> None:
    # Registered by another worker a moment ago (here: written straight to the database, so
    # this worker's memory has not heard of it): its fixes are accepted at once.
    service = server.app.state.service
    now = datetime.now(UTC)
    with service.sessions.begin() as s:
        s.add(
            Unit(id="N-1", unit_type="patrol_car", mode="car", station="13", status="available",
                 status_at=now, capabilities=[], created_at=now)
        )  # fmt: skip
    assert service.live.get("N-1") is None
    r = server.client("disp").put("/api/v1/units/N-1/position", json={**LOC, "at": now.isoformat()})
    assert r.status_code == 200, r.text
    assert r.json()["applied"] is True


@pytest.mark.postgres_only  # the LISTEN/NOTIFY bus is PostgreSQL's
def test_a_batch_reaches_other_workers_in_few_notifications(server: Server) -> None:
    service = server.app.state.service
    engine = service.sessions.kw["bind"]
    ids = [f"W-{k}" for k in range(60)]
    _units(server, *ids)
    dsn = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    now = datetime.now(UTC)
    with psycopg.connect(dsn, autocommit=True) as listener:  # what another worker hears
        listener.execute(f"LISTEN {CHANNEL}")
        fixes = [_fix(u, now, FAR["lon"] + k * 1e-6, FAR["lat"]) for k, u in enumerate(ids)]
        r = server.client("disp").post("/api/v1/positions", json={"fixes": fixes})
        assert r.json()["applied"] == 60
        notes = [n.payload for n in listener.notifies(timeout=5, stop_after=60)]
    events = [e for p in notes for e in json.loads(p)]
    moved = [e for e in events if e["type"] == "unit.moved" and e["unit_id"] in ids]
    assert sorted(e["unit_id"] for e in moved) == sorted(ids)
    assert {e["unit_id"]: e["data"]["lon"] for e in moved} == {
        u: pytest.approx(FAR["lon"] + k * 1e-6) for k, u in enumerate(ids)
    }
    # Each notification is within PostgreSQL's limit, and they are far fewer than the events.
    assert all(len(p.encode("utf-8")) < 8000 for p in notes)
    assert len(notes) <= 10


def test_the_fast_put_answers_exactly_as_the_route(server: Server) -> None:
    # A token's first request goes through the route (the token is not cached yet), the next
    # ones through the fast path: both must give the same answers, errors included.
    _units(server, "F-1", "F-2")
    with server.app.state.service.sessions.begin() as s:
        create_user(s, "dev-f1", "unit_device", unit_id="F-1")
        dev_token = create_token(s, "dev-f1", "tablet")
    disp_token = server.app.state.tokens.issue(Principal("disp", Role.DISPATCHER))
    now = datetime.now(UTC)
    at = now.isoformat()
    cases = [
        (disp_token, "F-1", {**LOC, "at": (now + timedelta(seconds=59)).isoformat()}),  # future
        (disp_token, "nope", {**LOC, "at": at}),  # unknown unit
        (disp_token, "F-1", {"lon": -74.0445, "lat": 40.6892, "at": at}),  # off the roads
        (disp_token, "F-1", {**LOC, "at": at, "speed": 3}),  # a field the schema lacks
        (disp_token, "F-1", {"lon": True, "lat": 40.736, "at": at}),  # not a number
        (disp_token, "a b", {**LOC, "at": at}),  # not a unit id
        (dev_token, "F-2", {**LOC, "at": at}),  # another unit than the device's
        (disp_token, "F-2", {**LOC, "at": at}),  # stored and applied
    ]
    for token, unit, body in cases:
        server.app.state.principals.forget({"*"})
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}) as c:
            first = c.put(f"/api/v1/units/{unit}/position", json=body)  # the route
            assert server.app.state.principals.get(token) is not None
            second = c.put(f"/api/v1/units/{unit}/position", json=body)  # the fast path
        assert first.status_code == second.status_code, (first.text, second.text)
        assert first.headers.get("www-authenticate") == second.headers.get("www-authenticate")
        if first.status_code == 200:  # the second is the same fix again: history only
            assert first.json() == {**second.json(), "applied": True}
        else:
            assert first.status_code in (403, 404, 422)
            assert first.json() == second.json()
