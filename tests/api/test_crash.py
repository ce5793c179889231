"""``kill -9`` of a real service process under load loses nothing it acknowledged.

A ``citywatch serve`` subprocess takes incidents and AVL fixes from several clients; it is
killed with SIGKILL mid-stream.  Every incident answered 201 and every fix answered as stored
must be in the database afterwards (SQLite and PostgreSQL), and the audit chain and the
coverage of the fixes must verify once a new process has sealed what was left unsealed.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from citywatch.api.security import TokenIssuer
from citywatch.dispatch.accounts import Principal, Role, create_user
from citywatch.dispatch.audit import verify_chain
from citywatch.dispatch.positions import verify_positions
from citywatch.store.db import make_engine, session_factory, upgrade
from tests.store.databases import pg_url, sqlite_url  # noqa: F401 - fixtures

CITYWATCH = str(Path(sys.executable).parent / "citywatch")
SECRET = "k" * 40
LOC = {"lon": -73.99, "lat": 40.736}


def _serve(db: str, port: int, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """``citywatch serve`` with its output appended to ``log`` (shown when the test fails)."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [CITYWATCH, "serve", "--pack", "manhattan", "--db", db, "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _tail(log: Path) -> str:
    """The end of the service's log, for a failure message."""
    return log.read_text()[-6000:]


def _dump_stacks(proc: subprocess.Popen[bytes]) -> None:
    """Have a stuck service print every thread's stack into its log (``PYTHONFAULTHANDLER``
    answers SIGABRT), so a failure shows where it hung."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGABRT)
        proc.wait(30)


def _wait_up(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the service exited:\n{_tail(log)}"
        try:
            if httpx.get(f"{url}/api/v1/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.2)
    _dump_stacks(proc)
    raise AssertionError(f"the service did not start:\n{_tail(log)}")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def crash_db(request: pytest.FixtureRequest) -> str:
    """A fresh database of its own on SQLite, then on PostgreSQL."""
    return str(request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url"))


def test_kill_9_under_load_loses_nothing_acknowledged(crash_db: str, tmp_path: Path) -> None:
    db_url = crash_db
    engine = make_engine(db_url)
    upgrade(engine)
    with session_factory(engine).begin() as s:
        create_user(s, "crash", "admin", password="crash-password-1")
    token = TokenIssuer(SECRET, 900).issue(Principal("crash", Role.ADMIN))
    headers = {"Authorization": f"Bearer {token}"}
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "CITYWATCH_JWT_SECRET": SECRET, "PYTHONFAULTHANDLER": "1"}
    log = tmp_path / "serve.log"
    proc = _serve(db_url, port, env, log)
    incidents: list[str] = []
    fixes = [0]
    answers: Counter[str] = Counter()  # what the load got, for the message if none came
    lock = threading.Lock()
    try:
        _wait_up(url, proc, log)
        with httpx.Client(base_url=url, headers=headers) as c:
            for i in range(4):
                r = c.post(
                    "/api/v1/units", json={"id": f"K-{i}", "unit_type": "foot", "station": "13"}
                )
                assert r.status_code == 201, r.text
        stop = threading.Event()

        def calls(k: int) -> None:
            with httpx.Client(base_url=url, headers=headers, timeout=60) as c:
                while not stop.is_set():
                    try:
                        if k % 2:
                            r = c.post(
                                "/api/v1/incidents", json={"category": "theft", "location": LOC}
                            )
                            if r.status_code == 201:
                                with lock:
                                    incidents.append(r.json()["id"])
                        else:
                            at = datetime.now(UTC).isoformat()
                            batch = [{"unit_id": f"K-{j}", **LOC, "at": at} for j in range(4)]
                            r = c.post("/api/v1/positions", json={"fixes": batch})
                            if r.status_code == 200:
                                with lock:
                                    fixes[0] += r.json()["stored"]
                        with lock:
                            answers[f"{r.request.url.path} {r.status_code}"] += 1
                    except httpx.TimeoutException as exc:
                        with lock:
                            answers[type(exc).__name__] += 1
                    except httpx.HTTPError:
                        return  # the server is gone

        threads = [threading.Thread(target=calls, args=(k,)) for k in range(6)]
        for t in threads:
            t.start()
        # Kill once load is flowing (the first answers take longer on a busy machine).
        deadline = time.monotonic() + 120
        while not (incidents and fixes[0]) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(2)
        if not (incidents and fixes[0]):
            _dump_stacks(proc)  # stuck or dead: the log says where
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
        stop.set()
        for t in threads:
            t.join(60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
    said = f"{dict(answers)}; the service's log ends:\n{_tail(log)}"
    assert incidents and fixes[0] > 0, f"no load stored before the kill: {said}"
    assert not [a for a in answers if a.endswith(" 500")], said
    with engine.connect() as conn:
        stored = set(conn.execute(text("SELECT incident_id FROM incident_dispatch")).scalars())
        stored_fixes = conn.execute(
            text("SELECT count(*) FROM unit_positions WHERE unit_id LIKE 'K-%'")
        ).scalar_one()
    assert set(incidents) <= stored
    assert stored_fixes >= fixes[0]
    # A new process seals what the killed one left unsealed; then everything verifies.
    proc = _serve(db_url, port, env, log)
    try:
        _wait_up(url, proc, log)
        time.sleep(2)
    finally:
        proc.terminate()
        proc.wait(60)
    with session_factory(engine)() as s:
        chain = verify_chain(s)
        covered = verify_positions(s)
    engine.dispose()
    assert chain.ok, chain
    assert covered.ok and covered.unsealed == 0, covered
