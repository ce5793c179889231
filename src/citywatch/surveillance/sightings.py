"""Sightings: reads of external recognition systems, matched against the hotlists at ingest.

A batch of reads (``POST /api/v1/sightings``) is one transaction:

1. every read is checked as a single one would be: a registered sensor of the pack whose kind
   can make that read (plates: plate readers and cameras; tags: tag readers; subject
   references: cameras), a time no more than :data:`~citywatch.domain.CLOCK_SKEW_S` ahead and
   :data:`MAX_SIGHTING_AGE_S` old, a valid value (or hash), a position inside the pack for
   car-mounted readers that report their own; refused reads get their error, the others go on;
2. the values are keyed (:class:`~citywatch.surveillance.matching.ValueKey`) and matched with
   **one indexed query** against the active, unexpired hotlist entries (``value_key IN (...)``
   on ``ix_hotlist_entries_value_key``: a B-tree lookup per distinct value, whatever the size
   of the hotlist, and every worker sees an entry as soon as it commits);
3. the reads that matched nothing are written with PostgreSQL ``COPY`` (a Core executemany
   elsewhere, :func:`~citywatch.store.bulk.copy_rows`), the hits with one ``INSERT ...
   RETURNING`` to link their alerts; the hits raise or extend alerts with a fixed number of
   statements (:func:`~citywatch.surveillance.alerts.raise_alerts`);
4. one ``sightings.ingest`` audit record covers the batch (counts, the ids stored and a SHA-256
   of the reads), appended last like every other writer of the chain.

Retention (:func:`purge_sightings`): sightings that matched nothing are deleted after the
configured days (:data:`DEFAULT_RETENTION_DAYS`); hits stay with their alert.  Each purge writes
its own audit record with the counts.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sqlalchemy import Table, any_, delete, func, insert, select
from sqlalchemy.orm import Session

from citywatch.city import CityPack
from citywatch.dispatch.audit import append_audit
from citywatch.dispatch.core import EventSink, check_time_window
from citywatch.domain import CLOCK_SKEW_S
from citywatch.errors import CityWatchError, NotFoundError, ValidationError
from citywatch.store.bulk import copy_rows, digest_lines
from citywatch.store.db import writing
from citywatch.store.models import SensorRow
from citywatch.store.sightings_models import HotlistEntryRow, SightingRow
from citywatch.surveillance.alerts import AreaGraph, Hit, Recommender, raise_alerts
from citywatch.surveillance.matching import SightingKind, ValueKey, normalise
from citywatch.surveillance.sensors import SensorKind

__all__ = [
    "DEFAULT_RETENTION_DAYS",
    "INGEST_ACTION",
    "MAX_BATCH_SIGHTINGS",
    "MAX_SIGHTING_AGE_S",
    "READERS_OF",
    "IngestResult",
    "Outcome",
    "PurgeResult",
    "Read",
    "SightingFix",
    "ingest",
    "purge_sightings",
    "reads_digest",
    "sighting_fix",
    "sighting_fixes",
]

#: Most reads in one ``POST /sightings`` request.
MAX_BATCH_SIGHTINGS: Final = 1000
#: Oldest read accepted: readers buffer while offline, not for days.
MAX_SIGHTING_AGE_S: Final = 86_400.0
#: Days a sighting that matched nothing is kept.
DEFAULT_RETENTION_DAYS: Final = 30
#: Sensor kinds that can make each kind of read (ANPR runs on plate readers and on cameras).
READERS_OF: Final = {
    SightingKind.PLATE: frozenset(
        {SensorKind.PLATE_READER, SensorKind.FIXED_CAMERA, SensorKind.PTZ}
    ),
    SightingKind.EBIKE_TAG: frozenset({SensorKind.EBIKE_TAG_READER}),
    SightingKind.SUBJECT_REF: frozenset({SensorKind.FIXED_CAMERA, SensorKind.PTZ}),
}
#: Audit action of an ingested batch (its counts, hits, new alerts and reads digest).
INGEST_ACTION: Final = "sightings.ingest"
#: Rows deleted per statement by a purge (a long backlog is deleted in several transactions).
PURGE_CHUNK: Final = 50_000


@dataclass(frozen=True, slots=True)
class Read:
    """One read as received: sensor, time, kind, value (or its hash), confidence, and the
    position of a mobile (car-mounted) reader when it reports one."""

    sensor_id: str
    seen_at: datetime
    kind: str
    value: str
    confidence: float | None = None
    hashed: bool = False
    lon: float | None = None
    lat: float | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one read: stored (``hit`` when it matched) or refused with the error."""

    index: int
    stored: bool = False
    hit: bool = False
    alert_id: int | None = None
    error: CityWatchError | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, with the error as ``{status, code, message, field}``."""
        err = self.error
        return {
            "index": self.index,
            "stored": self.stored,
            "hit": self.hit,
            "alert_id": self.alert_id,
            "error": None if err is None else err.as_item(),
        }


@dataclass
class IngestResult:
    """Counts and per-read outcomes (request order) of one batch."""

    stored: int
    hits: int
    refused: int
    alerts_created: list[int] = field(default_factory=list)
    alerts_updated: list[int] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "stored": self.stored,
            "hits": self.hits,
            "refused": self.refused,
            "alerts_created": self.alerts_created,
            "alerts_updated": self.alerts_updated,
            "results": [o.as_dict() for o in self.outcomes],
        }


def reads_digest(rows: Sequence[dict[str, Any]]) -> str:
    """SHA-256 (hex) of stored reads ``(sensor, POSIX time, kind, value key)``, in any order
    (:func:`~citywatch.store.bulk.digest_lines`)."""
    return digest_lines(
        f"{r['sensor_id']}|{r['seen_at'].timestamp():.6f}|{r['kind']}|{r['value_key']}"
        for r in rows
    )


@dataclass(frozen=True, slots=True)
class _Sensor:
    kind: SensorKind
    lon: float
    lat: float
    bureau: str | None
    station: str | None


def _sensors(session: Session, pack: str, ids: set[str]) -> dict[str, _Sensor]:
    rows = session.execute(
        select(
            SensorRow.id,
            SensorRow.kind,
            func.coalesce(SensorRow.snap_lon, SensorRow.lon),
            func.coalesce(SensorRow.snap_lat, SensorRow.lat),
            SensorRow.bureau,
            SensorRow.station,
        ).where(SensorRow.pack == pack, SensorRow.id.in_(sorted(ids)))
    )
    return {r[0]: _Sensor(SensorKind(r[1]), r[2], r[3], r[4], r[5]) for r in rows}


def _table(model: type[Any]) -> Table:
    table: Table = model.__table__
    return table


_KINDS: Final = {k.value: k for k in SightingKind}


def _check(read: Read, sensor: _Sensor | None, pack: CityPack) -> SightingKind:
    if sensor is None:
        raise NotFoundError(f"no sensor {read.sensor_id!r} in pack {pack.name}", field="sensor_id")
    kind = _KINDS.get(read.kind)
    if kind is None:
        raise ValidationError(f"unknown kind {read.kind!r}", field="kind")
    if sensor.kind not in READERS_OF[kind]:
        raise ValidationError(
            f"sensor {read.sensor_id} is a {sensor.kind}: it cannot read a {kind}", field="kind"
        )
    if read.confidence is not None and not 0.0 <= read.confidence <= 1.0:
        raise ValidationError("confidence must be 0 to 1", field="confidence")
    if (read.lon is None) != (read.lat is None):
        raise ValidationError("give both lon and lat of a mobile reader, or neither", field="lon")
    if read.lon is not None and read.lat is not None:
        if not (math.isfinite(read.lon) and math.isfinite(read.lat)):
            raise ValidationError("lon/lat must be finite", field="lon")
        if not pack.contains(read.lon, read.lat):
            raise ValidationError("the reader's position is outside the city", field="lon")
    return kind


def ingest(
    session: Session,
    pack: CityPack,
    reads: Sequence[Read],
    *,
    actor: str,
    key: ValueKey,
    now: datetime | None = None,
    store_values: bool = False,
    recommend: Recommender | None = None,
    sink: EventSink | None = None,
) -> IngestResult:
    """Validate, match, store and alert one batch of reads in the caller's transaction.

    Parameters
    ----------
    session : Session
        The batch's transaction.
    pack : CityPack
        The served city (sensors are looked up in its registry).
    reads : sequence of Read
        At most :data:`MAX_BATCH_SIGHTINGS`.
    actor : str
        The recognition system's account.
    key : ValueKey
        The sightings key.
    now : datetime, optional
        Server time of receipt (now by default).
    store_values : bool
        Keep the values themselves, not only their keyed hashes.
    recommend : Recommender, optional
        Nearest units for a new alert (the dispatch policy).
    sink : EventSink, optional
        Where alert events are staged (the event bus).

    Returns
    -------
    IngestResult
        Counts, the alerts created and extended, and one outcome per read in request order.
    """
    if len(reads) > MAX_BATCH_SIGHTINGS:
        raise ValidationError(
            f"at most {MAX_BATCH_SIGHTINGS} sightings per request", field="sightings"
        )
    at = now or datetime.now(UTC)
    outcomes: dict[int, Outcome] = {}
    rows, index = _rows(session, pack, reads, at, outcomes, actor, key, store_values)
    matches = _match(session, [r["value_key"] for r in rows], at)
    hits_in, plain = [], []
    for row in rows:
        entry_id = matches.get(row["value_key"])
        if entry_id is not None:
            row["hit"], row["entry_id"] = True, entry_id
            hits_in.append(row)
        else:
            plain.append(row)
    if plain:
        copy_rows(session, _table(SightingRow), _COLUMNS, map(_in_columns, plain))
    hits = _insert_hits(session, hits_in)
    changes = raise_alerts(
        session,
        pack.name,
        hits,
        areas=AreaGraph.of(pack),
        actor=actor,
        now=at,
        recommend=recommend,
        sink=sink,
    )
    for row, i in zip(rows, index, strict=True):
        outcomes[i] = Outcome(i, True, row["hit"], changes.alert_of.get(row.get("id", -1)))
    result = IngestResult(
        stored=len(rows),
        hits=len(hits),
        refused=len(reads) - len(rows),
        alerts_created=changes.created,
        alerts_updated=changes.extended,
        outcomes=[outcomes[i] for i in range(len(reads))],
    )
    if rows:
        append_audit(
            session,
            actor=actor,
            action=INGEST_ACTION,
            entity="sightings",
            entity_id=None,
            after={
                "stored": result.stored,
                "hits": result.hits,
                "refused": result.refused,
                "hit_sightings": [h.sighting_id for h in hits],
                "alerts_created": [{k: a[k] for k in _AUDITED} for a in changes.alerts],
                "alerts_updated": changes.extended,
                "digest": reads_digest(rows),
            },
            at=at,
        )
    return result


def _rows(
    session: Session,
    pack: CityPack,
    reads: Sequence[Read],
    at: datetime,
    outcomes: dict[int, Outcome],
    actor: str,
    key: ValueKey,
    store_values: bool,
) -> tuple[list[dict[str, Any]], list[int]]:
    """The rows of the valid reads and their request positions; refused reads get their
    outcome in ``outcomes``."""
    earliest = at - timedelta(seconds=MAX_SIGHTING_AGE_S)
    latest = at + timedelta(seconds=CLOCK_SKEW_S)
    sensors = _sensors(session, pack.name, {r.sensor_id for r in reads})
    rows: list[dict[str, Any]] = []
    index: list[int] = []  # request position of each row
    mobile: list[int] = []
    for i, read in enumerate(reads):
        sensor = sensors.get(read.sensor_id)
        try:
            kind = _check(read, sensor, pack)
            stamp = read.seen_at
            if stamp.tzinfo is None or not earliest <= stamp <= latest:
                check_time_window(stamp, at, max_age_s=MAX_SIGHTING_AGE_S, field="seen_at")
            normal = normalise(kind, read.value, hashed=read.hashed)
        except CityWatchError as exc:
            outcomes[i] = Outcome(i, error=exc)
            continue
        assert sensor is not None
        row: dict[str, Any] = {
            "pack": pack.name,
            "sensor_id": read.sensor_id,
            "kind": kind.value,
            "value_key": key.of_normal(kind, normal, hashed=read.hashed),
            "value": normal if store_values else None,
            "confidence": read.confidence,
            "seen_at": stamp.astimezone(UTC),
            "received_at": at,
            "lon": sensor.lon,
            "lat": sensor.lat,
            "bureau": sensor.bureau,
            "station": sensor.station,
            "hit": False,
            "entry_id": None,
            "alert_id": None,
            "source": actor,
        }
        if read.lon is not None:
            row["lon"], row["lat"] = read.lon, read.lat
            mobile.append(len(rows))
        rows.append(row)
        index.append(i)
    if mobile:
        where = pack.locate_many([rows[j]["lon"] for j in mobile], [rows[j]["lat"] for j in mobile])
        for n, j in enumerate(mobile):
            rows[j]["bureau"] = where["bureau"].iloc[n]
            rows[j]["station"] = where["station"].iloc[n]
    return rows, index


def _insert_hits(session: Session, rows: Sequence[dict[str, Any]]) -> list[Hit]:
    """Insert the reads that matched (one ``INSERT ... RETURNING``, their ids set on the rows)."""
    if not rows:
        return []
    table = _table(SightingRow)
    ids = session.execute(
        insert(table).returning(table.c.id, sort_by_parameter_order=True), rows
    ).scalars()
    hits = []
    for row, sid in zip(rows, ids, strict=True):
        row["id"] = int(sid)
        hits.append(
            Hit(
                row["id"],
                row["entry_id"],
                row["sensor_id"],
                row["seen_at"],
                row["lon"],
                row["lat"],
                row["station"],
                row["bureau"],
            )
        )
    return hits


#: Columns of a stored sighting, in the order of the PostgreSQL ``COPY``.
_COLUMNS: Final = (
    "pack",
    "sensor_id",
    "kind",
    "value_key",
    "value",
    "confidence",
    "seen_at",
    "received_at",
    "lon",
    "lat",
    "bureau",
    "station",
    "hit",
    "entry_id",
    "alert_id",
    "source",
)


#: What the audit keeps of each new alert: entry, where, to whom, the units recommended.
_AUDITED: Final = (
    "id", "kind", "entry_id", "list", "station", "recipients", "sighting_id", "recommended"
)  # fmt: skip
_in_columns: Final = operator.itemgetter(*_COLUMNS)


def _match(session: Session, keys: Sequence[str], at: datetime) -> dict[str, int]:
    """value key -> id of the matching active entry (the most urgent when several lists hold
    it): one query on the value-key index (``= ANY(array)`` on PostgreSQL, ``IN`` elsewhere)."""
    if not keys:
        return {}
    distinct = sorted(set(keys))
    column = HotlistEntryRow.value_key
    if session.get_bind().dialect.name == "postgresql":
        # one text parameter split by the server: psycopg dumps an array of 1,000 strings in
        # Python, most of the match's client CPU in a profile (value keys are hex, no commas)
        wanted = column == any_(func.string_to_array(",".join(distinct), ","))
    else:
        wanted = column.in_(distinct)
    rows = session.execute(
        select(HotlistEntryRow.value_key, HotlistEntryRow.id)
        .where(wanted, HotlistEntryRow.status == "active", HotlistEntryRow.expires_at > at)
        .order_by(HotlistEntryRow.priority.desc(), HotlistEntryRow.id.desc())
    )
    return {k: i for k, i in rows}  # the last one written wins: highest priority, oldest id


@dataclass(frozen=True, slots=True)
class SightingFix:
    """Where and when a stored sighting saw its subject: what a pursuit starts from.

    No value (plate, tag, reference) is carried: a pursuit needs the position and the time.
    """

    id: int
    sensor_id: str
    kind: str
    seen_at: datetime
    lon: float
    lat: float
    hit: bool
    entry_id: int | None
    alert_id: int | None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (``seen_at`` as ISO 8601)."""
        return {
            "id": self.id,
            "sensor_id": self.sensor_id,
            "kind": self.kind,
            "seen_at": self.seen_at.isoformat(),
            "lon": self.lon,
            "lat": self.lat,
            "hit": self.hit,
            "entry_id": self.entry_id,
            "alert_id": self.alert_id,
        }


