"""Hostile input gets a clear 4xx, never a 500 (each case found by a tester on 2026-12-01)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import uvicorn

from citywatch.api.limits import RequestLimits
from tests.api.conftest import Server

LOC = {"lon": -73.99, "lat": 40.736}
EDGES = ["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00"]


def _error(r: httpx.Response, status: int, field: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, (r.status_code, r.text)
    err: dict[str, Any] = r.json()["error"]
    assert err["status"] == status
    if field is not None:
        assert err["field"] == field, err
    return err


@pytest.fixture(scope="module")
def unit(server: Server) -> str:
    r = server.client("disp").post(
        "/api/v1/units", json={"id": "H-1", "unit_type": "patrol_car", "station": "13"}
    )
    assert r.status_code in (201, 409)
    return "H-1"


def test_nul_bytes_anywhere_are_422(server: Server, unit: str) -> None:
    disp = server.client("disp")
    with httpx.Client(base_url=server.url) as anon:
        r = anon.post("/api/v1/auth/token", data={"username": "di\x00sp", "password": "x" * 12})
        assert "NUL" in _error(r, 422)["message"]
    _error(disp.get("/api/v1/units/H%001"), 422)
    _error(disp.get("/api/v1/incidents/live:%00"), 422)
    _error(disp.get("/api/v1/units", params={"station": "1\x003"}), 422)
    r = disp.post(
        "/api/v1/incidents", json={"category": "theft", "location": LOC, "caller_notes": "a\x00b"}
    )
    assert "NUL" in _error(r, 422, "caller_notes")["message"]
    r = disp.post("/api/v1/units", json={"id": "N-1", "unit_type": "foot", "station": "1\x003"})
    _error(r, 422, "station")


def test_lone_surrogates_are_422(server: Server) -> None:
    disp = server.client("disp")
    body = (
        '{"category": "theft", "location": {"lon": -73.99, "lat": 40.736},'
        ' "caller_notes": "\\udfff"}'
    )
    r = disp.post("/api/v1/incidents", content=body, headers={"Content-Type": "application/json"})
    _error(r, 422)
    _error(disp.get("/api/v1/units/%ED%BF%BF"), 422)
    with httpx.Client(base_url=server.url) as anon:
        r = anon.post(
            "/api/v1/auth/token",
            content=b"username=%ED%BF%BF&password=xxxxxxxxxxxx",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert "UTF-8" in _error(r, 422)["message"]


@pytest.mark.parametrize("edge", EDGES)
def test_calendar_edge_times_are_422(server: Server, unit: str, edge: str) -> None:
    disp = server.client("disp")
    r = disp.post(
        "/api/v1/incidents", json={"category": "theft", "location": LOC, "received_at": edge}
    )
    _error(r, 422, "received_at")
    _error(disp.put(f"/api/v1/units/{unit}/position", json={**LOC, "at": edge}), 422, "at")
    _error(disp.get("/api/v1/kpis", params={"to": edge}), 422, "to")
    _error(disp.get("/api/v1/kpis", params={"from": edge}), 422, "from")


def test_numbers_are_not_times(server: Server) -> None:
    disp = server.client("disp")
    _error(disp.get("/api/v1/kpis", params={"to": "0.5"}), 422, "to")
    r = disp.post(
        "/api/v1/incidents", json={"category": "theft", "location": LOC, "received_at": 0}
    )
    _error(r, 422, "received_at")


def test_implausible_times_are_422(server: Server, unit: str) -> None:
    disp = server.client("disp")
    for when in ("1970-01-01T00:00:00+00:00", "1600-06-01T00:00:00+00:00"):
        body = {"category": "robbery", "priority": 1, "location": LOC, "received_at": when}
        _error(disp.post("/api/v1/incidents", json=body), 422, "received_at")
    now = datetime.now(UTC)
    ahead = (now + timedelta(seconds=59)).isoformat()
    err = _error(disp.put(f"/api/v1/units/{unit}/position", json={**LOC, "at": ahead}), 422, "at")
    assert "future" in err["message"]
    old = (now - timedelta(days=2)).isoformat()
    _error(disp.put(f"/api/v1/units/{unit}/position", json={**LOC, "at": old}), 422, "at")
    # A fix a second ahead (clock skew) is fine, and a real fix afterwards still moves the unit.
    soon = (now + timedelta(seconds=1)).isoformat()
    assert disp.put(f"/api/v1/units/{unit}/position", json={**LOC, "at": soon}).status_code == 200
    time.sleep(1.2)
    later = datetime.now(UTC).isoformat()
    r = disp.put(
        f"/api/v1/units/{unit}/position", json={"lon": -73.991, "lat": 40.736, "at": later}
    )
    assert r.status_code == 200 and r.json()["applied"] is True


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "1e400", "0", "100000"])
def test_threshold_must_be_finite_seconds(server: Server, value: str) -> None:
    disp = server.client("disp")
    inc = disp.post("/api/v1/incidents", json={"category": "theft", "location": LOC}).json()["id"]
    r = disp.get(
        f"/api/v1/incidents/{inc}/recommendations",
        params={"policy": "station_first", "threshold_s": value},
    )
    _error(r, 422, "threshold_s")
    _error(disp.get("/api/v1/kpis", params={"thresholds": value}), 422, "thresholds")


def test_bounded_strings_and_strict_types(server: Server) -> None:
    disp = server.client("disp")
    r = disp.post(
        "/api/v1/units",
        json={"id": "S-1", "unit_type": "foot", "station": "13", "shift": "x" * 33},
    )
    _error(r, 422, "shift")
    r = disp.post(
        "/api/v1/incidents", json={"category": "theft", "location": LOC, "priority": True}
    )
    _error(r, 422, "priority")
    r = disp.post(
        "/api/v1/incidents", json={"category": "theft", "location": {"lon": True, "lat": 40.7}}
    )
    _error(r, 422, "location.lon")
    many = [f"c{i}" for i in range(100_000)]
    r = disp.post(
        "/api/v1/units",
        json={"id": "S-2", "unit_type": "foot", "station": "13", "capabilities": many},
    )
    _error(r, 422, "capabilities")
    fixes = [{"unit_id": "H-1", **LOC, "at": datetime.now(UTC).isoformat()}] * 1001
    _error(disp.post("/api/v1/positions", json={"fixes": fixes}), 422, "fixes")


def test_body_size_is_limited_before_authentication(server: Server) -> None:
    with httpx.Client(base_url=server.url) as anon:
        big = b"{" + b" " * (2 << 20) + b"}"
        r = anon.post(
            "/api/v1/incidents", content=big, headers={"Content-Type": "application/json"}
        )
        _error(r, 413)
        # Unauthenticated small bodies still get their 401.
        _error(anon.post("/api/v1/incidents", json={}), 401)


def test_get_on_auth_routes_is_405(server: Server) -> None:
    with httpx.Client(base_url=server.url) as anon:
        for path in ("/api/v1/auth/token", "/api/v1/auth/refresh", "/api/v1/auth/logout"):
            r = anon.get(path)
            _error(r, 405)
            assert r.headers["allow"] == "POST"
        _error(anon.get("/api/v1/no-such-route"), 404)


def test_openapi_documents_errors_and_enums(server: Server) -> None:
    doc = httpx.get(f"{server.url}/openapi.json").json()
    op = doc["paths"]["/api/v1/units/{unit_id}/status"]["post"]
    assert {"401", "403", "404", "409", "422"} <= set(op["responses"])
    schemas = doc["components"]["schemas"]
    assert "out_of_service" in schemas["UnitStatus"]["enum"]
    assert "cancelled" in schemas["IncidentStatus"]["enum"]
    assert "13" in schemas["UnitIn"]["properties"]["station"]["enum"]
    assert "patrol_car" in schemas["UnitIn"]["properties"]["unit_type"]["enum"]
    assert "robbery" in schemas["IncidentIn"]["properties"]["category"]["enum"]
    assert "429" in doc["paths"]["/api/v1/auth/token"]["post"]["responses"]


# ----------------------------------------------------------------------------- slow clients
async def _echo(scope: Any, receive: Any, send: Any) -> None:
    body = b""
    while True:
        msg = await receive()
        body += msg.get("body", b"")
        if not msg.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture
def limited() -> Iterator[tuple[str, int]]:
    """A uvicorn server of an echo app behind RequestLimits with a 0.5 s body timeout."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    app = RequestLimits(_echo, max_body_bytes=1000, body_timeout_s=0.5)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    yield sock.getsockname()
    server.should_exit = True
    thread.join(10)


def test_a_half_sent_body_times_out_with_408(limited: tuple[str, int]) -> None:
    with socket.create_connection(limited, timeout=5) as c:
        c.sendall(b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\n0123456789")
        started = time.monotonic()
        answer = c.recv(4096)
        assert answer.startswith(b"HTTP/1.1 408"), answer
        assert b"request_timeout" in answer
        assert 0.4 < time.monotonic() - started < 3
    with httpx.Client() as client:
        url = f"http://{limited[0]}:{limited[1]}/x"
        assert client.post(url, content=b"ok").content == b"ok"
        r = client.post(url, content=iter([b"x" * 600, b"y" * 600]))  # chunked, too large
        assert r.status_code == 413
