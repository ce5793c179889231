"""End-to-end call intake in headless Chromium, in English (Baltimore, street centrelines) and in
Chinese (Shenzhen Futian, Chinese OSM names): a call taken by address with the keyboard, its
recommendation before creation, a second caller flagged as a duplicate and merged, the P1 alert.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from citywatch.api.app import create_app
from citywatch.api.settings import Settings
from citywatch.city import geocode
from citywatch.demo.cli import ensure_fleet
from citywatch.dispatch.accounts import Principal, Role, create_user
from citywatch.dispatch.intake import ConsoleService
from tests.api.conftest import Server, start_server, stop_server
from tests.web.conftest import ARTIFACTS, CHROMIUM, MESSAGES, PASSWORD, WEB_USERS
from tests.web.test_browser import TIMEOUT_MS

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="no Chromium found (scripts/test-setup.sh)"),
]
ADMIN = Principal("t", Role.ADMIN)


def _serve(db: Path, pack: str) -> Server:
    app = create_app(Settings(pack=pack, db_url=f"sqlite:///{db}"))
    ensure_fleet(app.state.service)
    with app.state.service.sessions.begin() as s:
        for user in WEB_USERS:
            create_user(s, password=PASSWORD, **user)
    srv = start_server(app)
    # the service built the street index at start: the first geocode does not wait for it
    assert id(app.state.service.pack.network) in geocode._CACHE
    return srv


@pytest.fixture(scope="module")
def baltimore(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = _serve(tmp_path_factory.mktemp("intake-bal") / "citywatch.db", "baltimore")
    yield srv
    stop_server(srv)


@pytest.fixture(scope="module")
def futian(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = _serve(tmp_path_factory.mktemp("intake-szf") / "citywatch.db", "shenzhen_futian")
    yield srv
    stop_server(srv)


def _login(browser: object, srv: Server, lang: str) -> object:
    page = browser.new_page(viewport={"width": 1920, "height": 1080})  # type: ignore[attr-defined]
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.errors = errors
    # the street index and the road graphs are built at the service's start, so the first
    # geocode and recommendation answer as fast as the next: the dashboard tests' timeout
    page.set_default_timeout(TIMEOUT_MS)
    page.add_init_script(f"localStorage.setItem('citywatch.lang', '{lang}')")
    page.goto(srv.url + "/")
    page.fill("[data-testid=username]", "disp")
    page.fill("[data-testid=password]", PASSWORD)
    page.click("[data-testid=login-submit]")
    page.wait_for_selector("[data-testid=login]", state="hidden")
    page.wait_for_selector("[data-testid=intake-open]")
    return page


def _take_call(page: object, category: str, address: str, notes: str) -> None:
    """Keyboard only: N, category search + Enter, address + Enter, notes, Ctrl+Enter."""
    page.keyboard.press("n")  # type: ignore[attr-defined]
    page.wait_for_selector("[data-testid=intake]")  # type: ignore[attr-defined]
    page.keyboard.type(category)  # type: ignore[attr-defined]
    page.wait_for_selector("[data-testid=intake-category-option]")  # type: ignore[attr-defined]
    page.keyboard.press("Enter")  # type: ignore[attr-defined]
    page.keyboard.type(address)  # type: ignore[attr-defined]
    page.wait_for_selector("[data-testid=intake-location-option]")  # type: ignore[attr-defined]
    page.keyboard.press("Enter")  # type: ignore[attr-defined]
    page.wait_for_selector("[data-testid=intake-located]")  # type: ignore[attr-defined]
    page.keyboard.type(notes)  # type: ignore[attr-defined]
    # the recommendation is there before the incident exists
    page.wait_for_selector("[data-testid=intake-rec-unit]")  # type: ignore[attr-defined]


_LAYOUT_JS = """() => {
  const control = document.querySelector('.leaflet-control-layers');
  const form = document.querySelector('[data-testid=intake]');
  const pane = document.getElementById('map-pane').getBoundingClientRect();
  const a = control.getBoundingClientRect(), b = form.getBoundingClientRect();
  const overlap = !(a.right <= b.left || b.right <= a.left
    || a.bottom <= b.top || b.bottom <= a.top);
  const covered = [...control.querySelectorAll('input')].filter((box) => {
    const r = box.getBoundingClientRect();
    return !box.contains(document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2));
  }).length;
  const centre = document.elementFromPoint(a.left + a.width / 2, a.top + a.height / 2);
  const inside = b.left >= pane.left && b.right <= pane.right + 0.5 && b.top >= pane.top
    && b.bottom <= pane.bottom + 0.5;
  return {overlap, covered, centre: control.contains(centre), inside, formWidth: b.width,
          layers: control.querySelectorAll('input').length};
}"""


def _assert_layer_control_usable(page: object) -> None:
    """With the intake form open, the map's layer control is neither covered nor covering:
    their boxes do not overlap, the element at the control's centre and at each layer's check
    box is the control's own, the form lies inside the map, and a layer switches off and on
    with a click (Playwright refuses a click another element would receive)."""
    for width, height in ((1920, 1080), (1366, 768)):
        page.set_viewport_size({"width": width, "height": height})  # type: ignore[attr-defined]
        layout = page.evaluate(_LAYOUT_JS)  # type: ignore[attr-defined]
        assert layout["layers"] >= 5, layout
        assert not layout["overlap"], (width, layout)
        assert layout["covered"] == 0 and layout["centre"], (width, layout)
        assert layout["inside"] and layout["formWidth"] >= 300, (width, layout)
        box = page.locator(".leaflet-control-layers input >> nth=0")  # type: ignore[attr-defined]
        was = box.is_checked()
        box.click(timeout=5000)
        assert box.is_checked() != was
        box.click(timeout=5000)
        assert box.is_checked() == was
        page.screenshot(path=str(ARTIFACTS / f"intake-layers-{width}.png"))  # type: ignore[attr-defined]
    page.set_viewport_size({"width": 1920, "height": 1080})  # type: ignore[attr-defined]
    page.focus("[data-testid=intake-notes]")  # type: ignore[attr-defined]  # back to the call


def _call_flow(
    page: object, srv: Server, *, lang: str, category: str, address: str, prefix: str
) -> None:
    _take_call(page, category, address, "two men, one with a knife")
    _assert_layer_control_usable(page)
    label = {"en": "Robbery", "zh": "抢劫"}[lang]
    assert page.input_value("[data-testid=intake-category]") == label  # type: ignore[attr-defined]
    assert page.input_value("[data-testid=intake-priority]") == "1"  # type: ignore[attr-defined]
    page.screenshot(path=str(ARTIFACTS / f"intake-form-{lang}.png"))  # type: ignore[attr-defined]
    page.keyboard.press("Control+Enter")  # type: ignore[attr-defined]
    page.wait_for_selector("[data-testid=intake]", state="hidden")  # type: ignore[attr-defined]
    number = page.inner_text("[data-testid=detail-number]")  # type: ignore[attr-defined]
    assert number.startswith(f"{prefix}-20") and number.endswith("-000001")
    # P1 call: the alert is shown to this (and every) dashboard
    page.wait_for_selector("[data-testid=p1-alert]")  # type: ignore[attr-defined]
    page.click("[data-testid=p1-ack]")  # type: ignore[attr-defined]
    page.wait_for_selector(f"[data-testid=queue-number]:has-text('{number}')")  # type: ignore[attr-defined]
    assert page.inner_text("[data-testid=queue-age] >> nth=0") != ""  # type: ignore[attr-defined]
    service = srv.app.state.service
    (first,) = ConsoleService(service).decorate(service.list_incidents(ADMIN))
    assert first["number"] == number and first["category"] == "robbery"

    # A second caller, same crossing: flagged as a possible duplicate of the first, then merged.
    _take_call(page, category, address, "I saw a robbery")
    page.wait_for_selector("[data-testid=intake-duplicate]")  # type: ignore[attr-defined]
    assert page.inner_text("[data-testid=intake-duplicate-number]") == number  # type: ignore[attr-defined]
    premise = page.get_attribute("[data-testid=intake-premise]", "data-count")  # type: ignore[attr-defined]
    assert premise == "1"
    page.screenshot(path=str(ARTIFACTS / f"intake-duplicate-{lang}.png"))  # type: ignore[attr-defined]
    page.click("[data-testid=intake-merge]")  # type: ignore[attr-defined]
    page.wait_for_selector("[data-testid=intake]", state="hidden")  # type: ignore[attr-defined]
    page.wait_for_selector("[data-testid=detail-caller] >> nth=1")  # type: ignore[attr-defined]
    assert page.inner_text("[data-testid=detail-number]") == number  # type: ignore[attr-defined]
    assert page.get_attribute("[data-testid=detail-merge]", "data-direction") == "REPLACING"  # type: ignore[attr-defined]
    callers = page.inner_text("[data-testid=detail-caller] >> nth=1")  # type: ignore[attr-defined]
    assert "I saw a robbery" in callers
    # A note, by the dispatcher, appears on the detail
    page.fill("[data-testid=note-text]", "caller calls back: suspects ran east")  # type: ignore[attr-defined]
    page.press("[data-testid=note-text]", "Enter")  # type: ignore[attr-defined]
    page.wait_for_selector("[data-testid=detail-note]:has-text('suspects ran east')")  # type: ignore[attr-defined]
    page.screenshot(path=str(ARTIFACTS / f"intake-merged-{lang}.png"))  # type: ignore[attr-defined]
    incidents = ConsoleService(service).decorate(service.list_incidents(ADMIN))
    by_number = {i["number"]: i for i in incidents}
    assert by_number[number]["status"] == "received"
    second = next(i for i in incidents if i["number"] != number)
    assert second["merged_into"] == by_number[number]["id"] and second["status"] == "cancelled"
    assert page.errors == []  # type: ignore[attr-defined]


def test_call_by_address_duplicate_and_merge_in_english(browser: object, baltimore: Server) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page = _login(browser, baltimore, "en")
    _call_flow(
        page,
        baltimore,
        lang="en",
        category="robb",
        address="N Charles St & E North Ave",
        prefix="BAL",
    )
    page.close()  # type: ignore[attr-defined]


def test_call_by_address_duplicate_and_merge_in_chinese(browser: object, futian: Server) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page = _login(browser, futian, "zh")
    assert page.inner_text("[data-testid=intake-open]").startswith(MESSAGES["zh"]["intake.open"])  # type: ignore[attr-defined]
    _call_flow(page, futian, lang="zh", category="抢劫", address="深南大道 / 金田路", prefix="SZF")
    page.close()  # type: ignore[attr-defined]
