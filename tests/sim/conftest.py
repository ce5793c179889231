"""Shared fixtures of the simulator tests: the Manhattan pack, its router and car travel matrix."""

from __future__ import annotations

import copy
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from citywatch.city import CityPack, load_pack
from citywatch.routing import Router
from citywatch.sim.scenario import Scenario, parse_scenario
from citywatch.sim.travel import SearchTravel


@pytest.fixture(scope="session")
def pack() -> CityPack:
    return load_pack("manhattan")


@pytest.fixture(scope="session")
def router(pack: CityPack) -> Router:
    return Router.from_pack(pack)


@pytest.fixture(scope="session")
def car_travel(router: Router) -> SearchTravel:
    return SearchTravel(router, ["car"])


def make_scenario(pack: CityPack, doc: dict[str, Any], base: Path | None = None) -> Scenario:
    """A scenario from a TOML-like dict, with a one-week window by default."""
    full = copy.deepcopy(doc)
    full.setdefault("scenario", {}).setdefault("start", datetime(2024, 3, 4))
    full["scenario"].setdefault("pack", str(pack.path))
    return parse_scenario(
        full,
        base or Path(__file__).parent,
        timezone=pack.timezone,
        stations=[s.id for s in pack.stations],
    )
