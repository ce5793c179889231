"""The dashboard's HTTP routes on a real server: config, layers, KPI summary, unit routes."""

from __future__ import annotations

import gzip
import json

import httpx
import pytest

from citywatch.routing import Router
from tests.web.conftest import PASSWORD, WebServer


def token(srv: WebServer, user: str) -> dict[str, str]:
    r = httpx.post(f"{srv.url}/api/v1/auth/token", data={"username": user, "password": PASSWORD})
    r.raise_for_status()
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


@pytest.fixture(scope="module")
def disp(web_server: WebServer) -> httpx.Client:
    return httpx.Client(base_url=web_server.url, headers=token(web_server, "disp"), timeout=60)


def test_config_and_layers_are_public(web_server: WebServer) -> None:
    cfg = httpx.get(f"{web_server.url}/api/v1/dashboard/config").json()
    assert cfg["name"] == "manhattan" and cfg["timezone"] == "America/New_York"
    assert cfg["demo"] is False and cfg["feed"] is None
    assert cfg["thresholds_s"] == [180.0, 600.0]
    # The status rules the client applies are the service's own.
    incident = cfg["lifecycles"]["incident"]
    assert incident["received"] == ["dispatched", "cancelled"]  # in lifecycle order
    assert incident["on_scene"] == ["cleared"] and incident["cleared"] == []
    assert cfg["lifecycles"]["unit"]["out_of_service"] == ["available"]
    assert cfg["lifecycles"]["unit_assigned"] == ["dispatched", "en_route", "on_scene"]
    # httpx decompresses transparently; ask for both encodings explicitly to compare bytes.
    raw = httpx.get(
        f"{web_server.url}/api/v1/dashboard/layers", headers={"Accept-Encoding": "identity"}
    )
    assert "content-encoding" not in raw.headers
    with httpx.stream(
        "GET", f"{web_server.url}/api/v1/dashboard/layers", headers={"Accept-Encoding": "gzip"}
    ) as packed:
        assert packed.headers["content-encoding"] == "gzip"
        body = b"".join(packed.iter_raw())
    assert gzip.decompress(body) == raw.content
    layers = json.loads(raw.content)
    assert len(layers["stations"]["features"]) == 21


def test_static_dashboard_and_leaflet_are_served(web_server: WebServer) -> None:
    page = httpx.get(f"{web_server.url}/")
    assert page.status_code == 200 and "/vendor/leaflet/leaflet.js" in page.text
    js = httpx.get(f"{web_server.url}/vendor/leaflet/leaflet.js")
    assert js.status_code == 200 and "Leaflet 1.9.3" in js.text[:400]
    assert httpx.get(f"{web_server.url}/vendor/leaflet/leaflet.css").status_code == 200
    messages = httpx.get(f"{web_server.url}/i18n.json").json()
    assert messages["zh"]["app.title"] == "指挥中心"


def test_summary_needs_login_and_counts_today(web_server: WebServer, disp: httpx.Client) -> None:
    assert httpx.get(f"{web_server.url}/api/v1/dashboard/summary").status_code == 401
    before = disp.get("/api/v1/dashboard/summary").json()
    station = web_server.app.state.service.stations["13"]
    made = []
    for category in ("theft", "assault"):
        r = disp.post(
            "/api/v1/incidents",
            json={"category": category, "location": {"lon": station.lon, "lat": station.lat}},
        )
        assert r.status_code == 201, r.text
        made.append(r.json())
    r = disp.post(f"/api/v1/incidents/{made[0]['id']}/assignments", json={"unit_id": "13-RMP1"})
    assert r.status_code == 201, r.text
    after = disp.get("/api/v1/dashboard/summary").json()
    assert after["today"]["incidents"] == before["today"]["incidents"] + 2
    assert after["week"]["incidents"] >= after["today"]["incidents"]
    assert sum(after["by_hour"]) == after["week"]["incidents"] and len(after["by_hour"]) == 24
    rows = {r["station"]: r for r in after["by_station"]}
    assert len(rows) == 21
    before_13 = next(r for r in before["by_station"] if r["station"] == "13")
    assert [m["station"] for m in made] == ["13", "13"]
    assert rows["13"]["incidents"] == before_13["incidents"] + 2
    assert rows["13"]["available"] == 3  # 13-RMP1 is dispatched; 13-RMP2, -FOOT1, -ESU1 wait
    assert after["units"]["available"] == 84 - 1
    assert after["units"]["on_street"] == 84
    assert after["today"]["share_on_scene_within"] == {"180": 0.0, "600": 0.0}


def test_route_of_a_unit_to_an_incident(web_server: WebServer, disp: httpx.Client) -> None:
    service = web_server.app.state.service
    r = disp.post(
        "/api/v1/incidents",
        json={"category": "robbery", "location": {"lon": -74.0095, "lat": 40.7075}},
    )
    incident = r.json()
    got = disp.get(
        "/api/v1/dashboard/route", params={"incident_id": incident["id"], "unit_id": "5-RMP2"}
    ).json()
    five = service.stations["5"]
    expected = Router.from_pack(service.pack).route(
        (five.lon, five.lat), (incident["lon"], incident["lat"]), "car"
    )
    assert got["seconds"] == pytest.approx(expected.seconds)
    assert got["metres"] == pytest.approx(expected.metres)
    assert got["coords"][0] == pytest.approx(list(expected.coords[0]), abs=1e-6)
    assert got["coords"][-1] == pytest.approx(list(expected.coords[-1]), abs=1e-6)
    assert incident["station"] == "1"
    # A station officer of precinct 13 may not see this precinct-1 incident.
    officer = httpx.Client(base_url=web_server.url, headers=token(web_server, "off13"))
    denied = officer.get(
        "/api/v1/dashboard/route", params={"incident_id": incident["id"], "unit_id": "13-RMP2"}
    )
    assert denied.status_code == 403
    assert officer.get("/api/v1/dashboard/summary").json()["units"]["available"] <= 3
