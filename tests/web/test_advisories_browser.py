"""The dashboard's advisory and forecast layers in headless Chromium (zh and en)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from pyproj import Transformer

from citywatch.api.app import create_app
from citywatch.api.settings import Settings
from citywatch.city import CityPack
from citywatch.dispatch.accounts import Principal, Role, create_user
from citywatch.forecast.pipeline import write_risk_geojson
from citywatch.forecast.surface import grid_surface
from citywatch.incidents.storage import insert_incidents
from tests.api.conftest import Server, start_server, stop_server
from tests.api.test_advisories import CONFIG, UNION_SQUARE, _history
from tests.web.conftest import MESSAGES, PASSWORD, WEB_USERS
from tests.web.test_browser import CHROMIUM, TIMEOUT_MS

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="no Chromium found (scripts/test-setup.sh)"),
]


@pytest.fixture(scope="module")
def advised_live(tmp_path_factory: pytest.TempPathFactory, manhattan: CityPack) -> Iterator[Server]:
    home = Path(tmp_path_factory.mktemp("advisory-browser"))
    (home / "forecasts").mkdir()
    settings = Settings(
        pack="manhattan",
        db_url=f"sqlite:///{home / 'citywatch.db'}",
        advisories=CONFIG,
        forecast_dir=str(home / "forecasts"),
    )
    app = create_app(settings, pack=manhattan)
    service = app.state.service
    with service.sessions.kw["bind"].begin() as conn:
        insert_incidents(conn, _history(manhattan, datetime.now(UTC)))
    with service.sessions.begin() as s:
        for user in WEB_USERS:
            create_user(s, password=PASSWORD, **user)
    app.state.advisor.refresh(Principal("ana", Role.ANALYST), ["burglary"])
    to_m = Transformer.from_crs("EPSG:4326", manhattan.crs, always_xy=True)
    x0, y0 = to_m.transform(*UNION_SQUARE)
    points = np.column_stack([x0 + 250.0 * np.arange(20), np.full(20, y0)])
    surface = grid_surface(250.0, manhattan.crs, points=points)
    backtest = {
        "first_origin": "2026-10-01T00:00:00+00:00",
        "last_origin": "2026-11-24T00:00:00+00:00",
        "periods": 9,
        "horizon_days": 7.0,
        "rows": [
            {
                "predictor": p,
                "coverage": 0.1,
                "hit_rate": {"mean": h, "low": h - 0.05, "high": h + 0.05, "n": 9},
                "pai": {"mean": h / 0.1, "low": None, "high": None, "n": 9},
            }
            for p, h in (("kde", 0.34), ("naive", 0.21))
        ],
    }
    meta = {
        "predictor": "kde",
        "origin": "2026-12-01T00:00:00+00:00",
        "until": "2026-12-08T00:00:00+00:00",
        "backtest": backtest,
    }
    write_risk_geojson(surface, np.arange(1.0, 21.0), home / "forecasts" / "kde.geojson", meta)
    srv = start_server(app)
    yield srv
    stop_server(srv)


def test_advisory_circle_evidence_and_forecast(browser: object, advised_live: Server) -> None:
    page = browser.new_page(viewport={"width": 1600, "height": 1000})  # type: ignore[attr-defined]
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.set_default_timeout(TIMEOUT_MS)
    page.add_init_script("localStorage.setItem('citywatch.lang', 'en')")
    page.goto(advised_live.url + "/")
    page.fill("[data-testid=username]", "off13")
    page.fill("[data-testid=password]", PASSWORD)
    page.click("[data-testid=login-submit]")
    page.wait_for_selector("[data-testid=advisory-box]")
    en = MESSAGES["en"]
    box = page.locator("[data-testid=advisory-box]")
    box.get_by_text(en["advisory.rule"]).wait_for()
    assert page.locator("[data-testid=advisory-count]").inner_text() == "0"
    # a burglary recorded next to the recent one: pushed to station 13's officer live
    service = advised_live.app.state.service
    service.create_incident(
        Principal("disp", Role.DISPATCHER), category="burglary", lon=UNION_SQUARE[0],
        lat=UNION_SQUARE[1],
    )  # fmt: skip
    page.wait_for_function(
        "document.querySelector('[data-testid=advisory-count]').textContent === '1'"
    )
    # the circle's centre lies under the incident's marker: click the circle itself
    page.locator("path.advisory-circle").first.dispatch_event("click")
    evidence = page.locator("[data-testid=advisory-evidence]")
    evidence.wait_for()
    text = evidence.inner_text()
    assert "Burglary: near-repeat window 100 m, 7 days" in text
    assert "p = 0.01" in text and "1 earlier incident(s) already inside the window" in text
    assert page.locator("table.knox td.sig").count() >= 1
    # the forecast layer: predictor, period and the backtest line
    page.click("[data-testid=forecast-toggle]")
    assert "Retrospective KDE" in box.inner_text()
    assert "hit rate 34% (29%–39%), PAI 3.4; naive 21%" in box.inner_text()
    # Chinese labels after switching the language
    page.click("[data-testid=lang-toggle]")
    zh = MESSAGES["zh"]
    box.get_by_text(zh["advisory.rule"]).wait_for()
    assert "已开启：入室盗窃" in box.inner_text()
    assert "回顾性核密度" in box.inner_text()
    ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "advisories-zh.png"))
    assert errors == []
