"""The audit trail proves itself: each tampering a database owner could do is detected.

Each test writes a few audited changes through the service, then tampers as someone with the
database owner's rights (dropping the append-only triggers first), and checks that
``verify_chain`` names what happened.  On SQLite and PostgreSQL.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import DBAPIError

from citywatch.city import CityPack
from citywatch.dispatch.audit import AuditTrail, ChainCheck, record_hash, use_trail, verify_chain
from citywatch.dispatch.service import DispatchService
from citywatch.routing import Router
from citywatch.store.db import make_engine, session_factory, upgrade
from citywatch.store.dispatch_models import AuditRecord
from tests.dispatch.conftest import ADMIN, Clock, RecordingSink
from tests.store.databases import db_url, pg_url, sqlite_url  # noqa: F401 - fixtures

TRIGGERS = {
    "sqlite": [
        "DROP TRIGGER audit_log_no_update",
        "DROP TRIGGER audit_log_no_delete",
        "DROP TRIGGER audit_log_no_replace",
    ],
    "postgresql": [
        "DROP TRIGGER audit_log_append_only ON audit_log",
        "DROP TRIGGER audit_log_no_truncate ON audit_log",
    ],
}


@pytest.fixture
def audited(
    db_url: str,  # noqa: F811 - the fixture
    tmp_path: Path,
    manhattan: tuple[CityPack, Router],
    clock: Clock,
) -> Iterator[tuple[DispatchService, Engine, AuditTrail]]:
    """A service with six audited changes, its engine and its audit trail (own key)."""
    engine = make_engine(db_url)
    upgrade(engine)
    trail = AuditTrail.open(tmp_path / "home")
    use_trail(engine, trail)
    service = DispatchService(session_factory(engine), *manhattan, RecordingSink(), clock=clock)
    service.create_unit(ADMIN, id="a", unit_type="patrol_car", station="13")
    inc, _ = service.create_incident(ADMIN, category="theft", lon=-73.985, lat=40.735)
    service.assign(ADMIN, inc["id"], "a")
    service.set_incident_status(ADMIN, inc["id"], "cancelled")
    yield service, engine, trail
    engine.dispose()


def check(engine: Engine, trail: AuditTrail) -> ChainCheck:
    with session_factory(engine)() as s:
        return verify_chain(s, trail)


def owner(engine: Engine, *sql: str) -> None:
    """Run SQL with the database owner's rights, past the append-only triggers."""
    with engine.begin() as conn:
        for stmt in (*TRIGGERS[engine.dialect.name], *sql):
            conn.execute(text(stmt))


def test_intact_chain_reports_what_was_checked(
    audited: tuple[DispatchService, Engine, AuditTrail],
) -> None:
    _, engine, trail = audited
    with engine.connect() as conn:
        n = conn.execute(text("SELECT count(*) FROM audit_log")).scalar_one()
        keys = conn.execute(text("SELECT DISTINCT key_id FROM audit_log")).scalars().all()
    got = check(engine, trail)
    assert got.ok, got
    assert (got.records, got.key_id, keys) == (n, trail.key_id, [trail.key_id])
    assert got.checkpoints == 4  # one per committed write
    assert got.unanchored == 0
    assert len(trail.key_id) == 16
    assert trail.key_id == hashlib.sha256(trail.key).hexdigest()[:16]
    assert (trail.home / "audit.key").stat().st_mode & 0o777 == 0o600


def test_every_change_in_the_timeline_is_audited(
    audited: tuple[DispatchService, Engine, AuditTrail],
) -> None:
    _, engine, _ = audited
    with engine.connect() as conn:
        timeline = Counter(
            dict(
                conn.execute(text("SELECT type, count(*) FROM dispatch_events GROUP BY type")).all()
            )
        )
        audit = Counter(
            dict(conn.execute(text("SELECT action, count(*) FROM audit_log GROUP BY action")).all())
        )
    # Cancelling released the unit: its status change and the end of its assignment are both
    # in the timeline and in the audit.
    assert timeline == audit
    assert timeline["assignment.ended"] == 1 and timeline["unit.status"] == 1


def test_deleting_the_newest_record_is_detected(
    audited: tuple[DispatchService, Engine, AuditTrail],
) -> None:
    _, engine, trail = audited
    owner(engine, "DELETE FROM audit_log WHERE seq = (SELECT max(seq) FROM audit_log)")
    got = check(engine, trail)
    assert not got.ok
    assert "missing (log truncated or rewound)" in (got.reason or "")


