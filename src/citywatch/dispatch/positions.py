"""AVL positions at fleet scale: batches of fixes validated together and written in bulk.

A set of fixes (a ``POST /positions`` batch, or the one fix of a ``PUT .../position``) is one
transaction: every fix is validated as a single PUT would be (unit exists and the caller may
speak for it, WGS-84, inside the pack, near a road of the unit's mode, time within
:data:`CLOCK_SKEW_S` ahead and :data:`MAX_FIX_AGE_S` old); the valid ones are inserted with one
multi-row ``INSERT`` into the history ``unit_positions``, the units' latest positions are
moved with one conditional ``UPDATE`` (a fix older than the unit's current one only joins the
history), and one ``position_batches`` row records the SHA-256 digest of the fixes.

Fixes are not chained one by one (that would serialise every fix through the audit chain):
:func:`seal_positions` appends one ``positions.sealed`` audit record covering every batch not
yet sealed (their ids and a digest of their digests), so every stored fix is provably covered
by the keyed chain; :func:`verify_positions` recomputes it all.  The service seals every
:data:`SEAL_INTERVAL_S`.

On PostgreSQL the history is partitioned by fix time (daily partitions, made ahead by
:func:`maintain_partitions`, which also drops the partitions older than the retention).
"""

from __future__ import annotations

import hashlib
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sqlalchemy import Engine, Table, bindparam, insert, select, text, update
from sqlalchemy.orm import Session

from citywatch.dispatch.audit import append_audit
from citywatch.dispatch.core import check_time_window
from citywatch.errors import CityWatchError
from citywatch.store.bulk import copy_rows, digest_lines
from citywatch.store.dispatch_models import AuditRecord, PositionBatch, Unit, UnitPosition

__all__ = [
    "MAX_FIX_AGE_S",
    "SEAL_ACTION",
    "SEAL_INTERVAL_S",
    "Fix",
    "FixOutcome",
    "FixQueue",
    "PositionCheck",
    "batch_digest",
    "check_fix_time",
    "insert_fixes",
    "maintain_partitions",
    "move_units",
    "seal_positions",
    "verify_positions",
    "write_fixes",
]

#: Oldest fix accepted (AVL gateways buffer fixes while out of coverage, not for days).
MAX_FIX_AGE_S: Final = 86_400.0
#: Seconds between two seals of the position batches into the audit chain.
SEAL_INTERVAL_S: Final = 1.0
SEAL_ACTION: Final = "positions.sealed"
#: Advisory lock key serialising the partition maintenance of the workers.
_PARTITION_LOCK = 0x63770011
#: Most batches one seal covers (a backlog is sealed over several records).
_SEAL_LIMIT = 5000


@dataclass(frozen=True, slots=True)
class Fix:
    """One AVL fix as received: unit, WGS-84 point, time of the fix."""

    unit_id: str
    lon: float
    lat: float
    at: datetime


@dataclass(frozen=True, slots=True)
class FixOutcome:
    """What became of one fix: ``stored`` (and ``applied`` if it moved the unit) or ``error``."""

    index: int
    unit_id: str
    stored: bool = False
    applied: bool = False
    error: CityWatchError | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, with the error as ``{code, message, field}``."""
        err = self.error
        return {
            "index": self.index,
            "unit_id": self.unit_id,
            "stored": self.stored,
            "applied": self.applied,
            "error": None if err is None else err.as_item(),
        }


def _fix_line(unit_id: str, at: datetime, lon: float, lat: float) -> str:
    return f"{unit_id}|{at.astimezone(UTC).isoformat(timespec='microseconds')}|{lon!r}|{lat!r}"


def batch_digest(rows: Sequence[tuple[str, datetime, float, float]]) -> str:
    """SHA-256 (hex) of a batch's fixes ``(unit_id, at, lon, lat)``, in any order."""
    return digest_lines(_fix_line(*r) for r in rows)


def _seal_digest(batches: Sequence[tuple[int, str, int]]) -> str:
    h = hashlib.sha256()
    for batch_id, digest, fixes in sorted(batches):
        h.update(f"{batch_id}|{digest}|{fixes}\n".encode())
    return h.hexdigest()


def check_fix_time(at: datetime, now: datetime, field: str = "at") -> datetime:
    """``at`` in UTC if it lies in the plausible window of a fix; :class:`ValidationError`."""
    return check_time_window(at, now, max_age_s=MAX_FIX_AGE_S, field=field)