def _fix(row: SightingRow) -> SightingFix:
    if row.lon is None or row.lat is None:
        raise ValidationError(f"sighting {row.id} has no position", field="sighting")
    return SightingFix(
        int(row.id), row.sensor_id, row.kind, row.seen_at, float(row.lon), float(row.lat),
        bool(row.hit), row.entry_id, row.alert_id,
    )  # fmt: skip


def sighting_fix(session: Session, pack: str, sighting_id: int) -> SightingFix:
    """The stored sighting ``sighting_id`` of the served ``pack``.

    Raises
    ------
    NotFoundError
        If the pack has no such sighting (never stored, purged, or of another pack).
    ValidationError
        If the sighting has no position.
    """
    row = session.get(SightingRow, sighting_id)
    if row is None or row.pack != pack:
        raise NotFoundError(f"no sighting {sighting_id} in pack {pack}", field="sighting")
    return _fix(row)


def sighting_fixes(
    session: Session,
    pack: str,
    *,
    entry_ids: Sequence[int],
    alert_ids: Sequence[int],
    since: datetime,
    limit: int = 50,
) -> list[SightingFix]:
    """Hits of the hotlist entries ``entry_ids`` in the alerts ``alert_ids`` seen at or after
    ``since``, newest first (a subject's later sightings: where a pursuit may start from)."""
    if not entry_ids or not alert_ids:
        return []
    rows = session.scalars(
        select(SightingRow)
        .where(
            SightingRow.pack == pack,
            SightingRow.hit.is_(True),
            SightingRow.entry_id.in_(sorted(set(entry_ids))),
            SightingRow.alert_id.in_(sorted(set(alert_ids))),
            SightingRow.seen_at >= since,
            SightingRow.lon.is_not(None),
            SightingRow.lat.is_not(None),
        )
        .order_by(SightingRow.seen_at.desc(), SightingRow.id.desc())
        .limit(max(1, limit))
    )
    return [_fix(r) for r in rows]


