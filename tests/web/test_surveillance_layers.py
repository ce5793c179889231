"""The dashboard's camera and blind-spot layers in headless Chromium (skips without Chromium)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from citywatch.surveillance.registry import snap_sensors
from citywatch.surveillance.sensors import Owner, Sensor, SensorKind, SensorStatus
from citywatch.surveillance.store import save_sensors
from tests.api.conftest import Server
from tests.web.conftest import ARTIFACTS, MESSAGES
from tests.web.test_browser import live, open_page, pytestmark

__all__ = ["live", "pytestmark"]


def _register(live: Server) -> None:
    service = live.app.state.service
    cams = [
        Sensor("web-13a", SensorKind.PTZ, -73.982486, 40.731361, Owner.POLICE),
        Sensor(
            "web-13b",
            SensorKind.FIXED_CAMERA,
            -73.9860,
            40.7330,
            Owner.MARKET,
            status=SensorStatus.OFFLINE,
        ),
    ]
    placed = snap_sensors(cams, service.pack)
    session: Session
    with service.sessions.begin() as session:
        save_sensors(session, service.pack.name, placed.sensors, actor="test")


def test_camera_and_blind_spot_layers_switch_on(browser: object, live: Server) -> None:
    _register(live)
    page = open_page(browser, live, 1366, 768, "off13")
    warnings: list[str] = []
    page.on("console", lambda m: warnings.append(m.text) if m.type == "warning" else None)  # type: ignore[attr-defined]
    # The session survives a reload (sessionStorage): the layers load again, now observed.
    with page.expect_response(lambda r: "/api/v1/surveillance/blind-spots" in r.url) as blind:  # type: ignore[attr-defined]
        page.reload()  # type: ignore[attr-defined]
    assert blind.value.ok
    assert len(blind.value.json()["features"]) == 300
    for key in ("layer.cameras", "layer.blind_spots"):
        page.click(f"text={MESSAGES['en'][key]}")  # type: ignore[attr-defined]
    page.wait_for_timeout(1500)  # type: ignore[attr-defined]
    page.screenshot(path=str(ARTIFACTS / "cameras-1366x768.png"))  # type: ignore[attr-defined]
    assert page.errors == []  # type: ignore[attr-defined]
    assert not [w for w in warnings if "surveillance" in w]
    page.close()  # type: ignore[attr-defined]
