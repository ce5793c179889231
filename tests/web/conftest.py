"""Shared fixtures of the dashboard tests: the Manhattan pack, a demand model, a live server."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from fastapi import FastAPI

from citywatch.api.app import create_app
from citywatch.api.settings import Settings
from citywatch.city import CityPack, load_pack
from citywatch.demo import ensure_fleet
from citywatch.dispatch.accounts import create_user
from citywatch.web.demand import HistoricDemand
from tests.api.conftest import Server, start_server, stop_server

PASSWORD = "correct-horse-battery"
#: Test accounts: a city-wide dispatcher, an analyst (read-only), an officer of precinct 13.
WEB_USERS = (
    {"username": "disp", "role": "dispatcher"},
    {"username": "ana", "role": "analyst"},
    {"username": "off13", "role": "station_officer", "scope": "13"},
)


@pytest.fixture(scope="session")
def manhattan() -> CityPack:
    return load_pack("manhattan")


def demand_from_nodes(pack: CityPack, rate_per_hour: float = 60.0) -> HistoricDemand:
    """A demand model on road nodes of the pack with a flat hour profile (no import needed)."""
    rng = np.random.default_rng(3)
    idx = rng.choice(len(pack.network.lon), 200, replace=False)
    return HistoricDemand(
        lon=pack.network.lon[idx],
        lat=pack.network.lat[idx],
        hour_share=np.full(24, 1 / 24),
        timezone=pack.timezone,
        rate_per_hour=rate_per_hour,
    )


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


@pytest.fixture(scope="module")
def web_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    srv = start_web_server(tmp_path_factory.mktemp("web") / "citywatch.db")
    yield srv
    stop_server(srv.server)
