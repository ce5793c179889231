"""End-to-end in headless Chromium: a hotlist hit appears on the dashboard of the officer of
the station where it was seen, with the sighting on the map and one click to open an incident,
and not on the dashboard of another station's officer (pattern of test_browser.py)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from tests.api.conftest import Server, stop_server
from tests.web.conftest import ARTIFACTS, CHROMIUM, MESSAGES, feed_server
from tests.web.test_browser import open_page

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="no Chromium found (scripts/test-setup.sh)"),
]
P13 = {"lon": -73.982486, "lat": 40.731361}  # 1 Ave @ 14 St, precinct 13
P23 = {"lon": -73.938074, "lat": 40.791427}  # 1 Ave @ 110 St, precinct 23


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, dict[str, str]]]:
    off23 = {"username": "off23", "role": "station_officer", "scope": "23"}
    web, tokens = feed_server(
        tmp_path_factory.mktemp("sightings") / "citywatch.db", "alpr", (off23,)
    )
    yield web.server, tokens
    stop_server(web.server)


def _call(srv: Server, token: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    with httpx.Client(base_url=srv.url, headers={"Authorization": f"Bearer {token}"}) as c:
        r = c.post(path, json=body)
    assert r.status_code in (200, 201), r.text
    out: dict[str, Any] = r.json()
    return out


def _hit(srv: Server, token: str, sensor: str, plate: str) -> int:
    read = {
        "sensor_id": sensor,
        "seen_at": datetime.now(UTC).isoformat(),
        "kind": "plate",
        "value": plate,
    }
    out = _call(srv, token, "/api/v1/sightings", {"sightings": [read]})
    assert out["hits"] == 1
    alert_id: int = out["alerts_created"][0]
    return alert_id


def test_hit_reaches_the_station_officer_only(
    browser: object, live: tuple[Server, dict[str, str]]
) -> None:
    srv, tokens = live
    for sid, where in (("cam-13", P13), ("cam-23", P23)):
        _call(
            srv,
            tokens["boss"],
            "/api/v1/sensors",
            {"id": sid, "kind": "plate_reader", "owner": "police", **where},
        )
    for plate, case in (("KTX 4412", "C-13"), ("RMB 0071", "C-23")):
        _call(
            srv, tokens["boss"], "/api/v1/hotlists/entries",
            {
                "kind": "plate", "value": plate, "reason": "stolen_vehicle", "owner": "auto crime",
                "legal_basis": "stolen vehicle report", "case_ref": case, "label": "white van",
                "purpose": "owner reported the theft",
            },
        )  # fmt: skip
    pages = {user: open_page(browser, srv, 1600, 900, user) for user in ("off13", "off23")}
    for page in pages.values():
        page.wait_for_selector("#alerts-pane:not([hidden])")  # type: ignore[attr-defined]
        page.wait_for_selector("[data-testid=conn][data-state=open]")  # type: ignore[attr-defined]
    first = _hit(srv, tokens["gateway"], "cam-13", "KTX4412")
    second = _hit(srv, tokens["gateway"], "cam-23", "RMB0071")
    off13, off23 = pages["off13"], pages["off23"]
    item13 = off13.wait_for_selector(f"[data-testid=alert-item][data-id='{first}']")  # type: ignore[attr-defined]
    assert "Stolen vehicle" in item13.inner_text() and "C-13" in item13.inner_text()
    off23.wait_for_selector(f"[data-testid=alert-item][data-id='{second}']")  # type: ignore[attr-defined]
    # Events arrive in order: off23 received its own alert, after the first, and never the first.
    assert off23.eval_on_selector_all(
        "[data-testid=alert-item]", "els => els.map(e => e.dataset.id)"
    ) == [str(second)]  # type: ignore[attr-defined]
    off13.wait_for_timeout(300)  # type: ignore[attr-defined]
    assert off13.eval_on_selector_all(
        "[data-testid=alert-item]", "els => els.map(e => e.dataset.id)"
    ) == [str(first)]  # type: ignore[attr-defined]
    # The sighting is on the map (a marker of the alert layer), with nearest units listed.
    assert item13.get_attribute("data-on-map") == "true"
    lon, lat = float(item13.get_attribute("data-lon")), float(item13.get_attribute("data-lat"))
    assert abs(lon - P13["lon"]) < 5e-4 and abs(lat - P13["lat"]) < 5e-4  # snapped to the street
    assert "Nearest units" in item13.inner_text()
    ARTIFACTS.mkdir(exist_ok=True)
    off13.screenshot(path=str(ARTIFACTS / "sightings-alert-off13.png"))  # type: ignore[attr-defined]
    # One click opens an incident in precinct 13; it is in the officer's queue.
    off13.click(f"[data-testid=alert-item][data-id='{first}'] [data-testid=alert-open-incident]")  # type: ignore[attr-defined]
    off13.wait_for_selector(f"[data-testid=alert-item][data-id='{first}'][data-status=incident]")  # type: ignore[attr-defined]
    off13.wait_for_selector("[data-testid=queue-item]")  # type: ignore[attr-defined]
    with httpx.Client(base_url=srv.url, headers={"Authorization": f"Bearer {tokens['boss']}"}) as c:
        alert = c.get(f"/api/v1/sightings/alerts/{first}").json()
        incident = c.get(f"/api/v1/incidents/{alert['incident_id']}").json()
    assert (incident["category"], incident["station"]) == ("vehicle_theft", "13")
    # Chinese labels
    off13.keyboard.press("l")  # type: ignore[attr-defined]
    off13.wait_for_function("document.documentElement.lang === 'zh-CN'")  # type: ignore[attr-defined]
    assert MESSAGES["zh"]["alerts.title"] in off13.inner_text("#alerts-pane h2")  # type: ignore[attr-defined]
    assert MESSAGES["zh"]["alerts.reason.stolen_vehicle"] in off13.inner_text(
        f"[data-testid=alert-item][data-id='{first}']"
    )  # type: ignore[attr-defined]
    off13.screenshot(path=str(ARTIFACTS / "sightings-alert-zh.png"))  # type: ignore[attr-defined]
    for page in pages.values():
        assert page.errors == []  # type: ignore[attr-defined]
        page.close()  # type: ignore[attr-defined]