#: PostgreSQL: a batch row and its fixes in one statement (the fixes as arrays: one
#: round trip and one parse whatever the batch size, where an ``executemany`` sends a row each).
_PG_INSERT = text(
    "WITH batch AS (INSERT INTO position_batches "
    "(received_at, actor, fixes, digest, first_at, last_at) "
    "VALUES (:now, :actor, :n, :digest, :first_at, :last_at) RETURNING id), "
    "stored AS (INSERT INTO unit_positions (unit_id, at, lon, lat, received_at, batch_id) "
    "SELECT f.unit_id, f.at, f.lon, f.lat, :now, batch.id FROM batch, "
    "unnest(CAST(:unit_ids AS text[]), CAST(:ats AS timestamptz[]), "
    "CAST(:lons AS float8[]), CAST(:lats AS float8[])) AS f(unit_id, at, lon, lat)) "
    "SELECT id FROM batch"
)
#: PostgreSQL: lock the units in id order (the global lock order: ``ORDER BY`` is applied
#: before ``FOR NO KEY UPDATE``), then move those whose current position is older than
#: their fix, in one statement; returns the ids of the units moved.
_PG_MOVE = text(
    "WITH fix AS (SELECT * FROM unnest(CAST(:ids AS text[]), CAST(:lons AS float8[]), "
    "CAST(:lats AS float8[]), CAST(:ats AS timestamptz[])) AS f(id, lon, lat, at)), "
    "locked AS (SELECT id, position_at FROM units WHERE id = ANY(CAST(:ids AS text[])) "
    "ORDER BY id FOR NO KEY UPDATE) "
    "UPDATE units SET lon = fix.lon, lat = fix.lat, position_at = fix.at "
    "FROM fix JOIN locked ON locked.id = fix.id WHERE units.id = fix.id "
    "AND (locked.position_at IS NULL OR locked.position_at < fix.at) RETURNING units.id"
)


def _postgres(s: Session) -> bool:
    return s.get_bind().dialect.name == "postgresql"


def insert_fixes(s: Session, actor: str, fixes: Sequence[Fix], now: datetime) -> int:
    """Insert validated fixes of one actor into the history, with their ``position_batches``
    row (the digest that the audit seal covers); returns the batch id.  No ORM flush: on
    PostgreSQL one statement (:data:`_PG_INSERT`), elsewhere one ``INSERT ... RETURNING`` and
    one bulk ``INSERT`` (:func:`~citywatch.store.bulk.copy_rows`)."""
    batch = {
        "received_at": now,
        "actor": actor,
        "fixes": len(fixes),
        "digest": batch_digest([(f.unit_id, f.at, f.lon, f.lat) for f in fixes]),
        "first_at": min(f.at for f in fixes),
        "last_at": max(f.at for f in fixes),
    }
    if _postgres(s):
        params = {
            "now": now,
            "actor": actor,
            "n": batch["fixes"],
            "digest": batch["digest"],
            "first_at": batch["first_at"],
            "last_at": batch["last_at"],
            "unit_ids": [f.unit_id for f in fixes],
            "ats": [f.at for f in fixes],
            "lons": [f.lon for f in fixes],
            "lats": [f.lat for f in fixes],
        }
        return int(s.execute(_PG_INSERT, params).scalar_one())
    batches = _table(PositionBatch)
    batch_id = int(s.execute(insert(batches).values(**batch).returning(batches.c.id)).scalar_one())
    copy_rows(
        s,
        _table(UnitPosition),
        ("unit_id", "at", "lon", "lat", "received_at", "batch_id"),
        ((f.unit_id, f.at, f.lon, f.lat, now, batch_id) for f in fixes),
    )
    return batch_id


def move_units(s: Session, fixes: Sequence[Fix]) -> list[Fix]:
    """Move the units whose latest position the fixes are; returns the fixes that moved their
    unit (one per unit at most), in unit id order.  The units are locked in id order (the
    global lock order); a fix older than the unit's current position only joins the history.
    On PostgreSQL the lock and the move are one statement (:data:`_PG_MOVE`)."""
    newest: dict[str, Fix] = {}
    for f in fixes:
        if f.unit_id not in newest or f.at > newest[f.unit_id].at:
            newest[f.unit_id] = f
    ids = sorted(newest)
    if _postgres(s):
        params = {
            "ids": ids,
            "lons": [newest[u].lon for u in ids],
            "lats": [newest[u].lat for u in ids],
            "ats": [newest[u].at for u in ids],
        }
        done = set(s.execute(_PG_MOVE, params).scalars())
        return [newest[u] for u in ids if u in done]
    current = dict(
        s.execute(
            select(Unit.id, Unit.position_at)
            .where(Unit.id.in_(ids))
            .order_by(Unit.id)
            .with_for_update(key_share=True)
        ).all()
    )
    moved = [newest[u] for u in ids if _is_newer(newest[u], current.get(u))]
    if moved:
        units = _table(Unit)
        s.execute(
            update(units)
            .where(units.c.id == bindparam("uid"))
            .values(
                lon=bindparam("new_lon"), lat=bindparam("new_lat"), position_at=bindparam("new_at")
            )
            .execution_options(synchronize_session=False),
            [{"uid": f.unit_id, "new_lon": f.lon, "new_lat": f.lat, "new_at": f.at} for f in moved],
        )
    return moved