def test_deleting_every_record_is_detected(
    audited: tuple[DispatchService, Engine, AuditTrail],
) -> None:
    _, engine, trail = audited
    owner(engine, "DELETE FROM audit_log")
    got = check(engine, trail)
    assert (got.ok, got.records, got.checkpoints) == (False, 0, 4)
    assert got.reason is not None and got.reason.startswith("the audit log is empty but 4")


def test_editing_and_rechaining_is_detected(
    audited: tuple[DispatchService, Engine, AuditTrail],
) -> None:
    # Without the key, a re-chained log (each hash recomputed as plain SHA-256, or with a key of
    # one's own) fails at the edited record.
    _, engine, trail = audited
    forger = AuditTrail.open(trail.home.parent / "forger")
    with session_factory(engine)() as s:
        rows = [
            {c.key: getattr(r, c.key) for c in AuditRecord.__table__.columns}
            for r in s.scalars(select(AuditRecord).order_by(AuditRecord.seq))
        ]
    owner(engine, "DELETE FROM audit_log")
    prev = "0" * 64
    with session_factory(engine).begin() as s:
        for row in rows:
            row["actor"] = "mallory" if row["seq"] == 2 else row["actor"]
            fields = [row[k] for k in ("seq", "at", "actor", "action", "entity", "entity_id")]
            row["hash"] = record_hash(forger, prev, *fields, row["before"], row["after"])
            row["prev_hash"], prev = prev, row["hash"]
            s.add(AuditRecord(**row))  # still claiming the real key's id
    got = check(engine, trail)
    assert (got.ok, got.broken_seq, got.reason) == (False, 1, "content does not match its hash")


def test_renumbering_after_a_deletion_is_detected(
    audited: tuple[DispatchService, Engine, AuditTrail],
) -> None:
    _, engine, trail = audited
    owner(
        engine,
        "DELETE FROM audit_log WHERE seq = 3",
        "UPDATE audit_log SET seq = seq - 1 WHERE seq > 3",
    )
    got = check(engine, trail)
    assert (got.ok, got.broken_seq) == (False, 3)
    assert got.reason == "link to the previous record is broken"


def test_appending_a_forged_record_is_detected(
    audited: tuple[DispatchService, Engine, AuditTrail],
) -> None:
    _, engine, trail = audited
    with engine.connect() as conn:
        seq, head = conn.execute(
            text("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
        ).one()
    forged = record_hash(
        None, head, seq + 1, _at(), "chief", "user.create", "user", "x", None, None
    )
    with engine.begin() as conn:  # no trigger stops an INSERT: only the key does
        conn.execute(
            text(
                "INSERT INTO audit_log (seq, at, actor, action, entity, entity_id, prev_hash, hash,"
                " key_id) VALUES (:s, :at, 'chief', 'user.create', 'user', 'x', :p, :h, :k)"
            ),
            {"s": seq + 1, "at": _at(), "p": head, "h": forged, "k": trail.key_id},
        )
    got = check(engine, trail)
    assert (got.ok, got.broken_seq, got.reason) == (
        False,
        seq + 1,
        "content does not match its hash",
    )


def _at() -> object:
    from datetime import UTC, datetime

    return datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


def test_a_record_signed_with_another_key_is_named(
    audited: tuple[DispatchService, Engine, AuditTrail], tmp_path: Path
) -> None:
    _, engine, _ = audited
    other = AuditTrail.open(tmp_path / "other")
    got = check(engine, other)
    assert not got.ok and got.broken_seq == 1
    assert got.reason is not None and "not the key" in got.reason


def test_database_refuses_truncate_and_replace(
    audited: tuple[DispatchService, Engine, AuditTrail],
) -> None:
    _, engine, trail = audited
    if engine.dialect.name == "postgresql":
        stmt = "TRUNCATE audit_log"
    else:
        stmt = (
            "INSERT OR REPLACE INTO audit_log (seq, at, actor, action, entity, prev_hash, hash)"
            " VALUES (1, '2026-03-02 14:00:00', 'mallory', 'x', 'x', 'p', 'h')"
        )
    with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
        conn.execute(text(stmt))
    assert check(engine, trail).ok


def test_edited_checkpoint_file_is_refused(
    audited: tuple[DispatchService, Engine, AuditTrail],
) -> None:
    from citywatch.errors import DataError

    _, engine, trail = audited
    lines = trail.checkpoint_path.read_text().splitlines()
    lines[-1] = lines[-1].replace('"seq":', '"seq":1', 1)
    trail.checkpoint_path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match="checkpoint signature is wrong"):
        check(engine, trail)
