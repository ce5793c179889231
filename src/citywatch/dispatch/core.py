"""Shared plumbing of the live dispatch service: transactions, events, scope checks, views.

Every operation opens its own transaction, and writes each change to the ``dispatch_events``
timeline, to the audit chain and to the event sink (which reaches the WebSocket clients of every
worker) in that same transaction.  The database is the one truth shared between worker
processes; the units each worker keeps in memory for recommendations
(:class:`~citywatch.dispatch.live.LiveUnits`) follow the committed changes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Protocol

import shapely
from sqlalchemy import Select, event, select, update
from sqlalchemy.orm import Session, sessionmaker

from citywatch.city import CityPack
from citywatch.console import to_jsonable
from citywatch.dispatch.accounts import Principal, Role
from citywatch.dispatch.audit import append_audit
from citywatch.dispatch.duplicates import ConsoleConfig, load_console_config
from citywatch.dispatch.lifecycle import INCIDENT_LIFECYCLE, IncidentStatus
from citywatch.dispatch.live import UNIT_EVENTS, LiveUnit, LiveUnits
from citywatch.dispatch.policy import (
    STATION_FIRST_THRESHOLD_S,
    RequirementRules,
    UnitView,
    load_requirements,
    router_travel,
)
from citywatch.domain import CLOCK_SKEW_S, LAT_RANGE, LON_RANGE
from citywatch.errors import (
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    SnapError,
    ValidationError,
)
from citywatch.incidents.taxonomy import Taxonomy, load_taxonomy
from citywatch.routing import Router
from citywatch.routing.speeds import parse_mode
from citywatch.store.board_models import UnitBoard
from citywatch.store.db import writing
from citywatch.store.dispatch_models import (
    Assignment,
    DispatchEvent,
    IncidentDispatch,
    Unit,
)
from citywatch.store.models import IncidentRow

__all__ = [
    "ACTIVE_INCIDENT",
    "CLOCK_SKEW_S",
    "MAX_BACKDATE_S",
    "STALE_AFTER_S",
    "DispatchConfig",
    "EventSink",
    "ServiceCore",
    "check_time_window",
]

#: Default age after which a unit's AVL position is stale (the unit is then located at its post
#: or station).
STALE_AFTER_S = 300.0

ACTIVE_INCIDENT = INCIDENT_LIFECYCLE.active
#: Oldest ``received_at`` of a new incident (a call entered late, not a historical record).
MAX_BACKDATE_S: Final = 86_400.0
#: Session-info key of the audit records a writing transaction appends when it ends.
_PENDING_AUDIT = "citywatch_pending_audit"


class EventSink(Protocol):
    """Where committed changes are announced (see :mod:`citywatch.api.events`)."""

    def stage(self, session: Session, event: dict[str, Any]) -> None:
        """Queue ``event`` so that it is delivered if and only if ``session`` commits."""

    def publish(self, events: list[dict[str, Any]]) -> None:
        """Deliver events of changes already committed outside any session (the AVL writer's
        one statement), possibly a moment later and batched."""


@dataclass(frozen=True)
class DispatchConfig:
    """Operational settings of the service.

    ``stale_after_s``: an AVL position older than this is stale, and the unit is located at its
    post or station.
    ``station_first_threshold_s``: default threshold of the ``station_first`` policy.
    """

    stale_after_s: float = STALE_AFTER_S
    station_first_threshold_s: float = STATION_FIRST_THRESHOLD_S


def as_utc(at: datetime, field: str = "at") -> datetime:
    """``at`` in UTC; :class:`ValidationError` naming ``field`` when it has no time zone or
    lies at a calendar edge where the conversion overflows (``0001-01-01T00:00+05:00``)."""
    if at.tzinfo is None:
        raise ValidationError(f"{field} must carry a time zone (ISO 8601 with offset)", field=field)
    try:
        return at.astimezone(UTC)
    except OverflowError:
        raise ValidationError(f"{field} is outside the representable years", field=field) from None


def check_time_window(at: datetime, now: datetime, *, max_age_s: float, field: str) -> datetime:
    """``at`` in UTC if it is at most :data:`CLOCK_SKEW_S` ahead of ``now`` and at most
    ``max_age_s`` behind it; :class:`ValidationError` naming ``field`` otherwise."""
    utc = as_utc(at, field)
    if utc > now + timedelta(seconds=CLOCK_SKEW_S):
        raise ValidationError(
            f"{field} is in the future (more than {CLOCK_SKEW_S:g} s ahead of the server clock)",
            field=field,
        )
    if utc < now - timedelta(seconds=max_age_s):
        raise ValidationError(f"{field} is more than {max_age_s / 3600:g} h ago", field=field)
    return utc


def check_lonlat(lon: float, lat: float) -> None:
    """:class:`ValidationError` naming ``lon`` or ``lat`` when either is not a WGS-84 value."""
    for name, value, (lo, hi) in (("longitude", lon, LON_RANGE), ("latitude", lat, LAT_RANGE)):
        if not (math.isfinite(value) and lo <= value <= hi):
            raise ValidationError(f"{name} {value} is not within {lo:g}..{hi:g}", field=name[:3])


class UnitState(Protocol):
    """The unit fields a dispatch decision reads (an ORM :class:`Unit` or a selected row)."""

    @property
    def id(self) -> str: ...
    @property
    def unit_type(self) -> str: ...
    @property
    def mode(self) -> str: ...
    @property
    def station(self) -> str | None: ...
    @property
    def status(self) -> str: ...
    @property
    def capabilities(self) -> Collection[str]: ...
    @property
    def lon(self) -> float | None: ...
    @property
    def lat(self) -> float | None: ...
    @property
    def position_at(self) -> datetime | None: ...
    @property
    def post_lon(self) -> float | None: ...
    @property
    def post_lat(self) -> float | None: ...


#: The columns of :class:`UnitState`, for reads that need no ORM objects (recommendations).
UNIT_STATE_COLUMNS = (
    Unit.id,
    Unit.unit_type,
    Unit.mode,
    Unit.station,
    Unit.status,
    Unit.capabilities,
    Unit.lon,
    Unit.lat,
    Unit.position_at,
    Unit.post_lon,
    Unit.post_lat,
)


class ServiceCore:
    """Plumbing shared by the unit and incident operations of :class:`DispatchService`."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        pack: CityPack,
        router: Router,
        sink: EventSink,
        *,
        config: DispatchConfig | None = None,
        rules: RequirementRules | None = None,
        taxonomy: Taxonomy | None = None,
        console: ConsoleConfig | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.sessions = sessions
        self.pack = pack
        self.router = router
        self.sink = sink
        self.config = config or DispatchConfig()
        self.rules = rules or load_requirements()
        self.taxonomy = taxonomy or load_taxonomy()
        #: The console's numbers (incident numbers, duplicates, premise history, cautions).
        self.console = console or load_console_config(taxonomy=self.taxonomy)
        self.clock = clock or (lambda: datetime.now(UTC))
        self._travel = router_travel(router)
        self.stations = {s.id: s for s in pack.stations}
        levels = {j.id: j for j in pack.jurisdictions}
        #: station id -> bureau id, for scope checks of units.
        self.bureau_of = {
            sid: levels[s.jurisdiction].parent if s.jurisdiction in levels else None
            for sid, s in self.stations.items()
        }
        self._places = list(pack.places)
        self._place_tree = shapely.STRtree([p.geometry for p in self._places])
        #: This worker's units in memory (recommendations read them, not the database).
        self.live = LiveUnits(self._load_live, self._unit_view, self.config.stale_after_s)
        self._live_key = f"citywatch_live_{id(self)}"
        engine = sessions.kw["bind"]
        #: Connections outside transaction blocks, for a write that is one statement.
        self._autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._postgres = engine.dialect.name == "postgresql"
        event.listen(sessions, "after_commit", self._live_commit)
        event.listen(sessions, "after_rollback", self._live_rollback)

    # ------------------------------------------------------------------ in-memory units
    def _load_live(self) -> list[LiveUnit]:
        # With status time and last check-in: the status timers read them from memory too.
        query = select(*UNIT_STATE_COLUMNS, Unit.status_at, UnitBoard.checkin_at).outerjoin(
            UnitBoard, UnitBoard.unit_id == Unit.id
        )
        with self.sessions() as s:
            return [
                LiveUnit(
                    id=r.id,
                    unit_type=r.unit_type,
                    mode=r.mode,
                    station=r.station,
                    status=r.status,
                    capabilities=frozenset(r.capabilities or []),
                    lon=r.lon,
                    lat=r.lat,
                    position_at=r.position_at,
                    post_lon=r.post_lon,
                    post_lat=r.post_lat,
                    status_at=r.status_at,
                    checkin_at=r.checkin_at,
                )
                for r in s.execute(query)
            ]

    def _live_commit(self, session: Session) -> None:
        # Before the request is answered: a recommendation after it sees the change.
        staged = session.info.pop(self._live_key, None)
        if staged:
            self.live.apply_all(staged)

    def _live_rollback(self, session: Session) -> None:
        session.info.pop(self._live_key, None)

    # ------------------------------------------------------------------ plumbing
    @contextmanager
    def _write(self) -> Iterator[Session]:
        """A writing transaction that takes its locks in the one global order.

        The order is: the incident (``incident_dispatch`` row), then its units by id, then the
        audit chain, which is always appended last (the records queued by :meth:`_audit` are
        written when the block ends), so two writers never wait for each other in a cycle.  On
        SQLite the transaction takes the database write lock at once (``BEGIN IMMEDIATE``): the
        reads that decide a change then see the state it changes.
        """
        with writing(self.sessions) as session:
            yield session
            for entry in session.info.pop(_PENDING_AUDIT, []):
                append_audit(session, **entry)

    @staticmethod
    def _audit(session: Session, **entry: Any) -> None:
        """Queue an audit record (``append_audit`` arguments) for the end of the transaction."""
        session.info.setdefault(_PENDING_AUDIT, []).append(entry)

    def _emit(
        self,
        session: Session,
        actor: str,
        type_: str,
        *,
        incident_id: str | None = None,
        unit_id: str | None = None,
        station: str | None = None,
        data: dict[str, Any] | None = None,
        before: Any = None,
    ) -> None:
        """Record one change: a timeline row, an audit record and an event for the streams.

        Every change goes through here, so the audit has exactly one record per timeline event
        (action = event type; AVL fixes, which are no timeline events, are audited per batch).
        ``before`` is the changed object's state before the change, for the audit.
        """
        at = self.clock()
        payload: dict[str, Any] = to_jsonable(data or {})
        ev = DispatchEvent(
            at=at,
            type=type_,
            incident_id=incident_id,
            unit_id=unit_id,
            station=station,
            actor=actor,
            data=payload,
        )
        session.add(ev)
        session.flush()
        entity = type_.split(".", 1)[0]
        entity_id = {"incident": incident_id, "unit": unit_id}.get(entity)
        self._audit(
            session,
            actor=actor,
            action=type_,
            entity=entity,
            entity_id=entity_id if entity_id is not None else str(payload.get("id")),
            before=before,
            after=payload,
            at=at,
        )
        self._announce(
            session,
            self._event(
                actor,
                type_,
                incident_id=incident_id,
                unit_id=unit_id,
                station=station,
                data=payload,
                event_id=ev.id,
                at=at,
            ),
        )

    def _event(
        self,
        actor: str,
        type_: str,
        *,
        incident_id: str | None = None,
        unit_id: str | None = None,
        station: str | None = None,
        data: dict[str, Any] | None = None,
        event_id: int | None = None,
        at: datetime | None = None,
    ) -> dict[str, Any]:
        """An event as the streams and the in-memory units receive it."""
        return {
            "id": event_id,
            "type": type_,
            "at": (at or self.clock()).isoformat(),
            "incident_id": incident_id,
            "unit_id": unit_id,
            "station": station,
            "bureau": self.bureau_of.get(station or ""),
            "actor": actor,
            "data": to_jsonable(data or {}),
        }

    def _announce(self, session: Session, payload: dict[str, Any]) -> None:
        """Stage an :meth:`_event` for the streams and, when it commits, for this worker's
        in-memory units (AVL moves are announced only: their record is the history)."""
        self.sink.stage(session, payload)
        if payload["type"] in UNIT_EVENTS:
            session.info.setdefault(self._live_key, []).append(payload)

    def _require_write(self, who: Principal) -> None:
        if not who.can_write:
            raise PermissionDeniedError(f"role {who.role} may not change operational data")

    def _in_scope(self, who: Principal, station: str | None) -> bool:
        """Whether ``station`` (and its bureau) lies in ``who``'s scope."""
        return who.sees(self.bureau_of.get(station or ""), station)

    def _check_scope(self, who: Principal, station: str | None, what: str) -> None:
        if not self._in_scope(who, station):
            raise PermissionDeniedError(
                f"{what} belongs to station {station}, outside your scope ({who.scope or who.role})"
            )

    # ------------------------------------------------------------------ units
    def _unit_dict(self, u: Unit) -> dict[str, Any]:
        now = self.clock()
        view = self._unit_view(u, now)
        return {
            "id": u.id,
            "unit_type": u.unit_type,
            "mode": u.mode,
            "station": u.station,
            "shift": u.shift,
            "capabilities": list(u.capabilities or []),
            "status": u.status,
            "status_at": u.status_at,
            "incident_id": u.incident_id,
            "position": None
            if u.lon is None
            else {"lon": u.lon, "lat": u.lat, "at": u.position_at},
            "located": {"lon": view.lon, "lat": view.lat},
            "position_stale": view.position_stale,
        }

    def _unit_view(self, u: UnitState, now: datetime) -> UnitView:
        fresh = (
            u.position_at is not None
            and u.lon is not None
            and u.lat is not None
            and (now - u.position_at).total_seconds() <= self.config.stale_after_s
        )
        if fresh:
            lon, lat = float(u.lon), float(u.lat)  # type: ignore[arg-type]  # checked above
        elif u.post_lon is not None and u.post_lat is not None:
            lon, lat = u.post_lon, u.post_lat
        else:
            station = self.stations.get(u.station or "")
            lon, lat = (station.lon, station.lat) if station else (math.nan, math.nan)
        return UnitView(
            id=u.id,
            unit_type=u.unit_type,
            mode=u.mode,
            station=u.station,
            lon=lon,
            lat=lat,
            status=u.status,
            position_stale=not fresh,
            capabilities=frozenset(u.capabilities or []),
        )

    def _check_on_network(self, lon: float, lat: float, mode: str, field: str) -> None:
        """:class:`SnapError` naming ``field`` when no road of ``mode`` is within the pack's
        snapping distance: such a point could never be routed, and one unit there would make
        every recommendation fail."""
        try:
            self.router.snap((lon, lat), mode=parse_mode(mode))
        except SnapError as exc:
            raise SnapError(exc.message, field=field) from None

    def _validate_point(self, lon: float, lat: float, field: str) -> None:
        check_lonlat(lon, lat)
        if not self.pack.contains(lon, lat):
            raise ValidationError(
                f"point ({lon}, {lat}) is outside the city pack {self.pack.name}", field=field
            )

    def _get_unit(self, s: Session, unit_id: str) -> Unit:
        unit = s.get(Unit, unit_id)
        if unit is None:
            raise NotFoundError(f"no unit {unit_id!r}", field="unit_id")
        return unit

    def _check_unit_actor(self, who: Principal, unit: Unit) -> None:
        if who.role is Role.UNIT_DEVICE:
            if who.unit_id != unit.id:
                raise PermissionDeniedError(
                    f"this device speaks for unit {who.unit_id}, not {unit.id}"
                )
            return
        self._require_write(who)
        self._check_scope(who, unit.station, f"unit {unit.id}")

    # ------------------------------------------------------------------ incidents
    def _jurisdictions(self, lon: float, lat: float) -> dict[str, str | None]:
        located = self.pack.locate(lon, lat)
        return {level: located.get(level) for level in ("bureau", "station", "zone")}

    def _place_kinds(self, lon: float, lat: float) -> list[str]:
        hits = self._place_tree.query(shapely.Point(lon, lat), predicate="intersects")
        return sorted({self._places[int(i)].kind for i in hits})

    def _incident_dict(self, row: IncidentRow, d: IncidentDispatch) -> dict[str, Any]:
        return {
            "id": row.id,
            "category": row.category,
            "category_label": {
                "en": self.taxonomy.label(row.category, "en"),
                "zh": self.taxonomy.label(row.category, "zh"),
            },
            "priority": row.priority,
            "lon": row.lon,
            "lat": row.lat,
            "bureau": row.bureau,
            "station": row.station,
            "zone": row.zone,
            "place_kinds": list(d.place_kinds or []),
            "status": d.status,
            "status_at": d.status_at,
            "received_at": row.received_at,
            "dispatched_at": row.dispatched_at,
            "arrived_at": row.arrived_at,
            "cleared_at": row.cleared_at,
            "caller_notes": d.caller_notes,
            "created_by": d.created_by,
        }

    def _get_incident(
        self, s: Session, who: Principal, incident_id: str
    ) -> tuple[IncidentRow, IncidentDispatch]:
        found = s.execute(self._incident_query(incident_id)).first()
        if found is None:
            raise NotFoundError(f"no live incident {incident_id!r}", field="incident_id")
        if who.role is Role.UNIT_DEVICE:
            raise PermissionDeniedError("a unit device may only post its own position and status")
        self._check_scope(who, found[0].station, f"incident {incident_id}")
        return found[0], found[1]

    @staticmethod
    def _incident_query(incident_id: str) -> Select[IncidentRow, IncidentDispatch]:
        return (
            select(IncidentRow, IncidentDispatch)
            .join(IncidentDispatch, IncidentDispatch.incident_id == IncidentRow.id)
            .where(IncidentRow.id == incident_id)
        )

    def _lock_incident(self, s: Session, incident_id: str) -> tuple[IncidentRow, IncidentDispatch]:
        """Re-read an incident inside a writing transaction, locked until it ends.

        The first lock of the global order (see :meth:`_write`): every change that touches an
        incident and its units locks the incident before any unit.  Changes that follow a unit
        (first unit dispatched, en route, on scene) are decided on this fresh, locked state, so
        concurrent units never make each other fail.  (PostgreSQL takes the row lock; SQLite
        already holds the database write lock.)
        """
        found = s.execute(
            self._incident_query(incident_id)
            .with_for_update(of=IncidentDispatch, key_share=True)
            .execution_options(populate_existing=True)
        ).first()
        if found is None:
            raise NotFoundError(f"no live incident {incident_id!r}", field="incident_id")
        return found[0], found[1]

    @staticmethod
    def _lock_units(s: Session, *where: Any) -> list[Unit]:
        """The units matching ``where``, re-read and locked in id order (after any incident)."""
        query = (
            select(Unit)
            .where(*where)
            .order_by(Unit.id)
            .with_for_update(key_share=True)
            .execution_options(populate_existing=True)
        )
        return list(s.scalars(query))

    def _set_incident_status(
        self,
        s: Session,
        who: Principal,
        row: IncidentRow,
        state: IncidentDispatch,
        new: str,
        now: datetime,
    ) -> None:
        """Change the incident's status if it is still what was read (409 otherwise)."""
        old = state.status
        INCIDENT_LIFECYCLE.transition(old, new, now)
        won = s.execute(
            update(IncidentDispatch)
            .where(IncidentDispatch.incident_id == row.id, IncidentDispatch.status == old)
            .values(status=new, status_at=now)
        ).rowcount  # type: ignore[attr-defined]
        if won != 1:
            raise ConflictError(f"incident {row.id} changed concurrently; retry")
        s.refresh(state)
        if new == IncidentStatus.DISPATCHED and row.dispatched_at is None:
            row.dispatched_at = now
        elif new == IncidentStatus.ON_SCENE and row.arrived_at is None:
            row.arrived_at = now
        elif new in (IncidentStatus.CLEARED, IncidentStatus.CANCELLED):
            row.cleared_at = now
        self._emit(
            s,
            who.username,
            "incident.status",
            incident_id=row.id,
            station=row.station,
            data={"from": old, "to": new},
            before={"status": old},
        )

    def _emit_unit_status(
        self,
        s: Session,
        who: Principal,
        unit: Unit,
        incident_id: str | None,
        old: str,
        new: str,
        now: datetime,
    ) -> dict[str, Any]:
        """Record a unit's status change (timeline, audit, streams); the change as returned."""
        out = {"unit_id": unit.id, "from": old, "to": new, "at": now, "incident_id": incident_id}
        self._emit(
            s,
            who.username,
            "unit.status",
            unit_id=unit.id,
            incident_id=incident_id,
            station=unit.station,
            data=out,
            before={"status": old},
        )
        return out

    def _end_assignment(
        self, s: Session, who: Principal, unit: Unit, outcome: str, now: datetime
    ) -> None:
        """Close the unit's open assignment (if any) with ``outcome``, recorded and audited."""
        a = s.scalar(select(Assignment).where(Assignment.unit_id == unit.id, Assignment.active))
        if a is None:
            return
        a.active, a.ended_at, a.outcome = False, now, outcome
        self._emit(
            s,
            who.username,
            "assignment.ended",
            incident_id=a.incident_id,
            unit_id=unit.id,
            station=unit.station,
            data={"id": a.id, "unit_id": unit.id, "outcome": outcome, "ended_at": now},
            before={"active": True},
        )
