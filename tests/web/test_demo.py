"""The demo's set-up steps: bundled import once, fleet, accounts that lock when the demo stops."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from citywatch.api.app import create_app
from citywatch.api.settings import Settings
from citywatch.city import CityPack, load_pack
from citywatch.demo.cli import DEMO_ACCOUNTS, ensure_accounts, ensure_fleet, import_bundled
from citywatch.dispatch.accounts import Role, authenticate_password, create_user
from citywatch.errors import AuthenticationError
from citywatch.store.db import make_engine, session_factory, upgrade
from citywatch.store.dispatch_models import Unit, User
from citywatch.store.models import IncidentRow


def test_bundled_incidents_are_imported_once(tmp_path: Path, manhattan: CityPack) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'demo.db'}")
    upgrade(engine)
    report = import_bundled(engine, manhattan)
    assert report is not None
    # Published file: 20 659 victim rows; 1 944 distinct Manhattan shootings inside the pack.
    assert report["read"] == 20_659
    assert report["imported"] == 1_944
    assert report["imported"] + report["merged"] + report["rejected"] == report["read"]
    assert import_bundled(engine, manhattan) is None
    with engine.connect() as conn:
        stored = conn.execute(select(func.count()).select_from(IncidentRow)).scalar_one()
    assert stored == 1_944
    assert import_bundled(engine, load_pack("shenzhen")) is None  # no bundled incidents


def test_fleet_and_accounts(tmp_path: Path, manhattan: CityPack) -> None:
    app = create_app(Settings(pack="manhattan", db_url=f"sqlite:///{tmp_path / 'demo.db'}"))
    service = app.state.service
    assert ensure_fleet(service) == 84
    assert ensure_fleet(service) == 0
    with service.sessions() as s:
        units = list(s.scalars(select(Unit)))
    assert {u.station for u in units} == {st.id for st in manhattan.stations}
    assert sorted({u.unit_type for u in units}) == ["foot", "patrol_car", "special_police"]
    sessions = session_factory(make_engine(f"sqlite:///{tmp_path / 'demo.db'}"))
    first = ensure_accounts(sessions, manhattan)
    second = ensure_accounts(sessions, manhattan)
    assert set(first) == set(second) == {a.username for a in DEMO_ACCOUNTS}
    with sessions.begin() as s:
        officer = authenticate_password(s, "demo-officer", second["demo-officer"], allow_demo=True)
        assert officer.role is Role.STATION_OFFICER and officer.scope == "1"
        with pytest.raises(AuthenticationError):
            authenticate_password(s, "demo-dispatcher", first["demo-dispatcher"], allow_demo=True)
    assert ensure_accounts(sessions, manhattan, reveal=False) == {}
    with sessions.begin() as s, pytest.raises(AuthenticationError):
        authenticate_password(s, "demo-dispatcher", second["demo-dispatcher"], allow_demo=True)


def test_demo_accounts_are_flagged_in_the_database(tmp_path: Path, manhattan: CityPack) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'demo.db'}")
    upgrade(engine)
    sessions = session_factory(engine)
    with sessions.begin() as s:
        # An account of a demo name made before (e.g. by an older version) is taken over too.
        create_user(s, "demo-analyst", "analyst", password="an-old-password")
        create_user(s, "alice", "analyst", password="alices-password")
    passwords = ensure_accounts(sessions, manhattan)
    with sessions() as s:
        flags = dict(s.execute(select(User.username, User.is_demo)).all())
    assert flags == {a.username: True for a in DEMO_ACCOUNTS} | {"alice": False}
    # So outside demo mode every one of them is refused, whatever its name.
    with sessions.begin() as s:
        for account in DEMO_ACCOUNTS:
            with pytest.raises(AuthenticationError, match="only in demo mode"):
                authenticate_password(s, account.username, passwords[account.username])
            who = authenticate_password(
                s, account.username, passwords[account.username], allow_demo=True
            )
            assert who.role.value == account.role
