"""``citywatch users`` and ``citywatch audit`` through the CLI entry point, in-process."""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from citywatch.cli import main


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def cw(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Callable[..., Run]:
    """Run ``citywatch ARGS`` through its entry point and capture exit status and output."""

    def run(*args: str, stdin: str | None = None) -> Run:
        monkeypatch.setattr(sys, "argv", ["citywatch", *args])
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin or ""))
        with pytest.raises(SystemExit) as done:
            main()
        captured = capsys.readouterr()
        return Run(int(done.value.code or 0), captured.out, captured.err)

    return run


def test_several_workers_need_postgresql(tmp_path: Path, cw: Callable[..., Run]) -> None:
    db = f"sqlite:///{tmp_path / 'x.db'}"
    out = cw("serve", "--pack", "manhattan", "--db", db, "--workers", "2")
    assert out.returncode == 1
    assert "Error: several workers need PostgreSQL" in out.stderr


def test_users_and_audit_cli(tmp_path: Path, cw: Callable[..., Run]) -> None:
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
    report = json.loads(out.stdout)
    assert out.returncode == 0 and report == {
        "ok": True,
        "records": 4,
        "checkpoints": 4,
        "key_id": report["key_id"],
        "unanchored": 0,
        "broken_seq": None,
        "reason": None,
    }
    assert len(report["key_id"]) == 16
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
