"""Append-only audit trail, hash-chained so that any edit, deletion or reordering is detectable.

Record ``n`` stores ``hash_n = SHA-256(hash_{n-1} || canonical JSON of record n)`` with
``hash_0`` the all-zero string: changing any field of any record, deleting one or inserting one
breaks the chain from that record on, and :func:`verify_chain` names the first broken record.
(This is the classic hash-chain / linked timestamping construction, Haber & Stornetta, "How to
time-stamp a digital document", J. Cryptology 3(2), 1991.)

The database also refuses ``UPDATE`` and ``DELETE`` on ``audit_log`` (triggers of migration
``0002_dispatch``); the chain catches what a database owner could still do by hand.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from citywatch.console import to_jsonable
from citywatch.store.dispatch_models import AuditRecord

__all__ = ["GENESIS_HASH", "ChainCheck", "append_audit", "record_hash", "verify_chain"]

GENESIS_HASH = "0" * 64
#: Key of the PostgreSQL transaction-level advisory lock that serialises appends to the chain.
_PG_AUDIT_LOCK = 0x43575F4155444954


def _utc(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def record_hash(
    prev_hash: str,
    seq: int,
    at: datetime,
    actor: str,
    action: str,
    entity: str,
    entity_id: str | None,
    before: Any,
    after: Any,
) -> str:
    """SHA-256 (hex) of a record chained to the previous hash.

    Parameters
    ----------
    prev_hash : str
        Hash of the previous record (``GENESIS_HASH`` for the first).
    seq, at, actor, action, entity, entity_id, before, after
        The record's fields; ``at`` is normalised to UTC with microseconds.

    Returns
    -------
    str
        64 hexadecimal digits.
    """
    body = {
        "seq": seq,
        "at": _utc(at).isoformat(timespec="microseconds"),
        "actor": actor,
        "action": action,
        "entity": entity,
        "entity_id": entity_id,
        "before": before,
        "after": after,
    }
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256((prev_hash + canonical).encode("utf-8")).hexdigest()


def append_audit(
    session: Session,
    *,
    actor: str,
    action: str,
    entity: str,
    entity_id: str | None,
    before: Any = None,
    after: Any = None,
    at: datetime | None = None,
) -> AuditRecord:
    """Append one record to the audit chain inside the caller's transaction.

    Parameters
    ----------
    session : Session
        The session of the write being audited; the record commits (or rolls back) with it.
    actor : str
        Who did it (user name, or ``"cli"``/``"system"``).
    action : str
        What was done, e.g. ``"incident.create"``.
    entity, entity_id : str
        The kind and id of the changed object.
    before, after : JSON-like, optional
        The object's state before and after the write.
    at : datetime, optional
        When; now by default.

    Returns
    -------
    AuditRecord
        The new record (flushed).
    """
    if session.get_bind().dialect.name == "postgresql":
        # Concurrent writers would otherwise read the same chain head and fork the chain.
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_AUDIT_LOCK})
    head = session.execute(
        select(AuditRecord.seq, AuditRecord.hash).order_by(AuditRecord.seq.desc()).limit(1)
    ).first()
    seq, prev = (head[0] + 1, head[1]) if head else (1, GENESIS_HASH)
    when = _utc(at or datetime.now(UTC))
    before_j, after_j = to_jsonable(before), to_jsonable(after)
    record = AuditRecord(
        seq=seq,
        at=when,
        actor=actor,
        action=action,
        entity=entity,
        entity_id=entity_id,
        before=before_j,
        after=after_j,
        prev_hash=prev,
        hash=record_hash(prev, seq, when, actor, action, entity, entity_id, before_j, after_j),
    )
    session.add(record)
    session.flush()
    return record


@dataclass(frozen=True, slots=True)
class ChainCheck:
    """Result of :func:`verify_chain`: ``ok``, records checked, and the first broken record."""

    ok: bool
    records: int
    broken_seq: int | None = None
    reason: str | None = None


def _records(session: Session) -> Iterator[AuditRecord]:
    yield from session.scalars(
        select(AuditRecord).order_by(AuditRecord.seq).execution_options(yield_per=1000)
    )


def verify_chain(session: Session) -> ChainCheck:
    """Recompute the whole chain and report the first record that does not match.

    Parameters
    ----------
    session : Session
        A session on the database.

    Returns
    -------
    ChainCheck
        ``ok=True`` with the record count, or the first broken record and why.
    """
    prev, expected_seq, count = GENESIS_HASH, 1, 0
    for rec in _records(session):
        if rec.seq != expected_seq:
            return ChainCheck(False, count, expected_seq, f"record {expected_seq} is missing")
        if rec.prev_hash != prev:
            return ChainCheck(False, count, rec.seq, "link to the previous record is broken")
        digest = record_hash(
            prev,
            rec.seq,
            rec.at,
            rec.actor,
            rec.action,
            rec.entity,
            rec.entity_id,
            rec.before,
            rec.after,
        )
        if digest != rec.hash:
            return ChainCheck(False, count, rec.seq, "content does not match its hash")
        prev, expected_seq, count = rec.hash, expected_seq + 1, count + 1
    return ChainCheck(True, count)
