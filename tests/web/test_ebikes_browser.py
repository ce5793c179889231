"""End-to-end in headless Chromium: a station officer registers an e-bike, reports it stolen
(its tag goes on the hotlist), sees the theft in the panel, on the map and in the statistics,
and a tag reader's read of it on the map; an analyst gets the statistics only."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

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
TAG = "EB13-77810"
BIKE = {"make": "Yadea", "colour": "red", "contact": "+1 212 555 0142"}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, dict[str, str]]]:
    web, tokens = feed_server(tmp_path_factory.mktemp("ebikes") / "citywatch.db", "tag readers")
    yield web.server, tokens
    stop_server(web.server)


def _call(srv: Server, token: str, method: str, path: str, body: Any = None) -> Any:
    auth = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=srv.url, headers=auth, timeout=60) as c:  # a loaded machine
        r = c.request(method, path, json=body)
    assert r.status_code in (200, 201), r.text
    return r.json()


def _values(page: Any, testid: str) -> str:
    out: str = page.get_attribute(f"[data-testid={testid}]", "data-values")
    return out


def test_register_report_and_see_the_theft_and_the_hit(
    browser: object, live: tuple[Server, dict[str, str]]
) -> None:
    srv, tokens = live
    _call(
        srv, tokens["boss"], "POST", "/api/v1/sensors",
        {"id": "reader-13", "kind": "ebike_tag_reader", "owner": "police", **P13},
    )  # fmt: skip
    page: Any = open_page(browser, srv, 1600, 1000, "off13")
    page.wait_for_selector("[data-testid=ebikes-pane]:not([hidden])")
    page.wait_for_selector("[data-testid=conn][data-state=open]")
    assert page.inner_text("[data-testid=ebike-theft-count]") == "0"
    # Look up an unknown tag, then register it.
    page.fill("[data-testid=ebike-lookup-tag]", TAG)
    page.click("[data-testid=ebike-lookup]")
    page.wait_for_selector("[data-testid=ebike-card][data-found=false]")
    page.click("[data-testid=ebike-register-box] summary")
    page.fill("[data-testid=ebike-reg-tag]", TAG)
    for field, value in BIKE.items():
        page.fill(f"[data-testid=ebike-reg-{field}]", value)
    assert page.input_value("[data-testid=ebike-reg-station]") == "13"  # the officer's own
    page.click("[data-testid=ebike-register]")
    card = page.wait_for_selector("[data-testid=ebike-card][data-status=registered]")
    text = card.inner_text()
    assert "…7810" in text and "Yadea" in text and "+1 212 555 0142" in text
    # Report it stolen at 1 Ave @ 14 St, now.
    page.click("[data-testid=ebike-theft-box] summary")
    page.fill("[data-testid=ebike-theft-tag]", TAG)
    page.fill("[data-testid=ebike-theft-lon]", str(P13["lon"]))
    page.fill("[data-testid=ebike-theft-lat]", str(P13["lat"]))
    page.click("[data-testid=ebike-report]")
    page.wait_for_selector("[data-testid=ebike-card][data-status=stolen]")
    item = page.wait_for_selector("[data-testid=ebike-theft][data-source=ebike_registry]")
    assert item.get_attribute("data-items") == "red Yadea"
    assert item.get_attribute("data-station") == "13"
    assert "red Yadea" in item.inner_text()
    assert page.inner_text("[data-testid=ebike-theft-count]") == "1"
    assert page.inner_text("[data-testid=ebike-thefts-on-map]") == "1"
    # The service made the hotlist entry and the incident; the statistics count the theft at
    # its local hour in precinct 13.
    (report,) = _call(srv, tokens["boss"], "GET", "/api/v1/ebikes/thefts")
    assert report["hotlist_entry_id"] is not None and report["station"] == "13"
    assert report["items"] == [{"kind": "ebike", "make": "Yadea", "colour": "red"}]
    hour = datetime.fromisoformat(report["occurred_at"]).astimezone(ZoneInfo("America/New_York"))
    expected = ["0"] * 24
    expected[hour.hour] = "1"
    assert _values(page, "ebike-chart-hour") == ",".join(expected)
    assert _values(page, "ebike-chart-area") == "13:1"
    # A tag reader reads the tag: the hit is in the panel and on the map.
    read = {"sensor_id": "reader-13", "seen_at": datetime.now(UTC).isoformat(),
            "kind": "ebike_tag", "value": TAG}  # fmt: skip
    out = _call(srv, tokens["gateway"], "POST", "/api/v1/sightings", {"sightings": [read]})
    assert out["hits"] == 1
    hit = page.wait_for_selector(f"[data-testid=ebike-hit][data-id='{out['alerts_created'][0]}']")
    assert hit.get_attribute("data-on-map") == "true"
    assert hit.get_attribute("data-sensor") == "reader-13"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "ebikes-off13.png"))
    # Chinese labels.
    page.keyboard.press("l")
    page.wait_for_function("document.documentElement.lang === 'zh-CN'")
    assert MESSAGES["zh"]["ebike.title"] in page.inner_text("[data-testid=ebikes-pane] h2")
    assert page.inner_text("[data-testid=ebike-thefts-on-map]") == "1"
    page.keyboard.press("l")
    assert page.errors == []
    page.close()


def test_an_analyst_gets_the_statistics_only(
    browser: object, live: tuple[Server, dict[str, str]]
) -> None:
    srv, tokens = live
    tag = "EB23-40022"
    _call(srv, tokens["boss"], "POST", "/api/v1/ebikes", {"tag": tag, "station": "23"})
    theft = {"tag": tag, "occurred_at": datetime.now(UTC).isoformat()}
    _call(srv, tokens["boss"], "POST", "/api/v1/ebikes/thefts", theft)
    reports = _call(srv, tokens["boss"], "GET", "/api/v1/ebikes/thefts")
    page: Any = open_page(browser, srv, 1600, 1000, "ana")
    page.wait_for_selector("[data-testid=ebikes-pane]:not([hidden])")
    page.wait_for_selector("[data-testid=ebike-chart-hour] svg")
    assert page.query_selector("[data-testid=ebike-lookup-tag]") is None
    assert page.query_selector("[data-testid=ebike-register-box]") is None
    assert page.query_selector("[data-testid=ebike-thefts]") is None
    # Every theft reported on this server is counted, city-wide.
    assert sum(int(v) for v in _values(page, "ebike-chart-hour").split(",")) == len(reports)
    assert page.errors == []
    page.close()