@dataclass(frozen=True)
class PurgeResult:
    """What a purge deleted and kept."""

    cutoff: datetime
    retention_days: int
    deleted: int
    hits_kept: int

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "cutoff": self.cutoff.isoformat(),
            "retention_days": self.retention_days,
            "deleted": self.deleted,
            "hits_kept": self.hits_kept,
        }


def purge_chunk(session: Session, cutoff: datetime, limit: int = PURGE_CHUNK) -> int:
    """Delete up to ``limit`` sightings older than ``cutoff`` that matched nothing."""
    table = _table(SightingRow)
    doomed = (
        select(table.c.id)
        .where(table.c.hit.is_(False), table.c.seen_at < cutoff)
        .order_by(table.c.id)
        .limit(limit)
        .scalar_subquery()
    )
    result = session.execute(delete(table).where(table.c.id.in_(doomed)))
    return int(getattr(result, "rowcount", 0) or 0)


def purge_sightings(
    sessions: Any,
    *,
    retention_days: int = DEFAULT_RETENTION_DAYS,
    actor: str = "system",
    now: datetime | None = None,
    chunk: int = PURGE_CHUNK,
) -> PurgeResult:
    """Delete the sightings that matched nothing and are older than ``retention_days``, in
    chunks of ``chunk`` rows (one transaction each), then audit the purge
    (``sightings.purge``) with the counts.  Hits are kept with their alerts.

    Parameters
    ----------
    sessions : sessionmaker
        Sessions on the database.
    retention_days : int
        1 to 3650 days.
    actor : str
        Who runs it (``"system"`` for the service's hourly job, ``"cli"``).
    now : datetime, optional
        The time the retention counts back from (now by default).
    chunk : int
        Rows per deleting transaction.

    Returns
    -------
    PurgeResult
        The cutoff and the counts.
    """
    if not 1 <= retention_days <= 3650:
        raise ValidationError("retention must be 1 to 3650 days", field="retention_days")
    at = now or datetime.now(UTC)
    cutoff = at - timedelta(days=retention_days)
    deleted = 0
    while True:
        with writing(sessions) as s:
            n = purge_chunk(s, cutoff, chunk)
        deleted += n
        if n < chunk:
            break
    with writing(sessions) as s:
        kept = int(
            s.scalar(
                select(func.count())
                .select_from(SightingRow)
                .where(SightingRow.hit.is_(True), SightingRow.seen_at < cutoff)
            )
            or 0
        )
        result = PurgeResult(cutoff, retention_days, deleted, kept)
        append_audit(
            s,
            actor=actor,
            action="sightings.purge",
            entity="sightings",
            entity_id=None,
            after=result.as_dict(),
            at=at,
        )
    return result
