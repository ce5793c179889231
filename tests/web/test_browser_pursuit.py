"""End-to-end: the pursuit panel in headless Chromium (pattern of test_browser.py).

A dispatcher opens a robbery at Times Square, runs the pursuit, sees the rings, the hiding-area
ranking and the checkpoint plan, dispatches the plan with one click, and the plan's units become
assigned (on the map, in the panel and on the server).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from citywatch.api.app import create_app
from citywatch.api.settings import Settings
from citywatch.demo.cli import ensure_fleet
from citywatch.dispatch.accounts import Principal, Role, create_user
from tests.api.conftest import Server, start_server, stop_server
from tests.web.conftest import ARTIFACTS, CHROMIUM, MESSAGES, PASSWORD, WEB_USERS

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="no Chromium found: install Debian's chromium (scripts/test-setup.sh does in CI)",
    ),
]
DISPATCHED_RGB = "rgb(245, 166, 35)"  # STATUS_COLOURS.dispatched of map.js
TIMES_SQUARE = (-73.9855, 40.7580)
#: A plan on the 2-core test machine takes seconds; allow for a loaded machine.
PURSUIT_TIMEOUT_MS = 120_000


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str]]:
    db = tmp_path_factory.mktemp("pursuit-browser") / "citywatch.db"
    app = create_app(Settings(pack="manhattan", db_url=f"sqlite:///{db}", demo=True))
    ensure_fleet(app.state.service)
    with app.state.service.sessions.begin() as s:
        for user in WEB_USERS:
            create_user(s, password=PASSWORD, **user)
    incident, _ = app.state.service.create_incident(
        Principal("disp", Role.DISPATCHER),
        category="robbery",
        lon=TIMES_SQUARE[0],
        lat=TIMES_SQUARE[1],
    )
    srv = start_server(app)
    yield srv, str(incident["id"])
    stop_server(srv)


def _open_incident(browser: Any, srv: Server, incident_id: str) -> tuple[Any, list[str]]:
    """A dispatcher's page, logged in, with the incident's detail open; its page errors."""
    page = browser.new_page(viewport={"width": 1920, "height": 1080})  # type: ignore[attr-defined]
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.set_default_timeout(20_000)
    page.goto(srv.url + "/")
    page.fill("[data-testid=username]", "disp")
    page.fill("[data-testid=password]", PASSWORD)
    page.click("[data-testid=login-submit]")
    page.wait_for_selector("[data-testid=login]", state="hidden")
    page.click(f"[data-testid=queue-item][data-id='{incident_id}']")
    return page, errors


def test_pursuit_panel_runs_and_dispatches_the_plan(
    browser: object, live: tuple[Server, str]
) -> None:
    srv, incident_id = live
    ARTIFACTS.mkdir(exist_ok=True)
    page, errors = _open_incident(browser, srv, incident_id)
    page.wait_for_selector("[data-testid=btn-pursuit]")
    page.fill("[data-testid=pursuit-k]", "4")
    with page.expect_response(
        lambda r: r.url.endswith("/pursuit") and r.request.method == "POST",
        timeout=PURSUIT_TIMEOUT_MS,
    ) as answer:
        page.click("[data-testid=btn-pursuit]")
    doc = answer.value.json()
    assert answer.value.status == 200, doc
    page.wait_for_selector("[data-testid=pursuit-checkpoint]")
    # Rings, ranking and plan as the server computed them.
    assert page.locator("[data-testid=pursuit-ring]").count() == 4
    assert page.locator("[data-testid=pursuit-hiding]").count() == min(
        8, len(doc["hiding"]["ranking"])
    )
    planned = [c["unit"] for c in doc["plan"]["checkpoints"]]
    assert 1 <= len(planned) <= 4
    shown = page.eval_on_selector_all(
        "[data-testid=pursuit-checkpoint]", "els => els.map(e => e.dataset.unit)"
    )
    assert shown == planned
    share = page.inner_text("[data-testid=pursuit-share]")
    assert f"{100 * doc['plan']['out_of_sample']['share']:.0f}" in share.replace(",", "")
    page.screenshot(path=str(ARTIFACTS / "pursuit-plan.png"))

    page.click("[data-testid=btn-pursuit-dispatch]")
    for unit in planned:
        page.wait_for_selector(f"[data-testid=assignment]:has-text('{unit}')")
        page.wait_for_function(
            f"getComputedStyle(document.querySelector(\".unit-icon[data-unit='{unit}']\"))"
            f".backgroundColor === '{DISPATCHED_RGB}'"
        )
    detail = srv.app.state.service.get_incident(Principal("t", Role.ADMIN), incident_id)
    assert sorted(a["unit_id"] for a in detail["assignments"]) == sorted(planned)
    assert {a["assigned_by"] for a in detail["assignments"]} == {"disp"}

    # Chinese labels for the panel.
    page.keyboard.press("l")
    page.wait_for_function("document.documentElement.lang === 'zh-CN'")
    assert MESSAGES["zh"]["pursuit.title"] in page.inner_text("[data-testid=pursuit]")
    page.screenshot(path=str(ARTIFACTS / "pursuit-dispatched-zh.png"))
    assert errors == []
    page.close()


def test_pursuit_panel_starts_from_the_latest_sighting_or_one_entered_by_hand(
    browser: object, live: tuple[Server, str]
) -> None:
    """A stolen car read at one plate reader is opened as an incident, read again a block away:
    the panel offers that latest sighting, the pursuit starts there with the heading typed in;
    then from a sighting entered by hand; the labels are translated."""
    from tests.api.test_pursuit_api import _hit_then_incident
    from tests.sightings.test_api import _account

    srv, _ = live
    if "admin" not in srv.headers:
        _account(srv, "admin", "admin")
        token = srv.app.state.tokens.issue(Principal("disp", Role.DISPATCHER))
        srv.headers["disp"] = {"Authorization": f"Bearer {token}"}
    incident_id, seen = _hit_then_incident(srv, "PUR 777")
    page, errors = _open_incident(browser, srv, incident_id)
    page.wait_for_selector("[data-testid=pursuit-origin-latest]")
    assert "ps-b" in page.inner_text("[data-testid=pursuit-origin]")
    page.click("[data-testid=pursuit-origin-latest]")  # the panel redraws with the choice made
    assert page.is_checked("[data-testid=pursuit-origin-latest]")
    page.fill("[data-testid=pursuit-heading]", "90")
    page.fill("[data-testid=pursuit-k]", "2")

    def pursuit_answer() -> object:
        return page.expect_response(
            lambda r: r.url.endswith("/pursuit") and r.request.method == "POST",
            timeout=PURSUIT_TIMEOUT_MS,
        )

    with pursuit_answer() as answer:
        page.click("[data-testid=btn-pursuit]")
    sent = answer.value.request.post_data_json
    assert sent["sighting"] == {"latest": True, "heading_deg": 90} and "heading_deg" not in {
        k for k, v in sent.items() if k != "sighting" and v is not None
    }
    doc = answer.value.json()
    assert answer.value.status == 200, doc
    assert doc["origin"]["source"] == "sighting" and doc["origin"]["sighting"]["id"] == seen["id"]
    assert (doc["origin"]["lon"], doc["origin"]["lat"]) == (seen["lon"], seen["lat"])
    info = page.wait_for_selector("[data-testid=pursuit-origin-info][data-source=sighting]")
    assert "ps-b" in info.inner_text() and "90" in info.inner_text()
    page.screenshot(path=str(ARTIFACTS / "pursuit-latest-sighting.png"))

    # A sighting entered by hand: the position typed in, seen 0 minutes ago, no heading.
    page.click("[data-testid=pursuit-origin-hand]")
    assert page.is_checked("[data-testid=pursuit-origin-hand]")
    page.fill("[data-testid=pursuit-sighting-lon]", "-73.9840")
    page.fill("[data-testid=pursuit-sighting-lat]", "40.7540")
    page.fill("[data-testid=pursuit-sighting-ago]", "0")
    page.fill("[data-testid=pursuit-heading]", "")
    with pursuit_answer() as answer:
        page.click("[data-testid=btn-pursuit]")
    sent = answer.value.request.post_data_json["sighting"]
    assert (sent["lon"], sent["lat"], sent["heading_deg"]) == (-73.984, 40.754, None)
    doc = answer.value.json()
    assert answer.value.status == 200, doc
    assert doc["origin"]["sighting"]["by"] == "hand"
    assert (doc["origin"]["lon"], doc["origin"]["lat"]) == (-73.984, 40.754)
    page.wait_for_function(
        "document.querySelector('[data-testid=pursuit-origin-info]')?.dataset.source === 'sighting'"
    )

    page.keyboard.press("l")
    page.wait_for_function("document.documentElement.lang === 'zh-CN'")
    legend = page.inner_text("[data-testid=pursuit-origin] legend")
    assert legend == MESSAGES["zh"]["pursuit.origin"]
    assert MESSAGES["zh"]["pursuit.origin.hand"] in page.inner_text("[data-testid=pursuit-origin]")
    page.screenshot(path=str(ARTIFACTS / "pursuit-hand-sighting-zh.png"))
    assert errors == []
    page.close()
