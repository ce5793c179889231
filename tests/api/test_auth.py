"""Sessions over HTTP: refresh-token rotation, logout, disabling at once, demo accounts.

Runs against the real uvicorn server of the session (SQLite, and PostgreSQL when reachable);
each test uses its own accounts so that the order of tests does not matter.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException
from websockets.sync.client import connect

from citywatch.api.app import create_app
from citywatch.api.security import principal_from_token
from citywatch.api.settings import Settings
from citywatch.city import CityPack
from citywatch.dispatch.accounts import create_token, create_user, disable_user, find_user
from citywatch.errors import AuthenticationError, ValidationError
from citywatch.routing import Router
from citywatch.store.base import Base
from citywatch.store.db import alembic_config, make_engine, upgrade
from citywatch.store.dispatch_models import RefreshToken, User
from tests.api.conftest import PASSWORD, Server, start_server, stop_server

TOKEN = "/api/v1/auth/token"
REFRESH = "/api/v1/auth/refresh"
LOGOUT = "/api/v1/auth/logout"
ME = "/api/v1/me"


def _login(client: httpx.Client, username: str) -> dict[str, Any]:
    r = client.post(TOKEN, data={"username": username, "password": PASSWORD})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def _bearer(tokens: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


def _stored(server: Server, username: str) -> list[RefreshToken]:
    with server.app.state.service.sessions() as s:
        return list(
            s.scalars(
                sa.select(RefreshToken)
                .join(User, User.id == RefreshToken.user_id)
                .where(User.username == username)
                .order_by(RefreshToken.id)
            )
        )


def test_refresh_rotates_single_use_tokens(server: Server) -> None:
    with server.app.state.service.sessions.begin() as s:
        create_user(s, "wall-1", "commander", password=PASSWORD)
    anon = server.client()
    first = _login(anon, "wall-1")
    assert first["expires_in"] == 900 and first["refresh_expires_in"] == 7 * 86_400
    assert first["refresh_token"].startswith("cwr_")
    second = anon.post(REFRESH, json={"refresh_token": first["refresh_token"]})
    assert second.status_code == 200
    rotated = second.json()
    assert rotated["refresh_token"] != first["refresh_token"]
    me = anon.get("/api/v1/me", headers=_bearer(rotated)).json()
    assert (me["username"], me["role"]) == ("wall-1", "commander")
    # Only hashes are stored; both tokens belong to one session, the first one spent.
    stored = _stored(server, "wall-1")
    assert len(stored) == 2 and stored[0].family == stored[1].family
    assert stored[0].used_at is not None and stored[1].used_at is None
    assert {t.token_hash for t in stored}.isdisjoint(
        {first["refresh_token"], rotated["refresh_token"]}
    )
    # Replaying the spent token: refused, and the whole session is revoked (copied token).
    replay = anon.post(REFRESH, json={"refresh_token": first["refresh_token"]})
    assert replay.status_code == 401
    assert "already used" in replay.json()["error"]["message"]
    after = anon.post(REFRESH, json={"refresh_token": rotated["refresh_token"]})
    assert after.status_code == 401
    assert all(t.revoked for t in _stored(server, "wall-1"))
    # A new login is a new, independent session.
    again = _login(anon, "wall-1")
    assert anon.post(REFRESH, json={"refresh_token": again["refresh_token"]}).status_code == 200


def test_concurrent_refreshes_with_one_token_succeed_once(server: Server) -> None:
    with server.app.state.service.sessions.begin() as s:
        create_user(s, "wall-2", "dispatcher", password=PASSWORD)
    token = _login(server.client(), "wall-2")["refresh_token"]

    def spend(_: int) -> int:
        with server.client() as c:
            return c.post(REFRESH, json={"refresh_token": token}).status_code

    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(spend, range(8)))
    assert codes.count(200) == 1 and codes.count(401) == 7


def test_logout_revokes_the_session_only(server: Server) -> None:
    with server.app.state.service.sessions.begin() as s:
        create_user(s, "wall-3", "analyst", password=PASSWORD)
    anon = server.client()
    screen, laptop = _login(anon, "wall-3"), _login(anon, "wall-3")
    assert anon.post(LOGOUT, json={"refresh_token": screen["refresh_token"]}).status_code == 204
    assert anon.post(LOGOUT, json={"refresh_token": screen["refresh_token"]}).status_code == 204
    assert anon.post(REFRESH, json={"refresh_token": screen["refresh_token"]}).status_code == 401
    assert anon.post(REFRESH, json={"refresh_token": laptop["refresh_token"]}).status_code == 200
    assert anon.post(REFRESH, json={"refresh_token": "cwr_unknown"}).status_code == 401
    assert anon.post(REFRESH, json={}).status_code == 422


def test_expired_refresh_token_is_refused(server: Server) -> None:
    with server.app.state.service.sessions.begin() as s:
        create_user(s, "wall-4", "analyst", password=PASSWORD)
    anon = server.client()
    token = _login(anon, "wall-4")["refresh_token"]
    with server.app.state.service.sessions.begin() as s:
        s.execute(
            sa.update(RefreshToken)
            .where(
                RefreshToken.user_id
                == sa.select(User.id).where(User.username == "wall-4").scalar_subquery()
            )
            .values(expires_at=sa.func.current_timestamp())
        )
    r = anon.post(REFRESH, json={"refresh_token": token})
    assert r.status_code == 401 and "expired" in r.json()["error"]["message"]


def test_disabling_an_account_takes_effect_at_once(server: Server) -> None:
    with server.app.state.service.sessions.begin() as s:
        create_user(s, "leaver", "dispatcher", password=PASSWORD)
    anon = server.client()
    tokens = _login(anon, "leaver")
    headers = _bearer(tokens)
    assert anon.get("/api/v1/incidents", headers=headers).status_code == 200
    with connect(f"{server.ws_url}?access_token={tokens['access_token']}") as ws:
        ws.send("ping")  # accepted while enabled
    with server.app.state.service.sessions.begin() as s:
        disable_user(s, "leaver")
    # The access token has not expired, yet every use of it now fails.
    r = anon.get("/api/v1/incidents", headers=headers)
    assert r.status_code == 401
    assert r.json()["error"]["message"] == "account 'leaver' is disabled or no longer exists"
    with (
        pytest.raises((InvalidStatus, WebSocketException)),
        connect(f"{server.ws_url}?access_token={tokens['access_token']}") as ws,
    ):
        ws.recv(timeout=5)
    assert anon.post(REFRESH, json={"refresh_token": tokens["refresh_token"]}).status_code == 401
    assert all(t.revoked for t in _stored(server, "leaver"))
    assert anon.post(TOKEN, data={"username": "leaver", "password": PASSWORD}).status_code == 401


def test_demo_accounts_refused_outside_demo_mode_whatever_their_name(server: Server) -> None:
    sessions = server.app.state.service.sessions
    with sessions.begin() as s:
        create_user(s, "night-demo", "dispatcher", password=PASSWORD, demo=True)
        create_user(s, "demo-x", "commander", password=PASSWORD)  # a real account, demo-ish name
        create_user(s, "demo-dev", "unit_device", unit_id="A13-9", demo=True)
        device = create_token(s, "demo-dev")
    anon = server.client()
    r = anon.post(TOKEN, data={"username": "night-demo", "password": PASSWORD})
    assert r.status_code == 401
    assert r.json()["error"]["message"] == "demo accounts work only in demo mode"
    # A wrong password still gets the generic answer (the demo flag is not revealed).
    r = anon.post(TOKEN, data={"username": "night-demo", "password": "wrong password"})
    assert r.json()["error"]["message"] == "incorrect user name or password"
    assert _login(anon, "demo-x")["access_token"]
    r = anon.get("/api/v1/me", headers={"Authorization": f"Bearer {device}"})
    assert r.status_code == 401 and "demo mode" in r.json()["error"]["message"]
    # A JWT signed for a demo account (e.g. issued while the database served a demo) fails too.
    from citywatch.dispatch.accounts import Principal, Role

    forged = server.app.state.tokens.issue(Principal("night-demo", Role.DISPATCHER))
    r = anon.get("/api/v1/me", headers={"Authorization": f"Bearer {forged}"})
    assert r.status_code == 401 and "demo mode" in r.json()["error"]["message"]


def test_demo_accounts_work_in_demo_mode_only(
    tmp_path: Path, manhattan: tuple[CityPack, Router]
) -> None:
    pack, router = manhattan
    # One database and one signing key (as with CITYWATCH_JWT_SECRET), served with and
    # without demo mode.
    demo = Settings(pack="manhattan", db_url=f"sqlite:///{tmp_path / 'demo.db'}", demo=True)
    plain = replace(demo, demo=False, migrate=False)
    demo_srv = start_server(create_app(demo, pack=pack, router=router))
    try:
        with demo_srv.app.state.service.sessions.begin() as s:
            create_user(s, "demo-dispatcher", "dispatcher", password=PASSWORD, demo=True)
        client = demo_srv.client()
        tokens = _login(client, "demo-dispatcher")
        me = client.get("/api/v1/me", headers=_bearer(tokens)).json()
        assert me["username"] == "demo-dispatcher"
        r = client.post(REFRESH, json={"refresh_token": tokens["refresh_token"]})
        assert r.status_code == 200
        tokens = r.json()
    finally:
        stop_server(demo_srv)
    plain_srv = start_server(create_app(plain, pack=pack, router=router))
    try:
        client = plain_srv.client()
        for answer in (
            client.get("/api/v1/me", headers=_bearer(tokens)),
            client.post(REFRESH, json={"refresh_token": tokens["refresh_token"]}),
            client.post(TOKEN, data={"username": "demo-dispatcher", "password": PASSWORD}),
        ):
            assert answer.status_code == 401
            assert answer.json()["error"]["message"] == "demo accounts work only in demo mode"
    finally:
        stop_server(plain_srv)


def test_refresh_lifetime_is_validated() -> None:
    with pytest.raises(ValidationError, match="refresh token lifetime"):
        Settings(pack="manhattan", token_ttl_s=900, refresh_ttl_s=600)


def test_migration_marks_existing_demo_accounts_and_scopes_keys(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    upgrade(engine, "0002_dispatch")
    with engine.begin() as conn:
        for name in ("demo", "demo-officer", "demo-x", "alice"):
            conn.execute(
                sa.text(
                    "INSERT INTO users (username, role, disabled, created_at) "
                    "VALUES (:n, 'admin', false, '2026-11-01 00:00:00')"
                ),
                {"n": name},
            )
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO api_tokens (user_id, token_hash, name, created_at, revoked) "
                "SELECT id, 'h', 'tablet', created_at, false FROM users WHERE username = 'alice'"
            )
        )
    upgrade(engine)
    with engine.connect() as conn:
        flags = dict(conn.execute(sa.text("SELECT username, is_demo FROM users")).all())
        uniques = sa.inspect(conn).get_unique_constraints("incident_dispatch")
    assert {k: bool(v) for k, v in flags.items()} == {
        "demo": True,
        "demo-officer": True,
        "demo-x": False,
        "alice": False,
    }
    assert [u["column_names"] for u in uniques] == [["created_by", "idempotency_key"]]
    with engine.connect() as conn:  # the migrated schema is exactly the models'
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    command.downgrade(alembic_config(engine), "0002_dispatch")
    with engine.connect() as conn:
        uniques = sa.inspect(conn).get_unique_constraints("incident_dispatch")
        columns = {c["name"] for c in sa.inspect(conn).get_columns("users")}
        kept = conn.execute(sa.text("SELECT count(*) FROM api_tokens")).scalar()
    # Neither direction rebuilt ``users`` (which would cascade-delete its API tokens).
    assert [u["column_names"] for u in uniques] == [["idempotency_key"]]
    assert "is_demo" not in columns and kept == 1


def test_open_event_stream_closes_once_its_account_is_disabled(
    tmp_path: Path, manhattan: tuple[CityPack, Router]
) -> None:
    pack, router = manhattan
    settings = Settings(
        pack="manhattan", db_url=f"sqlite:///{tmp_path / 'ws.db'}", stream_recheck_s=0.3
    )
    srv = start_server(create_app(settings, pack=pack, router=router))
    try:
        sessions = srv.app.state.service.sessions
        with sessions.begin() as s:
            create_user(s, "screen", "commander", password=PASSWORD)
            create_user(s, "other", "commander", password=PASSWORD)
        anon = srv.client()
        token = _login(anon, "screen")["access_token"]
        other = _login(anon, "other")["access_token"]
        with (
            connect(f"{srv.ws_url}?access_token={token}") as ws,
            connect(f"{srv.ws_url}?access_token={other}") as kept,
        ):
            time.sleep(1.0)  # several re-checks pass while the accounts are enabled
            with sessions.begin() as s:
                disable_user(s, "screen")
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=10)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
            assert "disabled" in closed.value.rcvd.reason
            # The other account's stream still delivers events.
            r = anon.post(
                "/api/v1/units",
                headers={"Authorization": f"Bearer {other}"},
                json={"id": "WS-1", "unit_type": "patrol_car", "station": "13"},
            )
            assert r.status_code == 201
            assert json.loads(kept.recv(timeout=10))["type"] == "unit.created"
    finally:
        stop_server(srv)


def test_open_streams_outlive_their_access_token_but_requests_do_not(server: Server) -> None:
    with server.app.state.service.sessions.begin() as s:
        create_user(s, "old-token", "analyst", password=PASSWORD)
    secret = server.app.state.settings.jwt_secret
    now = int(time.time())
    expired = jwt.encode(
        {"sub": "old-token", "role": "analyst", "iat": now - 1000, "exp": now - 100},
        secret,
        algorithm="HS256",
    )
    with pytest.raises(AuthenticationError, match="expired"):
        principal_from_token(server.app, expired)
    who = principal_from_token(server.app, expired, allow_expired=True)
    assert (who.username, who.role.value) == ("old-token", "analyst")
    r = server.client().get("/api/v1/me", headers={"Authorization": f"Bearer {expired}"})
    assert r.status_code == 401 and r.json()["error"]["message"] == (
        "access token expired; log in again"
    )


# ----------------------------------------------------------------------------- login flood
def _create(server: Server, name: str) -> None:
    with server.app.state.service.sessions.begin() as s:
        if find_user(s, name) is None:
            create_user(s, name, "dispatcher", password=PASSWORD)


def test_unknown_users_cost_an_argon2_verification_too(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    from citywatch.dispatch import accounts

    calls: list[str] = []
    real = accounts._hasher

    class Counting:
        def verify(self, hash_: str, password: str) -> bool:
            calls.append(hash_)
            return real.verify(hash_, password)

        def check_needs_rehash(self, hash_: str) -> bool:
            return real.check_needs_rehash(hash_)

    monkeypatch.setattr(accounts, "_hasher", Counting())
    with server.app.state.service.sessions.begin() as s:
        for name in ("disp", "no-such-user-xyz"):
            with pytest.raises(AuthenticationError, match="incorrect user name or password"):
                accounts.authenticate_password(s, name, "wrong-password-1")
    assert len(calls) == 2 and calls[1] == accounts._DUMMY_HASH


def test_failed_logins_back_off_with_retry_after(server: Server) -> None:
    _create(server, "flood-1")
    server.app.state.login_guard.succeeded("127.0.0.1", "flood-1")
    with httpx.Client(base_url=server.url) as anon:
        codes = [
            anon.post(TOKEN, data={"username": "flood-1", "password": "wrong-pass-99"}).status_code
            for _ in range(4)
        ]
        assert codes == [401, 401, 401, 429]
        r = anon.post(TOKEN, data={"username": "flood-1", "password": PASSWORD})
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        assert r.json()["error"]["code"] == "too_many_requests"
    server.app.state.login_guard.succeeded("127.0.0.1", "flood-1")


def test_repeated_failures_lock_the_account_until_unlocked(server: Server) -> None:
    from citywatch.dispatch.accounts import LOCKOUT_AFTER, authenticate_password, unlock_user

    _create(server, "flood-2")
    sessions = server.app.state.service.sessions
    for _ in range(LOCKOUT_AFTER):
        with sessions.begin() as s, pytest.raises(AuthenticationError):
            authenticate_password(s, "flood-2", "wrong-password-2")
    with sessions.begin() as s, pytest.raises(AuthenticationError):
        authenticate_password(s, "flood-2", PASSWORD)  # the right password, but locked
    with sessions.begin() as s:
        unlock_user(s, "flood-2", actor="admin")
    with sessions.begin() as s:
        assert authenticate_password(s, "flood-2", PASSWORD).username == "flood-2"
        actions = s.execute(
            text(
                "SELECT action FROM audit_log WHERE entity_id = 'flood-2'"
                " AND action IN ('user.locked', 'user.unlock') ORDER BY seq"
            )
        ).scalars()
        assert list(actions) == ["user.locked", "user.unlock"]


def test_logout_revokes_the_access_token_on_every_worker(server: Server) -> None:
    _create(server, "logout-1")
    with httpx.Client(base_url=server.url) as anon:
        tokens = _login(anon, "logout-1")
        bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
        assert anon.get(ME, headers=bearer).status_code == 200
        r = anon.post(LOGOUT, json={"refresh_token": tokens["refresh_token"]}, headers=bearer)
        assert r.status_code == 204
        r = anon.get(ME, headers=bearer)
        assert r.status_code == 401 and "revoked" in r.json()["error"]["message"]
    with server.app.state.service.sessions() as s:
        assert s.execute(text("SELECT count(*) FROM revoked_tokens")).scalar_one() >= 1


def test_too_many_waiting_logins_are_refused_at_once() -> None:
    import asyncio

    from citywatch.api.security import LoginGuard
    from citywatch.errors import TooManyRequestsError

    guard = LoginGuard(workers=1, max_waiting=2)

    async def flood() -> list[str]:
        started = [guard.run(time.sleep, 0.2) for _ in range(5)]
        results = await asyncio.gather(*started, return_exceptions=True)
        return [type(r).__name__ for r in results]

    outcomes = asyncio.run(flood())
    guard.close()
    assert outcomes.count("NoneType") == 2
    assert outcomes.count(TooManyRequestsError.__name__) == 3
