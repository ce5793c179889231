"""Append-only audit trail: an HMAC-keyed hash chain anchored by signed checkpoints.

Record ``n`` stores ``hash_n = HMAC-SHA256(key, hash_{n-1} || canonical JSON of record n)``
with ``hash_0`` the all-zero string: changing, deleting, inserting or renumbering any record
breaks the chain from there on, and without the key nobody can re-chain it (the classic hash
chain of Haber & Stornetta, "How to time-stamp a digital document", J. Cryptology 3(2), 1991,
keyed as in Schneier & Kelsey, "Secure audit logs to support computer forensics", ACM TISSEC
2(2), 1999).  The key lives in a file of the service's home (:func:`audit_home`), never in
the database; each record names the id of the key that signed it.

What a chain alone cannot show is that records were cut off at the end (or all deleted): after
every commit that appended records, the chain head ``(seq, hash)`` is written as a signed
checkpoint line to ``checkpoints.jsonl`` in the same home, an append-only file outside the
database.  :func:`verify_chain` checks the records, then that every checkpoint's record is
still there with the same hash.

The database also refuses ``UPDATE``, ``DELETE`` and ``TRUNCATE`` on ``audit_log`` and any
insert that would replace a record (triggers of migrations ``0002_dispatch`` and
``0004_live_core``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import threading
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from sqlalchemy import Engine, event, select, text
from sqlalchemy.orm import Session

from citywatch.console import to_jsonable
from citywatch.errors import DataError
from citywatch.store.dispatch_models import AuditRecord

__all__ = [
    "DEFAULT_AUDIT_HOME",
    "ENV_AUDIT_HOME",
    "GENESIS_HASH",
    "AuditTrail",
    "ChainCheck",
    "append_audit",
    "audit_home",
    "record_hash",
    "secret_key",
    "trail_for",
    "use_trail",
    "verify_chain",
]

GENESIS_HASH: Final = "0" * 64
#: Environment variable naming the folder of the audit key and checkpoint file.
ENV_AUDIT_HOME: Final = "CITYWATCH_AUDIT_HOME"
#: The service's home for the audit key, next to the embedded database (``var/``).
DEFAULT_AUDIT_HOME: Final = Path("var") / "audit"
_KEY_FILE, _CHECKPOINT_FILE = "audit.key", "checkpoints.jsonl"
#: Key of the PostgreSQL transaction-level advisory lock that serialises appends to the chain.
_PG_AUDIT_LOCK = 0x43575F4155444954
_HEAD = "citywatch_audit_head"


def audit_home() -> Path:
    """The folder of the audit key and checkpoints: ``$CITYWATCH_AUDIT_HOME`` or ``var/audit``."""
    return Path(os.environ.get(ENV_AUDIT_HOME) or DEFAULT_AUDIT_HOME)


def _utc(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def _canonical(body: dict[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def secret_key(path: Path, *, create: bool, what: str, missing: str = "") -> bytes:
    """A 32-byte key kept in a file outside the database (64 hex digits, mode 0600).

    Parameters
    ----------
    path : pathlib.Path
        The key file; created with a random key when missing and ``create`` is true.
    create : bool
        Create a missing file (else a missing file is an error).
    what : str
        What the key is, for the messages ("audit key").
    missing : str
        Why a missing key matters, added to the message.

    Raises
    ------
    DataError
        If the file is missing (and ``create`` is false) or holds no 32-byte hex key.
    """
    if not path.exists():
        if not create:
            raise DataError(f"no {what} at {path}" + (f": {missing}" if missing else ""))
        path.parent.mkdir(parents=True, exist_ok=True)
        try:  # O_EXCL: of two processes creating the key at once, one wins, both use it
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32) + "\n")
        except FileExistsError:
            pass
    try:
        key = bytes.fromhex(path.read_text().strip())
    except ValueError:
        key = b""
    if len(key) < 32:
        raise DataError(f"{path} does not hold a valid {what} (64 hexadecimal digits)")
    return key


@dataclass
class AuditTrail:
    """The audit key and checkpoint file of one home folder.

    The key (32 random bytes, hex, file mode 0600) is created on first use; its id is the first
    16 hex digits of its SHA-256.
    """

    home: Path
    key: bytes = field(repr=False)
    key_id: str
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def open(cls, home: Path | None = None, *, create: bool = True) -> AuditTrail:
        """The trail of ``home`` (:func:`audit_home` by default), creating its key if asked.

        Raises
        ------
        DataError
            If the key file is missing and ``create`` is false, or is not a valid key.
        """
        home = Path(home) if home is not None else audit_home()
        key = secret_key(
            home / _KEY_FILE,
            create=create,
            what="audit key",
            missing="the chain cannot be verified without it",
        )
        return cls(home, key, hashlib.sha256(key).hexdigest()[:16])

    @property
    def checkpoint_path(self) -> Path:
        """The append-only checkpoint file."""
        return self.home / _CHECKPOINT_FILE

    def sign(self, data: bytes) -> str:
        """HMAC-SHA256 of ``data`` (hex)."""
        return hmac.new(self.key, data, hashlib.sha256).hexdigest()

    def write_checkpoint(self, database: str, seq: int, head: str) -> None:
        """Append one signed checkpoint of chain head ``(seq, head)`` of ``database``."""
        body = {
            "db": database,
            "seq": seq,
            "hash": head,
            "at": datetime.now(UTC).isoformat(timespec="microseconds"),
            "key_id": self.key_id,
        }
        line = json.dumps({**body, "sig": self.sign(_canonical(body))}, separators=(",", ":"))
        with self._lock:
            fd = os.open(self.checkpoint_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:  # one write(2) of a short line with O_APPEND: lines of workers never interleave
                os.write(fd, (line + "\n").encode())
            finally:
                os.close(fd)

    def checkpoints(self, database: str) -> list[dict[str, Any]]:
        """The checkpoints of ``database``, each signature checked.

        Raises
        ------
        DataError
            If a line is malformed or its signature is wrong (the file was edited).
        """
        if not self.checkpoint_path.exists():
            return []
        out = []
        with self.checkpoint_path.open() as f:
            for n, line in enumerate(f, 1):
                try:
                    entry = json.loads(line)
                    sig = entry.pop("sig")
                except (ValueError, KeyError, AttributeError):
                    raise DataError(f"{self.checkpoint_path}:{n}: not a checkpoint") from None
                if entry.get("key_id") != self.key_id or not hmac.compare_digest(
                    sig, self.sign(_canonical(entry))
                ):
                    raise DataError(f"{self.checkpoint_path}:{n}: checkpoint signature is wrong")
                if entry["db"] == database:
                    out.append(entry)
        return out


_TRAILS: weakref.WeakKeyDictionary[Engine, AuditTrail] = weakref.WeakKeyDictionary()
_DATABASE_IDS: weakref.WeakKeyDictionary[Engine, str] = weakref.WeakKeyDictionary()
_DEFAULT_TRAILS: dict[Path, AuditTrail] = {}


def use_trail(engine: Engine, trail: AuditTrail) -> None:
    """Sign the audit records written through ``engine`` with ``trail`` (else the default)."""
    _TRAILS[engine] = trail


def trail_for(engine: Engine) -> AuditTrail:
    """The trail of ``engine``: the one given to :func:`use_trail`, else that of
    :func:`audit_home` (created on first use)."""
    trail = _TRAILS.get(engine)
    if trail is None:
        home = audit_home().resolve()
        trail = _DEFAULT_TRAILS.get(home)
        if trail is None:
            trail = _DEFAULT_TRAILS[home] = AuditTrail.open(home)
    return trail


def database_id(engine: Engine) -> str:
    """What checkpoints call the database: the SQLite file's real path, or PostgreSQL's host,
    port, database and schema (no credentials)."""
    found = _DATABASE_IDS.get(engine)
    if found is not None:
        return found
    url = engine.url
    if engine.dialect.name == "sqlite":
        found = f"sqlite:{os.path.realpath(url.database or ':memory:')}"
    else:
        with engine.connect() as conn:
            schema = conn.execute(text("SELECT current_schema()")).scalar()
        found = f"{engine.dialect.name}:{url.host}:{url.port or 5432}/{url.database}/{schema}"
    _DATABASE_IDS[engine] = found
    return found


def record_hash(
    trail: AuditTrail | None,
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
    """HMAC-SHA256 (hex) of a record chained to the previous hash.

    Parameters
    ----------
    trail : AuditTrail or None
        The key; ``None`` computes the plain SHA-256 of records written before the chain was
        keyed (migration ``0004_live_core``), accepted only at the start of the chain.
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
    data = prev_hash.encode() + _canonical(body)
    return hashlib.sha256(data).hexdigest() if trail is None else trail.sign(data)


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

    The new chain head is checkpointed when the transaction commits.

    Parameters
    ----------
    session : Session
        The session of the write being audited; the record commits (or rolls back) with it.
    actor : str
        Who did it (user name, or ``"cli"``/``"system"``).
    action : str
        What was done, e.g. ``"incident.created"``.
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
    engine = session.get_bind()
    assert isinstance(engine, Engine)
    trail = trail_for(engine)
    if engine.dialect.name == "postgresql":
        # Concurrent writers would otherwise read the same chain head and fork the chain.
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_AUDIT_LOCK})
    head = session.execute(
        select(AuditRecord.seq, AuditRecord.hash).order_by(AuditRecord.seq.desc()).limit(1)
    ).first()
    seq, prev = (head[0] + 1, head[1]) if head else (1, GENESIS_HASH)
    when = _utc(at or datetime.now(UTC))
    before_j, after_j = to_jsonable(before), to_jsonable(after)
    digest = record_hash(
        trail, prev, seq, when, actor, action, entity, entity_id, before_j, after_j
    )
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
        hash=digest,
        key_id=trail.key_id,
    )
    session.add(record)
    session.flush()
    session.info[_HEAD] = (engine, trail, seq, digest)
    return record


