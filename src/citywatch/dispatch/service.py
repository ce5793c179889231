"""The live dispatch service: incidents, units, positions, assignments, with persistence.

No HTTP here (the FastAPI routes in :mod:`citywatch.api` are thin wrappers), and the database
is the one truth shared by worker processes: every method opens its own transaction, and every
change is written to the ``dispatch_events`` timeline, to the audit chain and to the event sink
(which reaches WebSocket clients of every worker) in that same transaction.  Each worker keeps a
copy of the units in memory for recommendations (:mod:`citywatch.dispatch.live`), kept current
by those same committed changes; every decision that writes reads the locked rows.

Races are settled by the database, identically on SQLite and PostgreSQL: status changes are
conditional ``UPDATE ... WHERE status = <expected>`` statements whose row count says whether this
caller won, and a partial unique index allows one open assignment per unit.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from citywatch.dispatch.accounts import Principal, Role
from citywatch.dispatch.board import BoardService
from citywatch.dispatch.core import (
    ACTIVE_INCIDENT,
    MAX_BACKDATE_S,
    DispatchConfig,
    EventSink,
    as_utc,
    check_time_window,
)
from citywatch.dispatch.kpis import RESPONSE_TARGETS_S, compute_kpis
from citywatch.dispatch.lifecycle import (
    INCIDENT_LIFECYCLE,
    UNIT_LIFECYCLE,
    IncidentStatus,
    UnitStatus,
)
from citywatch.dispatch.numbering import open_console
from citywatch.dispatch.policy import (
    IncidentView,
    Recommendation,
    UnitView,
    make_policy,
    recommend,
)
from citywatch.domain import PRIORITY_RANGE
from citywatch.errors import ConflictError, NotFoundError, PermissionDeniedError, ValidationError
from citywatch.store.dispatch_models import (
    Assignment,
    DispatchEvent,
    IncidentDispatch,
    Unit,
)
from citywatch.store.models import IncidentRow

__all__ = ["DispatchConfig", "DispatchService", "EventSink", "IncidentHook"]

#: Called inside the transaction that records a new incident, after its own event, with
#: ``(session, who, incident dict, emit)``; ``emit`` records a further change like the
#: service's own (timeline, audit, event stream).  The near-repeat advisories use it.
IncidentHook = Callable[[Session, Principal, dict[str, Any], Callable[..., None]], None]

#: What a recommendation reads of its incident: one row of plain columns.
_INCIDENT_FACTS = (
    select(
        IncidentRow.id,
        IncidentRow.category,
        IncidentRow.priority,
        IncidentRow.lon,
        IncidentRow.lat,
        IncidentRow.station,
        IncidentDispatch.status,
        IncidentDispatch.place_kinds,
    )
    .join(IncidentDispatch, IncidentDispatch.incident_id == IncidentRow.id)
    .where(IncidentRow.id == bindparam("id"))
)


class DispatchService(BoardService):
    """Incidents, units, AVL positions, recommendations and assignments over one city pack.

    Parameters
    ----------
    sessions : sessionmaker
        Sessions on the migrated database.
    pack : citywatch.city.CityPack
        The city: jurisdictions, stations, places.
    router : citywatch.routing.Router
        Road travel times of the pack.
    sink : EventSink
        Announces committed changes.
    config : DispatchConfig, optional
    rules : RequirementRules, optional
        Dispatch requirement rules (bundled by default).
    taxonomy : Taxonomy, optional
        Incident categories (bundled by default).
    console : ConsoleConfig, optional
        The console's numbers (default: the bundled ``console.toml``, read when the service is
        made and checked against ``taxonomy``).
    clock : callable, optional
        Returns the current UTC time (tests pass a fixed clock).
    """

    #: Run when an incident is created (see :data:`IncidentHook`); set by the API at start-up.
    incident_hooks: tuple[IncidentHook, ...] = ()

    def create_incident(
        self,
        who: Principal,
        *,
        category: str,
        lon: float,
        lat: float,
        priority: int | None = None,
        caller_notes: str | None = None,
        received_at: datetime | None = None,
        idempotency_key: str | None = None,
        request_hash: str | None = None,
        location_text: str | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """Take a call.  Returns the incident and whether it was created now (``False`` when an
        earlier request with the same Idempotency-Key created it).

        The incident gets its number (``MAN-2026-000123``) and first caller record in the same
        transaction (:func:`citywatch.dispatch.numbering.open_console`)."""
        self._require_write(who)
        if idempotency_key is not None:
            existing = self._by_idempotency_key(who, idempotency_key, request_hash)
            if existing is not None:
                return existing, False
        if category not in self.taxonomy.categories:
            raise ValidationError(
                f"unknown category {category!r} (see the incident taxonomy)", field="category"
            )
        if priority is None:
            priority = self.taxonomy.priority(category)
        if not PRIORITY_RANGE[0] <= priority <= PRIORITY_RANGE[1]:
            raise ValidationError(
                "priority must be {} (highest) to {}".format(*PRIORITY_RANGE), field="priority"
            )
        self._validate_point(lon, lat, field="location")
        # Cars have the fewest usable roads: an incident they can reach, every mode can.
        self._check_on_network(lon, lat, "car", field="location")
        where = self._jurisdictions(lon, lat)
        self._check_scope(who, where["station"], "the incident location")
        now = self.clock()
        received = now
        if received_at is not None:
            received = check_time_window(
                received_at, now, max_age_s=MAX_BACKDATE_S, field="received_at"
            )
        source_id = uuid.uuid4().hex
        row = IncidentRow(
            id=f"live:{source_id}",
            source="live",
            source_id=source_id,
            received_at=received,
            time_precision="exact",
            category=category,
            priority=priority,
            lon=lon,
            lat=lat,
            **where,
        )
        state = IncidentDispatch(
            incident_id=row.id,
            status=IncidentStatus.RECEIVED,
            status_at=now,
            idempotency_key=idempotency_key,
            request_hash=request_hash,
            created_by=who.username,
            caller_notes=caller_notes,
            place_kinds=self._place_kinds(lon, lat),
        )
        try:
            with self._write() as s:
                s.add(row)
                s.flush()
                s.add(state)
                s.flush()
                out = self._incident_dict(row, state)
                out |= open_console(
                    s,
                    row,
                    pack=self.pack.name,
                    timezone=self.pack.timezone,
                    config=self.console,
                    taken_by=who.username,
                    caller_notes=caller_notes,
                    location_text=location_text,
                )
                self._emit(
                    s,
                    who.username,
                    "incident.created",
                    incident_id=row.id,
                    station=row.station,
                    data=out,
                )
                for hook in self.incident_hooks:
                    hook(s, who, out, self._emit)
        except IntegrityError:
            # Two retries with one key raced: the loser answers with the winner's incident.
            if idempotency_key is None:
                raise
            existing = self._by_idempotency_key(who, idempotency_key, request_hash)
            if existing is None:
                raise
            return existing, False
        return out, True

    def _by_idempotency_key(
        self, who: Principal, key: str, request_hash: str | None
    ) -> dict[str, Any] | None:
        with self.sessions() as s:
            found = s.execute(
                select(IncidentRow, IncidentDispatch)
                .join(IncidentDispatch, IncidentDispatch.incident_id == IncidentRow.id)
                .where(
                    IncidentDispatch.created_by == who.username,
                    IncidentDispatch.idempotency_key == key,
                )
            ).first()
            if found is None:
                return None
            row, state = found
            if state.request_hash != request_hash:
                raise ConflictError(
                    "this Idempotency-Key was already used with a different request",
                    field="Idempotency-Key",
                )
            self._check_scope(who, row.station, f"incident {row.id}")
            return self._incident_dict(row, state)

    def list_incidents(
        self, who: Principal, *, status: str | None = None, limit: int = 200
    ) -> list[dict[str, Any]]:
        """Live incidents in the caller's scope, newest first."""
        if who.role is Role.UNIT_DEVICE:
            raise PermissionDeniedError("a unit device may only post its own position and status")
        query = (
            select(IncidentRow, IncidentDispatch)
            .join(IncidentDispatch, IncidentDispatch.incident_id == IncidentRow.id)
            .order_by(IncidentRow.received_at.desc())
        )
        if status is not None:
            query = query.where(IncidentDispatch.status == INCIDENT_LIFECYCLE.parse(status))
        if who.role is Role.STATION_OFFICER:
            query = query.where(
                (IncidentRow.station == who.scope) | (IncidentRow.bureau == who.scope)
            )
        with self.sessions() as s:
            return [self._incident_dict(r, d) for r, d in s.execute(query.limit(limit))]

    def get_incident(self, who: Principal, incident_id: str) -> dict[str, Any]:
        """One incident with its assignments and timeline."""
        with self.sessions() as s:
            row, state = self._get_incident(s, who, incident_id)
            out = self._incident_dict(row, state)
            out["assignments"] = [
                {
                    "id": a.id,
                    "unit_id": a.unit_id,
                    "assigned_by": a.assigned_by,
                    "assigned_at": a.assigned_at,
                    "eta_s": a.eta_s,
                    "metres": a.metres,
                    "en_route_at": a.en_route_at,
                    "on_scene_at": a.on_scene_at,
                    "ended_at": a.ended_at,
                    "outcome": a.outcome,
                    "active": a.active,
                }
                for a in s.scalars(
                    select(Assignment)
                    .where(Assignment.incident_id == incident_id)
                    .order_by(Assignment.id)
                )
            ]
            out["timeline"] = [
                {"at": e.at, "type": e.type, "unit_id": e.unit_id, "actor": e.actor, "data": e.data}
                for e in s.scalars(
                    select(DispatchEvent)
                    .where(DispatchEvent.incident_id == incident_id)
                    .order_by(DispatchEvent.id)
                )
            ]
            return out

    def recommend(
        self,
        who: Principal,
        incident_id: str,
        *,
        k: int = 5,
        policy: str = "nearest",
        threshold_s: float | None = None,
        limit_s: float | None = None,
    ) -> Recommendation:
        """Rank every available unit of every station by road travel time to the incident."""
        if limit_s is not None and not limit_s > 0:
            raise ValidationError("limit_s must be positive", field="limit_s")
        threshold = threshold_s or self.config.station_first_threshold_s
        chosen = make_policy(policy, threshold_s=threshold, limit_s=limit_s)
        # One row of plain columns (no ORM objects), then the units from this worker's memory.
        # Autocommit: one statement needs no transaction, so the read is one round trip to the
        # database instead of three (BEGIN, SELECT, and the ROLLBACK when the pool takes the
        # connection back), each a wait for the database process on a loaded machine.
        engine = self.sessions.kw["bind"]
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            row = conn.execute(_INCIDENT_FACTS, {"id": incident_id}).first()
        if row is None:
            raise NotFoundError(f"no live incident {incident_id!r}", field="incident_id")
        if who.role is Role.UNIT_DEVICE:
            raise PermissionDeniedError("a unit device may only post its own position and status")
        self._check_scope(who, row.station, f"incident {incident_id}")
        if row.status not in ACTIVE_INCIDENT:
            raise ConflictError(f"incident {incident_id} is {row.status}: nothing to dispatch")
        fleet = self.live.fleet(self.clock())
        view = IncidentView(
            id=row.id,
            category=row.category,
            priority=row.priority,
            lon=math.nan if row.lon is None else row.lon,
            lat=math.nan if row.lat is None else row.lat,
            station=row.station,
            place_kinds=frozenset(row.place_kinds or []),
        )
        return recommend(view, fleet, self._travel, chosen, k=k, rules=self.rules)

    def recommend_at(
        self,
        lon: float,
        lat: float,
        *,
        category: str,
        priority: int | None = None,
        station: str | None = None,
        k: int = 3,
        ref: str = "point",
        policy: str = "nearest",
        place_kinds: frozenset[str] = frozenset(),
    ) -> Recommendation:
        """Rank the available units for a point that is no incident yet (a call being taken,
        a hotlist alert of :mod:`citywatch.surveillance.alerts`): the same policies,
        requirement rules, travel times and in-memory units as :meth:`recommend`."""
        chosen = make_policy(policy, threshold_s=self.config.station_first_threshold_s)
        fleet = self.live.fleet(self.clock())  # this worker's in-memory units, as recommend()
        view = IncidentView(
            id=ref,
            category=category,
            priority=priority,
            lon=lon,
            lat=lat,
            station=station,
            place_kinds=place_kinds,
        )
        return recommend(view, fleet, self._travel, chosen, k=k, rules=self.rules)

    # ------------------------------------------------------------------ assignment and lifecycles
    def assign(self, who: Principal, incident_id: str, unit_id: str) -> dict[str, Any]:
        """Send a unit to an incident, atomically: of concurrent callers exactly one wins.

        Locks the incident, then the unit (the global lock order of :meth:`_write`), and decides
        on their locked, fresh state.
        """
        self._require_write(who)
        now = self.clock()
        with self._write() as s:
            self._get_incident(s, who, incident_id)
            row, state = self._lock_incident(s, incident_id)
            if state.status not in ACTIVE_INCIDENT:
                raise ConflictError(
                    f"incident {incident_id} is {state.status}: it cannot take units"
                )
            locked = self._lock_units(s, Unit.id == unit_id)
            if not locked:
                raise NotFoundError(f"no unit {unit_id!r}", field="unit_id")
            return self._assign_locked(s, who, row, state, locked[0], now)

    def assign_many(
        self,
        who: Principal,
        incident_id: str,
        unit_ids: Sequence[str],
        *,
        details: Sequence[dict[str, Any]] | None = None,
    ) -> list[dict[str, Any]]:
        """Send several units to one incident in one transaction: all of them or none.

        Every unit goes through the same lifecycle code as :meth:`assign` (one
        ``assignment.created`` event, timeline row and audit record each); ``details[i]`` (for
        example a pursuit checkpoint) is kept in unit ``i``'s assignment event.  If any unit is
        unknown or not available, nothing is assigned and :class:`ConflictError` (404 for an
        unknown unit) carries a result per unit in ``details``.
        """
        self._require_write(who)
        ids = list(unit_ids)
        if not ids or len(set(ids)) != len(ids):
            raise ValidationError("give one or more distinct unit ids", field="unit_ids")
        if details is not None and len(details) != len(ids):
            raise ValidationError("one detail per unit", field="details")
        now = self.clock()
        with self._write() as s:
            self._get_incident(s, who, incident_id)
            row, state = self._lock_incident(s, incident_id)
            if state.status not in ACTIVE_INCIDENT:
                raise ConflictError(
                    f"incident {incident_id} is {state.status}: it cannot take units"
                )
            locked = {u.id: u for u in self._lock_units(s, Unit.id.in_(ids))}
            results: list[dict[str, Any]] = []
            for uid in ids:
                u = locked.get(uid)
                if u is None:
                    results.append({"unit_id": uid, "result": "refused", "reason": "not_found"})
                elif u.status != UnitStatus.AVAILABLE:
                    results.append(
                        {"unit_id": uid, "result": "refused", "reason": f"unit is {u.status}"}
                    )
                else:
                    results.append({"unit_id": uid, "result": "not_applied", "reason": None})
            refused = [r for r in results if r["result"] == "refused"]
            if refused:
                names = ", ".join(f"{r['unit_id']} ({r['reason']})" for r in refused)
                raise ConflictError(
                    f"nothing assigned: {len(refused)} of {len(ids)} units refused: {names}",
                    field="unit_ids",
                    details=results,
                )
            return [
                self._assign_locked(
                    s, who, row, state, locked[uid], now, None if details is None else details[i]
                )
                for i, uid in enumerate(ids)
            ]

    def _assign_locked(
        self,
        s: Session,
        who: Principal,
        row: IncidentRow,
        state: IncidentDispatch,
        unit: Unit,
        now: datetime,
        detail: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Assign a locked unit to a locked incident (the one lifecycle path of assignments)."""
        incident_id, unit_id = row.id, unit.id
        if unit.status != UnitStatus.AVAILABLE:
            busy = f" on incident {unit.incident_id}" if unit.incident_id else ""
            raise ConflictError(
                f"unit {unit_id} is {unit.status}{busy}, not available", field="unit_id"
            )
        UNIT_LIFECYCLE.transition(unit.status, UnitStatus.DISPATCHED, now)
        view = self._unit_view(unit, now)
        unit.status, unit.status_at, unit.incident_id = UnitStatus.DISPATCHED, now, incident_id
        eta, metres = self._eta(view, row)
        a = Assignment(
            incident_id=incident_id,
            unit_id=unit_id,
            assigned_by=who.username,
            assigned_at=now,
            eta_s=eta,
            metres=metres,
            active=True,
        )
        s.add(a)
        s.flush()
        if state.status == IncidentStatus.RECEIVED:
            self._set_incident_status(s, who, row, state, IncidentStatus.DISPATCHED, now)
        out: dict[str, Any] = {
            "id": a.id,
            "incident_id": incident_id,
            "unit_id": unit_id,
            "assigned_at": now,
            "assigned_by": who.username,
            "eta_s": a.eta_s,
            "metres": a.metres,
        }
        if detail is not None:
            out["detail"] = detail
        self._emit(
            s,
            who.username,
            "assignment.created",
            incident_id=incident_id,
            unit_id=unit_id,
            station=row.station,
            data=out,
            before={"unit_status": UnitStatus.AVAILABLE.value},
        )
        return out

    def _eta(self, unit: UnitView, row: IncidentRow) -> tuple[float | None, float | None]:
        """Road travel time and distance of one unit to the incident, kept on the assignment."""
        if not math.isfinite(unit.lon) or row.lon is None or row.lat is None:
            return None, None
        seconds, metres = self._travel(
            np.array([[unit.lon, unit.lat]]), unit.mode, (row.lon, row.lat), None
        )
        if not math.isfinite(seconds[0]):
            return None, None
        return float(seconds[0]), float(metres[0])

    def set_incident_status(self, who: Principal, incident_id: str, status: str) -> dict[str, Any]:
        """Move an incident along its lifecycle.  Clearing or cancelling it releases its units:
        those on scene start returning, those still on the way become available.

        Locks the incident, then its units in id order (the global lock order of
        :meth:`_write`): a unit changing status meanwhile waits, or has already changed and is
        released from its latest state, never overwritten from a stale one.
        """
        self._require_write(who)
        status = INCIDENT_LIFECYCLE.parse(status)
        now = self.clock()
        with self._write() as s:
            self._get_incident(s, who, incident_id)
            row, state = self._lock_incident(s, incident_id)
            held = self._lock_units(s, Unit.incident_id == incident_id)
            old = state.status
            self._set_incident_status(s, who, row, state, INCIDENT_LIFECYCLE.parse(status), now)
            if status in (IncidentStatus.CLEARED, IncidentStatus.CANCELLED):
                outcome = "completed" if status == IncidentStatus.CLEARED else "incident_cancelled"
                for unit in held:
                    self._release_unit(s, who, unit, incident_id, outcome, now)
            out = self._incident_dict(row, state)
        return {"incident_id": incident_id, "from": old, "to": status, "incident": out}

    def _release_unit(
        self, s: Session, who: Principal, unit: Unit, incident_id: str, outcome: str, now: datetime
    ) -> None:
        """Free a locked unit of a closed incident: on scene it returns, else it is available."""
        before = unit.status
        nxt = UnitStatus.RETURNING if before == UnitStatus.ON_SCENE else UnitStatus.AVAILABLE
        UNIT_LIFECYCLE.transition(before, nxt, now)
        self._end_assignment(s, who, unit, outcome, now)
        unit.status, unit.status_at, unit.incident_id = nxt, now, None
        self._emit_unit_status(s, who, unit, incident_id, before, nxt, now)

    # ------------------------------------------------------------------ KPIs
    def kpis(
        self,
        who: Principal,
        *,
        start: datetime,
        end: datetime,
        by: str = "none",
        thresholds_s: tuple[float, ...] = RESPONSE_TARGETS_S,
    ) -> dict[str, Any]:
        """Response-time KPIs of live incidents received in ``[start, end)``, and unit coverage.

        Unit coverage is current: available units per station, and units on the street (every
        status but out of service) per km² of each station's area and of the whole city.
        """
        if who.role is Role.UNIT_DEVICE:
            raise PermissionDeniedError("a unit device may only post its own position and status")
        start, end = as_utc(start, "from"), as_utc(end, "to")
        if not start < end:
            raise ValidationError("'from' must be before 'to'", field="from")
        query = (
            select(
                IncidentRow.received_at,
                IncidentRow.dispatched_at,
                IncidentRow.arrived_at,
                IncidentRow.station,
                IncidentRow.zone,
                IncidentRow.bureau,
                IncidentDispatch.status,
            )
            .join(IncidentDispatch, IncidentDispatch.incident_id == IncidentRow.id)
            .where(IncidentRow.received_at >= start, IncidentRow.received_at < end)
        )
        if who.role is Role.STATION_OFFICER:
            query = query.where(
                (IncidentRow.station == who.scope) | (IncidentRow.bureau == who.scope)
            )
        columns = [
            "received_at",
            "dispatched_at",
            "arrived_at",
            "station",
            "zone",
            "bureau",
            "status",
        ]
        with self.sessions() as s:
            frame = pd.DataFrame(s.execute(query).all(), columns=columns)
            units = [(u.station, u.status) for u in s.scalars(select(Unit))]
        for col in ("received_at", "dispatched_at", "arrived_at"):
            frame[col] = pd.to_datetime(frame[col], utc=True)
        groups = compute_kpis(frame, by, timezone=self.pack.timezone, thresholds_s=thresholds_s)
        return {
            "from": start,
            "to": end,
            "by": by,
            "thresholds_s": list(thresholds_s),
            "groups": groups,
            "units": self._coverage(who, units),
        }

    def _coverage(self, who: Principal, units: list[tuple[str | None, str]]) -> dict[str, Any]:
        per_station: dict[str, dict[str, Any]] = {}
        for sid, station in self.stations.items():
            if self._in_scope(who, sid):
                per_station[sid] = {
                    "available": 0,
                    "on_street": 0,
                    "area_km2": self.pack.area_km2(station.jurisdiction),
                }
        for home, status in units:
            if home in per_station:
                per_station[home]["available"] += status == UnitStatus.AVAILABLE
                per_station[home]["on_street"] += status != UnitStatus.OUT_OF_SERVICE
        for row in per_station.values():
            row["on_street_per_km2"] = (
                row["on_street"] / row["area_km2"] if row["area_km2"] > 0 else None
            )
        on_street = sum(r["on_street"] for r in per_station.values())
        area = sum(r["area_km2"] for r in per_station.values())
        return {
            "available": sum(r["available"] for r in per_station.values()),
            "on_street": on_street,
            "on_street_per_km2": on_street / area if area > 0 else None,
            "by_station": per_station,
        }
