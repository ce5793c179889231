"""End-to-end, in Chinese and English: the roster board, status timers on a fake clock, team
dispatch in one action and live move-up suggestions, in headless Chromium against a real server.

The server's clock is a fake (:class:`FakeClock`): real time plus an offset the test moves, so
that "on scene for 21 minutes" takes no 21 minutes.  No feed runs: the test is the dispatcher.
Screenshots go to ``test-artifacts/``.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote

import pytest

from citywatch.api.app import create_app
from citywatch.api.settings import Settings
from citywatch.demo.cli import ensure_fleet
from citywatch.dispatch.accounts import Principal, Role, create_user
from tests.api.conftest import Server, start_server, stop_server
from tests.api.test_board_api import FakeClock
from tests.web.conftest import ARTIFACTS, CHROMIUM, MESSAGES, PASSWORD, WEB_USERS
from tests.web.test_browser import TIMEOUT_MS

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="no Chromium found: install Debian's chromium (scripts/test-setup.sh does in CI)",
    ),
]
ADMIN = Principal("test", Role.ADMIN)
#: A point in precinct 25 (East Harlem) on the road network.
HARLEM = (-73.9385, 40.8010)


@pytest.fixture(scope="module")
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, clock: FakeClock) -> Iterator[Server]:
    db = tmp_path_factory.mktemp("board") / "citywatch.db"
    app = create_app(Settings(pack="manhattan", db_url=f"sqlite:///{db}"))
    app.state.service.clock = clock
    ensure_fleet(app.state.service)
    with app.state.service.sessions.begin() as s:
        for user in WEB_USERS:
            create_user(s, password=PASSWORD, **user)
    srv = start_server(app)
    yield srv
    stop_server(srv)


def open_page(browser: object, live: Server, lang: str, user: str = "disp") -> object:
    page = browser.new_page(viewport={"width": 1920, "height": 1080})  # type: ignore[attr-defined]
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.errors = errors
    page.set_default_timeout(TIMEOUT_MS)
    page.add_init_script(f"localStorage.setItem('citywatch.lang', '{lang}')")
    page.goto(live.url + "/")
    page.fill("[data-testid=username]", user)
    page.fill("[data-testid=password]", PASSWORD)
    page.click("[data-testid=login-submit]")
    page.wait_for_selector("[data-testid=login]", state="hidden")
    page.wait_for_function("document.querySelectorAll('[data-testid=roster-row]').length > 0")
    return page


def msg(lang: str, key: str, **params: object) -> str:
    text: str = MESSAGES[lang][key]
    for k, v in params.items():
        text = text.replace("{" + k + "}", str(v))
    return text


def free_units(live: Server) -> list[dict[str, object]]:
    return live.app.state.service.list_units(ADMIN, status="available")  # type: ignore[no-any-return]


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_recommended_team_is_sent_in_one_action(browser: object, live: Server, lang: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    service = live.app.state.service
    incident, _ = service.create_incident(ADMIN, category="shooting", lon=HARLEM[0], lat=HARLEM[1])
    rec = service.recommend(ADMIN, incident["id"])
    team = rec.team
    assert len(team) == 2 and any(u.endswith("ESU1") for u in team)  # special police in it
    assert rec.status != "short"
    page = open_page(browser, live, lang)
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    page.click(f"[data-testid=queue-item][data-id='{incident['id']}']")
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:  # the detail and its recommendation are two requests: slow on a loaded machine
        page.wait_for_selector("[data-testid=send-team]", timeout=3 * TIMEOUT_MS)
    except PlaywrightTimeout:
        pytest.fail(f"no team row: {page.inner_text('#detail-body')!r}, errors {page.errors}")
    assert page.inner_text("[data-testid=send-team]").startswith(msg(lang, "detail.send_team", n=2))
    assert page.eval_on_selector_all(
        "[data-testid=candidate][data-team]", "r => r.map(e => e.dataset.unit)"
    ) == list(team)
    # No "Team incomplete": the demo fleet has the special police the rules require.
    # The reason every candidate shares is said once; the rows say what differs.
    common = msg(lang, "reason.by_travel_time")
    assert common in page.inner_text("[data-testid=ranked-by]")
    cells = page.eval_on_selector_all(
        "[data-testid=candidate-reason]", "els => els.map(e => e.textContent)"
    )
    assert len(cells) == 5 and not any(common in c for c in cells)
    assert any(msg(lang, "unit_type.special_police") in c for c in cells)  # required type
    status = page.query_selector("[data-testid=rec-status]")  # positions stale: no AVL here
    assert status is None or msg(lang, "rec_status.short") not in status.inner_text()
    page.click("[data-testid=send-team]")
    for uid in team:
        page.wait_for_selector(f"[data-testid=assignment]:has-text('{uid}')")
    page.screenshot(path=str(ARTIFACTS / f"team-sent-{lang}.png"))
    assert [u for u in posts if "/team" in u or "/assignments" in u] == [
        f"{live.url}/api/v1/incidents/{quote(incident['id'], safe='')}/team"
    ]
    detail = service.get_incident(ADMIN, incident["id"])
    assert sorted(a["unit_id"] for a in detail["assignments"]) == sorted(team)
    assert {a["assigned_by"] for a in detail["assignments"]} == {"disp"}
    assert page.errors == []
    page.close()
    # Leave the fleet as found for the other tests.
    service.set_incident_status(ADMIN, incident["id"], "cancelled")


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_a_timer_warning_appears_and_a_check_in_clears_it(
    browser: object, live: Server, clock: FakeClock, lang: str
) -> None:
    service = live.app.state.service
    incident, _ = service.create_incident(ADMIN, category="theft", lon=HARLEM[0], lat=HARLEM[1])
    uid = next(
        c.unit_id
        for c in service.recommend(ADMIN, incident["id"], k=10).candidates
        if c.unit_type == "patrol_car"
    )
    service.assign(ADMIN, incident["id"], uid)
    warn_s = service.timer_rules.thresholds("patrol_car", "on_scene").warn_s
    assert warn_s == 20 * 60
    service.set_unit_status(ADMIN, uid, "on_scene")
    page = open_page(browser, live, lang)
    row = f"[data-testid=roster-row][data-unit='{uid}']"
    page.wait_for_selector(f"{row}[data-timer=ok][data-status=on_scene]", state="attached")
    clock.advance(warn_s + 60)  # on scene for 21 minutes without a check-in
    page.wait_for_selector(f"{row}[data-timer=warning]")
    assert page.inner_text(f"{row} [data-testid=timer-badge]") == msg(lang, "board.timer_warning")
    assert page.is_visible("[data-testid=roster-alerts]")
    # Time in status runs on the server's clock (21 minutes), not the browser's.
    cell = f'document.querySelector("{row} [data-testid=time-in-status]").textContent'
    page.wait_for_function(f"/^2[12]:/.test({cell})")
    page.screenshot(path=str(ARTIFACTS / f"timer-warning-{lang}.png"))
    page.click(f"{row} [data-testid=checkin]")
    page.wait_for_selector(f"{row}[data-timer=ok]")
    assert page.query_selector(f"{row} [data-testid=timer-badge]") is None
    assert page.errors == []
    page.close()
    service.set_incident_status(ADMIN, incident["id"], "cleared")
    service.set_unit_status(ADMIN, uid, "available")


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_roster_filters(browser: object, live: Server, lang: str) -> None:
    service = live.app.state.service
    service.set_out_of_service(ADMIN, "13-FOOT1", "training")
    page = open_page(browser, live, lang)
    total = len(service.list_units(ADMIN))
    rows = "document.querySelectorAll('[data-testid=roster-row]').length"
    page.wait_for_function(f"{rows} === {total}")
    page.select_option("[data-testid=roster-filter-type]", "special_police")
    special = len([u for u in service.list_units(ADMIN) if u["unit_type"] == "special_police"])
    page.wait_for_function(f"{rows} === {special}")
    assert set(
        page.eval_on_selector_all("[data-testid=roster-row]", "r => r.map(e => e.dataset.type)")
    ) == {"special_police"}
    page.select_option("[data-testid=roster-filter-type]", "")
    page.select_option("[data-testid=roster-filter-status]", "out_of_service")
    page.wait_for_function(f"{rows} === 1")
    row = page.inner_text("[data-testid=roster-row]")
    assert "13-FOOT1" in row and msg(lang, "oos.training") in row
    page.select_option("[data-testid=roster-filter-status]", "")
    page.select_option("[data-testid=roster-filter-station]", "13")
    page.wait_for_function(f"{rows} === 4")
    assert set(
        page.eval_on_selector_all("[data-testid=roster-row]", "r => r.map(e => e.dataset.station)")
    ) == {"13"}
    page.screenshot(path=str(ARTIFACTS / f"roster-filtered-{lang}.png"))
    # Back in service from the board.
    page.click("[data-testid=roster-row][data-unit='13-FOOT1'] [data-testid=back-in-service]")
    page.wait_for_selector("[data-testid=roster-row][data-unit='13-FOOT1'][data-status=available]")
    assert page.errors == []
    page.close()


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_move_up_suggestion_is_shown_and_applied(browser: object, live: Server, lang: str) -> None:
    service = live.app.state.service
    # Both patrol cars of a precinct leave for calls: the rule "one patrol car available at
    # every station" is broken there, and the console names the donor.
    short = {"zh": "25", "en": "28"}[lang]
    calls = []
    for uid in (f"{short}-RMP1", f"{short}-RMP2"):
        inc, _ = service.create_incident(ADMIN, category="theft", lon=HARLEM[0], lat=HARLEM[1])
        service.assign(ADMIN, inc["id"], uid)
        calls.append(inc["id"])
    expected = service.moveup_suggestions(ADMIN)
    assert {"station": short, "unit_type": "patrol_car", "min_available": 1} in expected[
        "violations"
    ]
    rule = [m for m in expected["moves"] if m["kind"] == "rule" and m["to_station"] == short]
    assert len(rule) == 1 and rule[0]["unit_id"] is not None
    donor = rule[0]["unit_id"]
    page = open_page(browser, live, lang)
    item = f"[data-testid=moveup-item][data-kind=rule][data-to='{short}'][data-unit='{donor}']"
    page.wait_for_selector(item)
    text = page.inner_text(item)
    assert donor in text and msg(lang, "moveup.apply") in text
    page.screenshot(path=str(ARTIFACTS / f"moveup-{lang}.png"))
    page.click(f"{item} [data-testid=moveup-apply]")
    precinct = {"en": f"Precinct {short}", "zh": f"第{short}警区"}[lang]
    covering = msg(lang, "board.covering", station=precinct)
    page.wait_for_selector(f"[data-testid=roster-row][data-unit='{donor}']:has-text('{covering}')")
    page.wait_for_selector(item, state="detached")
    after = service.moveup_suggestions(ADMIN)
    assert not [v for v in after["violations"] if v["station"] == short]
    (moved,) = [u for u in service.roster(ADMIN)["units"] if u["id"] == donor]
    assert moved["cover_station"] == short and moved["status"] == "available"
    assert page.errors == []
    page.close()
    for inc_id in calls:
        service.set_incident_status(ADMIN, inc_id, "cancelled")


_MARK_JS = """() => {
  // Tag every filter option and the board's first out-of-service drop-down: an element that
  // is rebuilt loses its tag.
  let n = 0;
  for (const o of document.querySelectorAll('.roster-filters option')) o.__kept = ++n;
  return n;
}"""
_KEPT_JS = """(ids) => {
  const opts = [...document.querySelectorAll('.roster-filters option')];
  return {
    kept: opts.filter((o) => o.__kept).length,
    fresh: opts.filter((o) => !o.__kept).map((o) => o.value),
    values: Object.fromEntries(ids.map((id) => [id, document.getElementById(id).value])),
    focused: document.activeElement && document.activeElement.id,
  };
}"""


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_roster_drop_downs_survive_events(browser: object, live: Server, lang: str) -> None:
    """Events redraw the roster, never its drop-downs: the filters' options are updated in
    place (the chosen one, the focus and every other option element stay; a new unit type is
    added), and a row's out-of-service drop-down being chosen from is not redrawn until it
    loses the focus."""
    service = live.app.state.service
    new_type = {"en": "bicycle", "zh": "mounted"}[lang]
    elsewhere, car = {"en": ("5-FOOT1", "1-RMP2"), "zh": ("6-FOOT1", "1-RMP1")}[lang]
    uid = f"1-{new_type.upper()}-{lang.upper()}"
    try:
        _drop_downs(browser, live, lang, new_type, uid, elsewhere, car)
    finally:
        for unit in (uid, elsewhere, car):
            if service.get_unit(ADMIN, unit)["status"] == "out_of_service":
                service.set_unit_status(ADMIN, unit, "available")


def _drop_downs(
    browser: object, live: Server, lang: str, new_type: str, uid: str, elsewhere: str, car: str
) -> None:
    service = live.app.state.service
    page = open_page(browser, live, lang)
    page.select_option("[data-testid=roster-filter-station]", "1")
    page.wait_for_function(
        "[...document.querySelectorAll('[data-testid=roster-row]')]"
        ".every((r) => r.dataset.station === '1')"
    )
    page.focus("[data-testid=roster-filter-station]")
    marked = page.evaluate(_MARK_JS)
    # Events: a unit of a type the board has not seen, at the chosen station, and a status
    # change elsewhere.
    service.create_unit(ADMIN, id=uid, unit_type=new_type, station="1")
    service.set_out_of_service(ADMIN, elsewhere, "meal")
    page.wait_for_selector(f"[data-testid=roster-row][data-unit='{uid}']")
    page.wait_for_selector(
        f"[data-testid=roster-filter-type] option[value='{new_type}']", state="attached"
    )
    ids = ["roster-filter-status", "roster-filter-type", "roster-filter-station"]
    state = page.evaluate(_KEPT_JS, ids)
    assert state["kept"] == marked, state  # no option was rebuilt
    assert state["fresh"] == [new_type], state  # the one new option, added in place
    assert state["values"] == {ids[0]: "", ids[1]: "", ids[2]: "1"}, state
    assert state["focused"] == "roster-filter-station", state
    label = page.eval_on_selector(
        f"[data-testid=roster-filter-type] option[value='{new_type}']", "o => o.textContent"
    )
    assert label == msg(lang, f"unit_type.{new_type}")
    # A row's out-of-service drop-down, focused: an event does not rebuild it under the user.
    oos = f"[data-testid=roster-row][data-unit='{uid}'] [data-testid=oos-reason]"
    page.focus(oos)
    page.eval_on_selector(oos, "s => { s.__kept = true; }")
    service.set_out_of_service(ADMIN, car, "maintenance")
    page.wait_for_function(f"document.querySelector(\"{oos}\").dataset.deferred === '1'")
    assert page.eval_on_selector(oos, "s => s.__kept === true && s === document.activeElement")
    page.screenshot(path=str(ARTIFACTS / f"roster-dropdowns-{lang}.png"))
    # Chosen: the unit goes out of service and the rows are drawn again.
    page.select_option(oos, "training")
    row = f"[data-testid=roster-row][data-unit='{uid}']"
    page.wait_for_selector(f"{row}[data-status=out_of_service]")
    page.wait_for_selector(
        f"[data-testid=roster-row][data-unit='{car}'][data-status=out_of_service]"
    )
    assert page.errors == []
    page.close()


def _caution(service: object, lon: float, lat: float, text: str) -> dict[str, object]:
    from citywatch.dispatch.intake import ConsoleService

    return ConsoleService(service).create_caution(  # type: ignore[arg-type]
        ADMIN, lon=lon, lat=lat, kind="dangerous_animal", severity="high", text=text
    )


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_a_caution_is_revoked_from_the_detail_and_the_intake_form(
    browser: object, live: Server, lang: str
) -> None:
    """Where cautions are listed (incident detail, intake form) a dispatcher gets **Revoke**
    (two clicks: the first arms it), an analyst none; the revocation is the server's, audited
    under the dispatcher's name, and the caution leaves the list."""
    from sqlalchemy import select

    from citywatch.dispatch.intake import ConsoleService
    from citywatch.store.dispatch_models import AuditRecord

    service = live.app.state.service
    lon, lat = {"zh": (-73.9442, 40.8044), "en": (-73.9471, 40.7990)}[lang]  # East Harlem
    incident, _ = service.create_incident(ADMIN, category="burglary", lon=lon, lat=lat)
    first = _caution(service, lon, lat, f"dog in the yard ({lang})")
    second = _caution(service, lon, lat, f"gas cylinders stored inside ({lang})")
    item = f"[data-testid=detail-caution][data-caution='{first['id']}']"
    # The analyst reads the cautions, without Revoke.
    page = open_page(browser, live, lang, user="ana")
    page.click(f"[data-testid=queue-item][data-id='{incident['id']}']")
    page.wait_for_selector(item)
    assert page.query_selector("[data-testid=caution-revoke]") is None
    page.close()
    # The dispatcher revokes the first from the detail.
    page = open_page(browser, live, lang)
    page.click(f"[data-testid=queue-item][data-id='{incident['id']}']")
    button = f"{item} [data-testid=caution-revoke]"
    page.wait_for_selector(button)
    assert page.inner_text(button) == msg(lang, "caution.revoke")
    page.click(button)  # arms only
    assert page.inner_text(button) == msg(lang, "caution.revoke_confirm")
    active = {c["id"] for c in ConsoleService(service).list_cautions(ADMIN)}
    assert first["id"] in active
    page.click(button)
    page.wait_for_selector(item, state="detached")
    page.wait_for_selector(f"[data-testid=toast]:has-text('{msg(lang, 'caution.revoked')}')")
    # The second, from the intake form at the same place (typed coordinates).
    page.keyboard.press("Escape")
    page.keyboard.press("n")
    page.wait_for_selector("[data-testid=intake]")
    page.keyboard.type("burg")
    page.wait_for_selector("[data-testid=intake-category-option]")
    page.keyboard.press("Enter")
    page.keyboard.type(f"{lat}, {lon}")
    page.wait_for_selector("[data-testid=intake-location-option]")
    page.keyboard.press("Enter")
    form_item = f"[data-testid=intake-caution][data-caution='{second['id']}']"
    page.wait_for_selector(form_item)
    assert (
        page.query_selector(f"[data-testid=intake-caution][data-caution='{first['id']}']") is None
    )
    page.screenshot(path=str(ARTIFACTS / f"caution-revoke-{lang}.png"))
    page.click(f"{form_item} [data-testid=caution-revoke]")
    page.click(f"{form_item} [data-testid=caution-revoke]")
    page.wait_for_selector(form_item, state="detached")
    active = {c["id"] for c in ConsoleService(service).list_cautions(ADMIN)}
    assert not {first["id"], second["id"]} & active
    with service.sessions() as s:
        revoked = s.scalars(
            select(AuditRecord).where(AuditRecord.action == "caution.revoked")
        ).all()
    mine = {r.entity_id: r.actor for r in revoked}
    assert {mine.get(str(first["id"])), mine.get(str(second["id"]))} == {"disp"}, mine
    # One created elsewhere (another dashboard, the API) at this place joins the open form.
    third = _caution(service, lon, lat, f"barbed wire on the fence ({lang})")
    page.wait_for_selector(f"[data-testid=intake-caution][data-caution='{third['id']}']")
    assert page.errors == []
    page.keyboard.press("Escape")
    page.close()
    service.set_incident_status(ADMIN, incident["id"], "cancelled")
