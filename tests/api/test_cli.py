"""``citywatch users`` and ``citywatch audit`` through the real command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from sqlalchemy import create_engine, text

CITYWATCH = str(Path(sys.executable).parent / "citywatch")


def cw(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CITYWATCH, *args], input=stdin, capture_output=True, text=True, timeout=120
    )


def test_users_and_audit_cli(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    out = cw(
        "users",
        "add",
        "alice",
        "--role",
        "station_officer",
        "--scope",
        "13",
        "--password-stdin",
        "--db",
        db,
        "--json",
        stdin="long-enough-pw\n",
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {
        "username": "alice",
        "role": "station_officer",
        "scope": "13",
        "unit_id": None,
    }
    out = cw(
        "users", "add", "bob", "--role", "admin", "--password-stdin", "--db", db, stdin="short\n"
    )
    assert (out.returncode, out.stderr.strip()) == (
        1,
        "Error: password must have at least 10 characters",
    )
    out = cw("users", "add", "tab-7", "--role", "unit_device", "--unit", "A13-1", "--db", db)
    assert out.returncode == 0, out.stderr
    token = cw("users", "token", "tab-7", "--db", db).stdout.strip()
    assert token.startswith("cw_") and len(token) == 46
    assert cw("users", "disable", "alice", "--db", db).returncode == 0
    users = json.loads(cw("users", "list", "--db", db, "--json").stdout)
    assert [(u["username"], u["role"], u["disabled"]) for u in users] == [
        ("alice", "station_officer", True),
        ("tab-7", "unit_device", False),
    ]
    out = cw("audit", "verify", "--db", db, "--json")
    assert out.returncode == 0 and json.loads(out.stdout) == {
        "ok": True,
        "records": 4,
        "broken_seq": None,
        "reason": None,
    }
    # Tamper with the second record (as a database owner could, past the triggers).
    engine = create_engine(db)
    with engine.begin() as conn:
        conn.execute(text("DROP TRIGGER audit_log_no_update"))
        conn.execute(text("""UPDATE audit_log SET after = '{"role": "admin"}' WHERE seq = 2"""))
    engine.dispose()
    out = cw("audit", "verify", "--db", db)
    assert out.returncode == 1
    assert (
        out.stderr.strip()
        == "Error: audit chain broken at record 2: content does not match its hash"
    )