@event.listens_for(Session, "after_commit")
def _checkpoint(session: Session) -> None:
    head = session.info.pop(_HEAD, None)
    if head is not None:
        engine, trail, seq, digest = head
        trail.write_checkpoint(database_id(engine), seq, digest)


@event.listens_for(Session, "after_rollback")
def _forget_head(session: Session) -> None:
    session.info.pop(_HEAD, None)


@dataclass(frozen=True, slots=True)
class ChainCheck:
    """Result of :func:`verify_chain`.

    ``ok``; ``records`` checked; ``checkpoints`` checked; ``key_id`` of the key used; the
    first broken record (``broken_seq``) and why (``reason``); ``unanchored`` records newer
    than the newest checkpoint (written by a process that died before checkpointing).
    """

    ok: bool
    records: int
    broken_seq: int | None = None
    reason: str | None = None
    checkpoints: int = 0
    key_id: str | None = None
    unanchored: int = 0

    def as_dict(self) -> dict[str, Any]:
        """The check as JSON-ready values."""
        return {
            "ok": self.ok,
            "records": self.records,
            "checkpoints": self.checkpoints,
            "key_id": self.key_id,
            "unanchored": self.unanchored,
            "broken_seq": self.broken_seq,
            "reason": self.reason,
        }


def _records(session: Session) -> Iterator[AuditRecord]:
    yield from session.scalars(
        select(AuditRecord).order_by(AuditRecord.seq).execution_options(yield_per=1000)
    )


