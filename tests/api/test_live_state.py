"""Each worker's in-memory unit state: recommendations read no units from the database, see an
acknowledged write at once on the worker that made it, and other workers converge.

Same worker: on SQLite and PostgreSQL (the shared ``server``).  Other workers: two applications
on one PostgreSQL database converge through LISTEN/NOTIFY without reading the units again; on
SQLite (one process per database, so no bus between processes) a second application converges
at its periodic merge with the database.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from citywatch.api.settings import Settings
from citywatch.city import CityPack
from citywatch.routing import Router
from tests.api.conftest import (
    PASSWORD,
    Server,
    _pg_database,
    two_workers,
)
from tests.helpers import sql_statements


def _spot(pack: CityPack, k: int) -> tuple[float, float]:
    """Network node ``k`` (or the next one inside the pack): 1234 is 4.7 km from station 13."""
    lon, lat = pack.network.lon, pack.network.lat
    while not pack.contains(float(lon[k]), float(lat[k])):
        k += 1
    return float(lon[k]), float(lat[k])


def _candidates(c: httpx.Client, incident: str) -> dict[str, dict[str, Any]]:
    r = c.get(f"/api/v1/incidents/{incident}/recommendations", params={"k": 3})
    assert r.status_code == 200, r.text
    return {x["unit_id"]: x for x in r.json()["candidates"]}


def _put(c: httpx.Client, unit: str, where: tuple[float, float]) -> None:
    at = datetime.now(UTC).isoformat()
    r = c.put(f"/api/v1/units/{unit}/position", json={"lon": where[0], "lat": where[1], "at": at})
    assert r.status_code == 200 and r.json()["applied"], r.text


def _setup(srv: Server, pack: CityPack, k: int) -> tuple[str, str, tuple[float, float]]:
    """A patrol car (at its station), an incident at an unused spot, and three cars posted
    at the spot's nearest network nodes (nearer than the station)."""
    unit = f"LV-{uuid.uuid4().hex[:8]}"
    admin = srv.client("admin")
    r = admin.post("/api/v1/units", json={"id": unit, "unit_type": "patrol_car", "station": "13"})
    assert r.status_code == 201, r.text
    spot = _spot(pack, k)
    lon, lat = pack.network.lon, pack.network.lat
    near = np.argsort(np.hypot(lon - spot[0], lat - spot[1]))[1:4]
    for j in near:
        r = admin.post(
            "/api/v1/units",
            json={
                "id": f"{unit}-post{j}",
                "unit_type": "patrol_car",
                "station": "13",
                "post": {"lon": float(lon[j]), "lat": float(lat[j])},
            },
        )
        assert r.status_code == 201, r.text
    r = admin.post(
        "/api/v1/incidents",
        json={"category": "robbery", "location": {"lon": spot[0], "lat": spot[1]}},
    )
    assert r.status_code == 201, r.text
    return unit, r.json()["id"], spot


def test_a_recommendation_after_an_acknowledged_write_sees_it(
    server: Server, manhattan: tuple[CityPack, Router]
) -> None:
    pack, router = manhattan
    unit, incident, spot = _setup(server, pack, 1234)
    disp = server.client("disp")
    engine = server.app.state.service.sessions.kw["bind"]
    # At its station, the car is not among the three nearest to the spot.
    assert unit not in _candidates(disp, incident)
    live = server.app.state.service.live
    merges = live.merges
    for _ in range(3):
        _put(disp, unit, spot)
        with sql_statements(engine, "FROM units") as reads:
            before = live.merges
            first = _candidates(disp, incident)
        # From the worker's memory, not the database (unless the background merge of every
        # 30 s happened to run just then: its count rises once it has applied what it read).
        assert reads == [] or _wait_for(lambda: live.merges > before, 5.0)  # noqa: B023 - now
        assert first[unit]["rank"] == 1 and first[unit]["eta_s"] == 0.0
        assert first[unit]["position_stale"] is False
        # Moved 1 km away: the next answer has the road time from there, exactly.
        away = _spot(pack, 3210)
        _put(disp, unit, away)
        expected = router.many_to_one([away], spot, mode="car").seconds[0]
        after = server.client("admin").get(
            f"/api/v1/incidents/{incident}/recommendations", params={"k": 100}
        )
        etas = {x["unit_id"]: x["eta_s"] for x in after.json()["candidates"]}
        assert etas.get(unit, expected) == pytest.approx(expected)
        assert etas.get(unit) is None or etas[unit] > 0
        _put(disp, unit, spot)
        r = disp.post(f"/api/v1/units/{unit}/status", json={"status": "out_of_service"})
        assert r.status_code == 200
        assert unit not in _candidates(disp, incident)
        r = disp.post(f"/api/v1/units/{unit}/status", json={"status": "available"})
        assert r.status_code == 200
        assert _candidates(disp, incident)[unit]["rank"] == 1
    assert live.merges - merges <= 2  # the changes came from the writes, not from reloading