def write_fixes(
    s: Session, actor: str, fixes: Sequence[Fix], now: datetime
) -> tuple[int, list[Fix]]:
    """:func:`insert_fixes` then :func:`move_units`: the batch id and the fixes that moved
    their unit."""
    return insert_fixes(s, actor, fixes, now), move_units(s, fixes)


class FixQueue:
    """Single AVL fixes (``PUT .../position``) written together: group commit.

    Callers :meth:`submit` a fix and wait for its :class:`FixOutcome`; one writer thread (per
    worker: a second one splits the waiting fixes into smaller transactions, each costing about
    the same CPU whatever its size) takes every fix waiting (up to ``max_batch``) and hands
    them to ``record`` as one transaction.
    Under load many fixes share a transaction; alone, a fix is written at once (nothing waits
    on a timer).  A fix is answered only after its transaction committed, so nothing
    acknowledged is lost; when the transaction fails, every fix in it gets the error.

    Parameters
    ----------
    record : callable
        ``record(items)`` with ``items`` a list of ``(principal, fix)``: validates and stores
        them in one transaction, returning one :class:`FixOutcome` per item, in order.
    max_batch : int
        Most fixes per transaction.
    """

    def __init__(
        self,
        record: Callable[[list[tuple[Any, Fix]]], list[FixOutcome]],
        max_batch: int = 500,
    ) -> None:
        self._record = record
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[tuple[Any, Fix, Future[FixOutcome]] | None] = (
            queue.SimpleQueue()
        )
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        #: Transactions written and fixes written (for metrics and the benchmark).
        self.transactions = 0
        self.fixes = 0

    def submit(self, who: Any, fix: Fix) -> Future[FixOutcome]:
        """Queue one fix of ``who``; the future gives its outcome once committed."""
        if self._thread is None:
            with self._start_lock:
                if self._thread is None:
                    thread = threading.Thread(target=self._run, name="citywatch-fixes", daemon=True)
                    thread.start()
                    self._thread = thread
        done: Future[FixOutcome] = Future()
        self._queue.put((who, fix, done))
        return done

    def close(self, timeout_s: float = 30.0) -> None:
        """Write what is queued, then stop the writer thread."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout_s)

    def _run(self) -> None:
        stop = False
        while not stop:
            first = self._queue.get()
            if first is None:
                break
            items = [first]
            while len(items) < self._max_batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:  # the stop: write what it holds first
                    stop = True
                    break
                items.append(nxt)
            try:
                outcomes = self._record([(who, fix) for who, fix, _ in items])
            except BaseException as exc:  # every waiting request gets the failure
                for _, _, done in items:
                    done.set_exception(exc)
                continue
            with self._start_lock:
                self.transactions += 1
                self.fixes += len(items)
            for (_, _, done), outcome in zip(items, outcomes, strict=True):
                done.set_result(outcome)


def _table(model: type[Any]) -> Table:
    # Core statements: executemany of plain rows, without ORM bulk semantics.
    table: Table = model.__table__
    return table


def _is_newer(fix: Fix, current: datetime | None) -> bool:
    return current is None or current < fix.at


def seal_positions(s: Session, *, actor: str = "system") -> int:
    """Cover every unsealed position batch by one ``positions.sealed`` audit record.

    Concurrent sealers (one per worker) skip each other's batches.  Returns the number of
    batches sealed (0 when there was nothing to seal).
    """
    query = (
        select(PositionBatch.id, PositionBatch.digest, PositionBatch.fixes)
        .where(PositionBatch.audit_seq.is_(None))
        .order_by(PositionBatch.id)
        .limit(_SEAL_LIMIT)
    )
    if _postgres(s):
        query = query.with_for_update(skip_locked=True)
    batches = [(int(i), str(d), int(n)) for i, d, n in s.execute(query).all()]
    if not batches:
        return 0
    ids = [b[0] for b in batches]
    record = append_audit(
        s,
        actor=actor,
        action=SEAL_ACTION,
        entity="positions",
        entity_id=f"{ids[0]}-{ids[-1]}",
        after={
            "batches": ids,
            "fixes": sum(b[2] for b in batches),
            "digest": _seal_digest(batches),
        },
    )
    s.execute(
        update(PositionBatch)
        .where(PositionBatch.id.in_(ids))
        .values(audit_seq=record.seq)
        .execution_options(synchronize_session=False)
    )
    return len(batches)


@dataclass(frozen=True, slots=True)
class PositionCheck:
    """Result of :func:`verify_positions`."""

    ok: bool
    batches: int
    fixes: int
    unsealed: int
    reason: str | None = None


def _seal_problem(s: Session, batches: Sequence[Any]) -> str | None:
    """Whether the batches still match the seal records that cover them."""
    seals = {
        rec.seq: rec.after or {}
        for rec in s.scalars(select(AuditRecord).where(AuditRecord.action == SEAL_ACTION))
    }
    by_seal: dict[int, list[tuple[int, str, int]]] = {}
    for b in batches:
        if b.audit_seq is not None:
            by_seal.setdefault(b.audit_seq, []).append((b.id, b.digest, b.fixes))
    for seq, after in seals.items():
        got = sorted(by_seal.pop(seq, []))
        if [g[0] for g in got] != after.get("batches") or _seal_digest(got) != after.get("digest"):
            return f"position batches of audit record {seq} were changed or deleted"
    if by_seal:
        return f"position batches claim audit record {min(by_seal)}, which seals nothing"
    return None


def _stored_fixes(s: Session) -> dict[int, list[tuple[str, datetime, float, float]]]:
    stored: dict[int, list[tuple[str, datetime, float, float]]] = {}
    query = select(
        UnitPosition.batch_id, UnitPosition.unit_id, UnitPosition.at, UnitPosition.lon,
        UnitPosition.lat,
    )  # fmt: skip
    for batch_id, unit_id, at, lon, lat in s.execute(query.execution_options(yield_per=10_000)):
        if batch_id is not None:  # fixes received before migration 0004 have no batch
            stored.setdefault(int(batch_id), []).append((unit_id, at, lon, lat))
    return stored


def verify_positions(s: Session, *, retained_since: datetime | None = None) -> PositionCheck:
    """Check that every stored fix is covered by a sealed batch whose digest matches.

    ``retained_since``: fixes older than this may have been dropped by the retention; their
    batches are checked against their seal, not against the history.  Run after
    :func:`~citywatch.dispatch.audit.verify_chain` (which proves the seal records themselves).
    """
    batches = s.execute(select(PositionBatch).order_by(PositionBatch.id)).scalars().all()
    unsealed = sum(b.audit_seq is None for b in batches)
    problem = _seal_problem(s, batches)
    stored = _stored_fixes(s)
    fixes = sum(len(v) for v in stored.values())
    stray = sorted(set(stored) - {b.id for b in batches})
    if problem is None and stray:
        problem = f"fixes claim position batch {stray[0]}, which does not exist"
    for b in batches if problem is None else []:
        got = stored.get(b.id, [])
        if retained_since is not None and b.last_at < retained_since and len(got) < b.fixes:
            continue
        if len(got) != b.fixes or batch_digest(got) != b.digest:
            problem = f"fixes of position batch {b.id} were changed, added or deleted"
            break
    return PositionCheck(problem is None, len(batches), fixes, unsealed, problem)


def maintain_partitions(
    engine: Engine, now: datetime, retention_days: int, ahead_days: int = 2
) -> list[str]:
    """Make the daily history partitions of the next ``ahead_days`` and drop those older than
    ``retention_days`` (PostgreSQL; nothing to do on SQLite).  Returns the partitions dropped.

    Fixes of days without a partition land in the default partition: nothing is ever refused.
    """
    if engine.dialect.name != "postgresql":
        return []
    dropped = []
    today = now.astimezone(UTC).date()
    with engine.begin() as conn:
        # Workers starting together would race to create the same partition.
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PARTITION_LOCK})
        for k in range(-1, ahead_days + 1):
            day = today + timedelta(days=k)
            name = f"unit_positions_{day:%Y%m%d}"
            exists = conn.execute(text("SELECT to_regclass(:n)"), {"n": name}).scalar()
            if exists is None:
                moved = conn.execute(
                    text("SELECT count(*) FROM unit_positions_default WHERE at >= :a AND at < :b"),
                    {"a": day, "b": day + timedelta(days=1)},
                ).scalar_one()
                if moved:
                    continue  # its fixes already sit in the default partition: leave them there
                conn.execute(
                    text(
                        f"CREATE TABLE {name} PARTITION OF unit_positions FOR VALUES "
                        f"FROM ('{day.isoformat()}T00:00:00+00:00') "
                        f"TO ('{(day + timedelta(days=1)).isoformat()}T00:00:00+00:00')"
                    )
                )
        cutoff = today - timedelta(days=retention_days)
        parts = conn.execute(
            text(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'unit_positions'"
            )
        ).scalars()
        for name in list(parts):
            stamp = name.removeprefix("unit_positions_")
            if stamp.isdigit() and datetime.strptime(stamp, "%Y%m%d").date() < cutoff:
                conn.execute(text(f"DROP TABLE {name}"))
                dropped.append(name)
    return dropped
