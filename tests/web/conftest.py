"""Shared fixtures of the dashboard tests: the Manhattan pack, a demand model, a live server,
and the headless Chromium of the browser tests (Debian's, driven by Playwright)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from fastapi import FastAPI

from citywatch.api.app import STATIC_DIR, create_app
from citywatch.api.settings import Settings
from citywatch.city import CityPack, load_pack
from citywatch.demo.calls import SimulatedCalls, scaled_model
from citywatch.demo.cli import ensure_fleet
from citywatch.dispatch.accounts import create_token, create_user
from tests.api.conftest import Server, start_server, stop_server

PASSWORD = "correct-horse-battery"
#: Where the browser tests leave their screenshots (not in git).
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
#: The dashboard's strings, en and zh, as the browser tests expect them on the page.
MESSAGES = json.loads((STATIC_DIR / "i18n.json").read_text(encoding="utf-8"))
#: Test accounts: a city-wide dispatcher, an analyst (read-only), an officer of precinct 13.
WEB_USERS = (
    {"username": "disp", "role": "dispatcher"},
    {"username": "ana", "role": "analyst"},
    {"username": "off13", "role": "station_officer", "scope": "13"},
)


@pytest.fixture(scope="session")
def manhattan() -> CityPack:
    return load_pack("manhattan")


def node_history(pack: CityPack, n: int = 300, seed: int = 3) -> pd.DataFrame:
    """Made-up past incidents on road nodes of the pack, spread evenly over one week."""
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(pack.network.lon), n, replace=False)
    lon, lat = pack.network.lon[idx], pack.network.lat[idx]
    where = pack.locate_many(lon, lat)
    inside = where["city"].notna().to_numpy()
    start = pd.Timestamp("2025-06-02T00:00Z")
    return pd.DataFrame(
        {
            "received_at": start + pd.to_timedelta(np.arange(n) * 7 * 86400 / n, unit="s"),
            "lon": lon,
            "lat": lat,
            "category": "theft",
            "priority": 3,
            "station": where["station"].to_numpy(),
            "zone": where["zone"].fillna(where["station"]).to_numpy(),
        }
    )[inside].reset_index(drop=True)


def calls_from_nodes(
    pack: CityPack, start: datetime, rate_per_hour: float = 60.0, seed: int = 5
) -> SimulatedCalls:
    """The simulator's generator fitted to :func:`node_history` (no import needed)."""
    model = scaled_model(node_history(pack), pack.timezone, rate_per_hour)
    return SimulatedCalls(model, start, seed)


@dataclass
class WebServer:
    """A running service with the demo fleet and the test accounts."""

    server: Server
    app: FastAPI

    @property
    def url(self) -> str:
        return self.server.url


def start_web_server(db_path: Path, *, demo: bool = False) -> WebServer:
    """The service on a fresh SQLite file, with the demo fleet and :data:`WEB_USERS`."""
    app = create_app(Settings(pack="manhattan", db_url=f"sqlite:///{db_path}", demo=demo))
    ensure_fleet(app.state.service)
    with app.state.service.sessions.begin() as s:
        for user in WEB_USERS:
            create_user(s, password=PASSWORD, **user)
    return WebServer(start_server(app), app)


def feed_server(
    db_path: Path, feed_purpose: str, users: tuple[dict[str, str], ...] = ()
) -> tuple[WebServer, dict[str, str]]:
    """:func:`start_web_server` with an admin ``boss`` (signed in), the ``users`` and a sensor
    feed account ``gateway``: the server and the bearer tokens of ``boss`` and ``gateway``."""
    web = start_web_server(db_path)
    with web.app.state.service.sessions.begin() as s:
        create_user(s, "boss", "admin", password=PASSWORD)
        for user in users:
            create_user(s, password=PASSWORD, **user)
        create_user(s, "gateway", "sensor_feed")
        tokens = {"gateway": create_token(s, "gateway", feed_purpose)}
    with httpx.Client(base_url=web.url) as c:
        r = c.post("/api/v1/auth/token", data={"username": "boss", "password": PASSWORD})
        tokens["boss"] = r.json()["access_token"]
    return web, tokens


@pytest.fixture(scope="module")
def web_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    srv = start_web_server(tmp_path_factory.mktemp("web") / "citywatch.db")
    yield srv
    stop_server(srv.server)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # citywatch.sim.demand (not ours) still calls Series.dt.dayofweek and
    # DatetimeIndex.dayofweek, which pandas deprecates; reported to the simulator's owner.
    # Only that warning is tolerated here.
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.path).parents:
            item.add_marker(pytest.mark.filterwarnings("ignore:.*dayofweek is deprecated"))


#: Debian's Chromium (never ``playwright install``); the browser tests skip without it.
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """One headless Chromium per test module."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        yield b
        b.close()