def _wait_for(check: Callable[[], bool], timeout_s: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


@pytest.fixture
def fresh_pg() -> Iterator[str]:
    yield from _pg_database()


@pytest.mark.postgres
def test_other_workers_converge_through_the_bus(
    fresh_pg: str, manhattan: tuple[CityPack, Router]
) -> None:
    pack = manhattan[0]
    settings = Settings(pack="manhattan", db_url=fresh_pg)
    with two_workers(settings, manhattan) as (a, b):
        unit, incident, spot = _setup(a, pack, 1234)
        on_b = b.client("disp")
        assert _wait_for(lambda: b.app.state.service.live.get(unit) is not None)
        merges = b.app.state.service.live.merges
        _put(a.client("disp"), unit, spot)
        assert _wait_for(lambda: unit in _candidates(on_b, incident))
        assert _candidates(on_b, incident)[unit]["eta_s"] == 0.0
        r = a.client("disp").post(f"/api/v1/units/{unit}/status", json={"status": "out_of_service"})
        assert r.status_code == 200
        assert _wait_for(lambda: unit not in _candidates(on_b, incident))
        # Through the bus: B did not read its units from the database meanwhile.
        assert b.app.state.service.live.merges == merges
        assert b.app.state.service.live.applied >= 2
        # And B's own writes are seen at once by B, and by A through the bus.
        r = on_b.post(f"/api/v1/units/{unit}/status", json={"status": "available"})
        assert r.status_code == 200
        assert _candidates(on_b, incident)[unit]["rank"] == 1
        assert _wait_for(lambda: unit in _candidates(a.client("disp"), incident))


def test_a_second_sqlite_process_converges_at_its_merge(
    tmp_path: Path, manhattan: tuple[CityPack, Router]
) -> None:
    pack = manhattan[0]
    settings = Settings(pack="manhattan", db_url=f"sqlite:///{tmp_path / 'two.db'}")
    with two_workers(settings, manhattan) as (a, b):
        unit, incident, spot = _setup(a, pack, 1234)
        on_b = b.client("disp")
        assert unit not in _candidates(on_b, incident)
        _put(a.client("disp"), unit, spot)
        # No bus between SQLite processes: B answers from its memory until it merges.
        assert unit not in _candidates(on_b, incident)
        b.app.state.service.live.refresh()  # what its background task does periodically
        assert _candidates(on_b, incident)[unit]["eta_s"] == 0.0


@pytest.mark.postgres
def test_a_logout_on_one_worker_ends_the_token_cached_by_another(
    fresh_pg: str, manhattan: tuple[CityPack, Router]
) -> None:
    # A cache lifetime far beyond the test: only the bus can end B's cached entry.
    settings = Settings(pack="manhattan", db_url=fresh_pg, auth_cache_s=60)
    with two_workers(settings, manhattan) as (a, b):
        with httpx.Client(base_url=a.url) as anon:
            r = anon.post("/api/v1/auth/token", data={"username": "disp", "password": PASSWORD})
            tokens = r.json()
        bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
        with httpx.Client(base_url=b.url, headers=bearer) as on_b:
            assert on_b.get("/api/v1/me").status_code == 200  # checked, now cached by B
            assert b.app.state.principals.get(tokens["access_token"]) is not None
            r = httpx.post(
                f"{a.url}/api/v1/auth/logout",
                json={"refresh_token": tokens["refresh_token"]},
                headers=bearer,
            )
            assert r.status_code == 204
            assert _wait_for(lambda: on_b.get("/api/v1/me").status_code == 401, 10)
            assert "revoked" in on_b.get("/api/v1/me").json()["error"]["message"]
