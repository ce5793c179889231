"""A dispatch service on a fresh SQLite database with a controllable clock."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session

from citywatch.city import CityPack, load_pack
from citywatch.dispatch.accounts import Principal, Role
from citywatch.dispatch.service import DispatchService
from citywatch.routing import Router
from citywatch.store.db import make_engine, session_factory, upgrade


@dataclass
class Clock:
    """A settable clock for the service."""

    now: datetime = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class RecordingSink:
    """Collects staged events (delivered or not) for assertions."""

    events: list[dict[str, Any]] = field(default_factory=list)

    def stage(self, session: Session, event: dict[str, Any]) -> None:
        self.events.append(event)

    def publish(self, events: list[dict[str, Any]]) -> None:
        self.events.extend(events)


ADMIN = Principal("chief", Role.ADMIN)


@pytest.fixture(scope="session")
def manhattan() -> tuple[CityPack, Router]:
    pack = load_pack("manhattan")
    return pack, Router.from_pack(pack)


@pytest.fixture(scope="session")
def shenzhen() -> tuple[CityPack, Router]:
    pack = load_pack("shenzhen")
    return pack, Router.from_pack(pack)


def make_service(tmp: Path, pack: CityPack, router: Router, clock: Clock) -> DispatchService:
    engine = make_engine(f"sqlite:///{tmp / 'dispatch.db'}")
    upgrade(engine)
    return DispatchService(session_factory(engine), pack, router, RecordingSink(), clock=clock)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def service(
    tmp_path: Path, manhattan: tuple[CityPack, Router], clock: Clock
) -> Iterator[DispatchService]:
    yield make_service(tmp_path, *manhattan, clock)
