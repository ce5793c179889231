"""Several service processes on one PostgreSQL database share state and the event stream.

Two applications with their own event listeners stand in for two ``serve`` worker processes
(a real ``serve --workers 2`` is too slow to start for the unit-test budget on a busy machine).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from websockets.sync.client import connect

from citywatch.api.app import create_app
from citywatch.api.settings import ENV_SETTINGS, Settings
from citywatch.city import CityPack
from citywatch.errors import ValidationError
from citywatch.routing import Router
from tests.api.conftest import _pg_database, seed_users, start_server, stop_server, two_workers

pytestmark = pytest.mark.postgres
CITYWATCH = str(Path(sys.executable).parent / "citywatch")


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    yield from _pg_database()


def test_events_cross_workers_through_listen_notify(
    pg_url: str, manhattan: tuple[CityPack, Router]
) -> None:
    settings = Settings(pack="manhattan", db_url=pg_url)
    with two_workers(settings, manhattan) as (a, b):
        token = a.headers["disp"]["Authorization"].split()[1]
        with (
            connect(f"{b.ws_url}?access_token={token}") as ws_b,
            connect(f"{a.ws_url}?access_token={token}") as ws_a,
        ):
            r = a.client("disp").post(
                "/api/v1/incidents",
                json={"category": "theft", "location": {"lon": -73.99, "lat": 40.736}},
            )
            assert r.status_code == 201
            for ws in (ws_a, ws_b):
                event = json.loads(ws.recv(timeout=20))
                assert (event["type"], event["incident_id"]) == ("incident.created", r.json()["id"])
            # State lives in the database only: B sees and changes what A created.
            assert b.client("disp").get(f"/api/v1/incidents/{r.json()['id']}").status_code == 200
            b.client("admin").post(
                "/api/v1/units", json={"id": "W-1", "unit_type": "foot", "station": "13"}
            )
            r2 = a.client("disp").post(
                f"/api/v1/incidents/{r.json()['id']}/assignments", json={"unit_id": "W-1"}
            )
            assert r2.status_code == 201
            types = {json.loads(ws_a.recv(timeout=20))["type"] for _ in range(3)}
            assert types == {"unit.created", "incident.status", "assignment.created"}


def test_worker_processes_get_the_parent_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    # ``serve --workers N`` hands its settings (including the signing key) to each worker
    # through the environment, so a token issued by one worker is valid on all of them.
    settings = Settings(pack="manhattan", db_url="postgresql://x@127.0.0.1/db", demo=True)
    monkeypatch.setenv(ENV_SETTINGS, settings.to_env())
    assert Settings.from_env() == settings
    monkeypatch.delenv(ENV_SETTINGS)
    with pytest.raises(ValidationError, match="start the service with citywatch serve"):
        Settings.from_env()


@pytest.fixture
def fresh_pg() -> Iterator[str]:
    yield from _pg_database()


def test_events_committed_while_the_listener_reconnects_are_replayed(
    fresh_pg: str, manhattan: tuple[CityPack, Router]
) -> None:
    pack, router = manhattan
    pg_url = fresh_pg
    srv = start_server(
        create_app(Settings(pack="manhattan", db_url=pg_url), pack=pack, router=router)
    )
    try:
        seed_users(srv)
        token = srv.headers["disp"]["Authorization"].split()[1]
        disp = srv.client("disp")
        assert disp.post(
            "/api/v1/units", json={"id": "RP-1", "unit_type": "foot", "station": "13"}
        ).is_success
        with connect(f"{srv.ws_url}?access_token={token}") as ws:
            first = disp.post(
                "/api/v1/incidents",
                json={"category": "theft", "location": {"lon": -73.99, "lat": 40.736}},
            ).json()["id"]
            assert json.loads(ws.recv(timeout=20))["incident_id"] == first
            # Cut the listener's connection, and commit while it is away (it retries after
            # 0.5 s): an incident and a move.
            admin = psycopg.connect(pg_url, autocommit=True)
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND query LIKE 'LISTEN%%'"
            )
            admin.close()
            missed = disp.post(
                "/api/v1/incidents",
                json={"category": "robbery", "location": {"lon": -73.99, "lat": 40.736}},
            ).json()["id"]
            at = datetime.now(UTC).isoformat()
            r = disp.put(
                "/api/v1/units/RP-1/position", json={"lon": -73.99, "lat": 40.736, "at": at}
            )
            assert r.json()["applied"]
            seen: dict[str, dict[str, Any]] = {}
            while "incident.created" not in seen or "unit.moved" not in seen:
                event = json.loads(ws.recv(timeout=30))
                seen.setdefault(event["type"], event)
            assert seen["incident.created"]["incident_id"] == missed
            assert seen["unit.moved"]["unit_id"] == "RP-1"
            # Nothing twice: the next change arrives once, live.
            later = disp.post(
                "/api/v1/incidents",
                json={"category": "theft", "location": {"lon": -73.99, "lat": 40.736}},
            ).json()["id"]
            ids = []
            while later not in ids:
                event = json.loads(ws.recv(timeout=20))
                if event["type"] == "incident.created":
                    ids.append(event["incident_id"])
            assert ids.count(missed) == 0 and ids.count(later) == 1
    finally:
        stop_server(srv)