def _chain(session: Session, trail: AuditTrail) -> tuple[dict[int, str], ChainCheck | None]:
    """Recompute the chain: every record's hash by seq, or the first broken record."""
    prev, expected, keyed = GENESIS_HASH, 1, False
    hashes: dict[int, str] = {}
    for rec in _records(session):
        count = len(hashes)
        if rec.seq != expected:
            return hashes, ChainCheck(False, count, expected, f"record {expected} is missing")
        if rec.prev_hash != prev:
            return hashes, ChainCheck(
                False, count, rec.seq, "link to the previous record is broken"
            )
        if rec.key_id is None and keyed:
            return hashes, ChainCheck(False, count, rec.seq, "unkeyed record after keyed ones")
        if rec.key_id is not None and rec.key_id != trail.key_id:
            reason = f"signed with key {rec.key_id}, not the key {trail.key_id} held here"
            return hashes, ChainCheck(False, count, rec.seq, reason)
        keyed = rec.key_id is not None
        digest = record_hash(
            trail if keyed else None,
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
        if not hmac.compare_digest(digest, rec.hash):
            return hashes, ChainCheck(False, count, rec.seq, "content does not match its hash")
        hashes[rec.seq] = rec.hash
        prev, expected = rec.hash, expected + 1
    return hashes, None


def verify_chain(session: Session, trail: AuditTrail | None = None) -> ChainCheck:
    """Recompute the whole chain with the key and hold it against the checkpoints.

    Parameters
    ----------
    session : Session
        A session on the database.
    trail : AuditTrail, optional
        The key and checkpoints (those of the session's engine by default).

    Returns
    -------
    ChainCheck
        ``ok=True`` with what was checked, or the first broken record and why: a record whose
        hash does not match (edited, forged, renumbered), a gap, or a checkpoint whose record is
        gone (truncated, rewound, deleted) or differs (re-chained).

    Raises
    ------
    DataError
        If the checkpoint file was tampered with.
    """
    engine = session.get_bind()
    assert isinstance(engine, Engine)
    trail = trail or trail_for(engine)
    # Checkpoints first: each is written after its record committed, so the chain read next
    # holds every record they name, even while writers go on.
    marks = trail.checkpoints(database_id(engine))
    hashes, broken = _chain(session, trail)
    n, key_id = len(marks), trail.key_id
    if broken is not None:
        return replace(broken, checkpoints=len(marks), key_id=trail.key_id)
    if not hashes and marks:
        newest = max(m["seq"] for m in marks)
        reason = f"the audit log is empty but {len(marks)} checkpoints show {newest} records"
        return ChainCheck(False, 0, 1, reason, checkpoints=n, key_id=key_id)
    for mark in sorted(marks, key=lambda m: m["seq"]):
        found = hashes.get(mark["seq"])
        if found is None:
            reason = f"record {mark['seq']} of a checkpoint is missing (log truncated or rewound)"
            return ChainCheck(False, len(hashes), mark["seq"], reason, checkpoints=n, key_id=key_id)
        if found != mark["hash"]:
            reason = f"record {mark['seq']} differs from its checkpoint (chain rewritten)"
            return ChainCheck(False, len(hashes), mark["seq"], reason, checkpoints=n, key_id=key_id)
    newest = max((m["seq"] for m in marks), default=0)
    return ChainCheck(
        True, len(hashes), unanchored=len(hashes) - newest, checkpoints=n, key_id=key_id
    )
