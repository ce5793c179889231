"""A real uvicorn server on loopback, on SQLite and (when reachable) on PostgreSQL.

PostgreSQL tests use a fresh database created for the test session on 127.0.0.1:5432 and
dropped afterwards; they are skipped with the reason when no server answers.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import uvicorn
from fastapi import FastAPI

from citywatch.api.app import create_app
from citywatch.api.settings import Settings
from citywatch.city import CityPack, load_pack
from citywatch.dispatch.accounts import Principal, Role, create_token, create_user, find_user
from citywatch.routing import Router
from citywatch.store.dispatch_models import User

PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=test connect_timeout=3"
PASSWORD = "correct-horse-battery"


@dataclass
class Server:
    """A running service: its base URL, app, and bearer headers per test user."""

    url: str
    app: FastAPI
    thread: threading.Thread
    server: uvicorn.Server
    headers: dict[str, dict[str, str]] = field(default_factory=dict)

    def client(self, user: str | None = None) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=self.headers.get(user or "", {}), timeout=60)

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/api/v1/events"


def start_server(app: FastAPI) -> Server:
    """Run ``app`` under uvicorn in a thread, on a free loopback port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", ws="websockets-sansio"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    return Server(f"http://127.0.0.1:{port}", app, thread, server)


def stop_server(srv: Server) -> None:
    srv.server.should_exit = True
    srv.thread.join(timeout=30)


USERS: list[dict[str, Any]] = [
    {"username": "admin", "role": "admin"},
    {"username": "disp", "role": "dispatcher"},
    {"username": "off13", "role": "station_officer", "scope": "13"},
    {"username": "off1", "role": "station_officer", "scope": "1"},
    {"username": "offPBMN", "role": "station_officer", "scope": "PBMN"},
    {"username": "ana", "role": "analyst"},
]


@contextmanager
def two_workers(
    settings: Settings, manhattan: tuple[CityPack, Router]
) -> Iterator[tuple[Server, Server]]:
    """Two workers of the service on one database (the second does not migrate it), the test
    users seeded through the first and signed in on both (one signing key)."""
    pack, router = manhattan
    a = start_server(create_app(settings, pack=pack, router=router))
    b = start_server(create_app(replace(settings, migrate=False), pack=pack, router=router))
    try:
        seed_users(a)
        b.headers = a.headers
        yield a, b
    finally:
        stop_server(a)
        stop_server(b)


def seed_users(srv: Server) -> None:
    """Give every test user a bearer token; ``disp`` also gets a password to log in with.

    The other accounts are stored without a password and their tokens issued directly by the
    app's signer (argon2 hashing of every account would dominate the test time); the password
    flow itself is exercised with ``disp``.  The accounts must exist: every request checks that
    its account is still enabled.
    """
    sessions = srv.app.state.service.sessions
    with sessions.begin() as s:
        create_user(s, "disp", "dispatcher", password=PASSWORD)
        create_user(s, "dev-a", "unit_device", unit_id="A13-1")
        device_token = create_token(s, "dev-a", "tablet")
        for user in USERS:
            if find_user(s, user["username"]) is None:
                s.add(
                    User(
                        username=user["username"],
                        role=user["role"],
                        scope=user.get("scope"),
                        disabled=False,
                        is_demo=False,
                        created_at=datetime.now(UTC),
                    )
                )
    with httpx.Client(base_url=srv.url) as c:
        r = c.post("/api/v1/auth/token", data={"username": "disp", "password": PASSWORD})
        r.raise_for_status()
        srv.headers["disp"] = {"Authorization": f"Bearer {r.json()['access_token']}"}
    for user in USERS:
        who = Principal(user["username"], Role(user["role"]), user.get("scope"))
        srv.headers.setdefault(
            user["username"], {"Authorization": f"Bearer {srv.app.state.tokens.issue(who)}"}
        )
    srv.headers["dev-a"] = {"Authorization": f"Bearer {device_token}"}


def _pg_database() -> Iterator[str]:
    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL not reachable at 127.0.0.1:5432: {exc}")
    name = f"cw_dispatch_{uuid.uuid4().hex[:12]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture(scope="session")
def db_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    if request.param == "postgresql":
        yield from _pg_database()
    else:
        yield f"sqlite:///{Path(tmp_path_factory.mktemp('api')) / 'citywatch.db'}"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "db_url" in metafunc.fixturenames:
        pg = pytest.param("postgresql", marks=pytest.mark.postgres)
        only_pg = metafunc.definition.get_closest_marker("postgres_only") is not None
        metafunc.parametrize(
            "db_url",
            [pg] if only_pg else ["sqlite", pg],
            indirect=True,
            scope="session",
        )


@pytest.fixture(scope="session")
def manhattan() -> tuple[CityPack, Router]:
    """The Manhattan pack and one router for every server of the session (graphs built once)."""
    pack = load_pack("manhattan")
    return pack, Router.from_pack(pack)


@pytest.fixture(scope="session")
def server(db_url: str, manhattan: tuple[CityPack, Router]) -> Iterator[Server]:
    pack, router = manhattan
    srv = start_server(
        create_app(Settings(pack="manhattan", db_url=db_url), pack=pack, router=router)
    )
    seed_users(srv)
    yield srv
    stop_server(srv)
