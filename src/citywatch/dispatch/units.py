"""Units of the live dispatch service: registration, AVL positions, status lifecycle."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import numpy as np
import psycopg
from sqlalchemy import select
from sqlalchemy.orm import Session

from citywatch.dispatch.accounts import Principal, Role
from citywatch.dispatch.core import ServiceCore
from citywatch.dispatch.lifecycle import UNIT_ASSIGNED, UNIT_LIFECYCLE, IncidentStatus, UnitStatus
from citywatch.dispatch.positions import (
    Fix,
    FixOutcome,
    FixWrite,
    check_fix_time,
    insert_fixes,
    maintain_partitions,
    move_units,
    newest_fixes,
    seal_positions,
    write_fixes_pg,
    write_fixes_pg_async,
)
from citywatch.errors import (
    CityWatchError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    ValidationError,
)
from citywatch.store.db import libpq_url
from citywatch.store.dispatch_models import Assignment, Unit

__all__ = ["UnitService"]

#: Incident statuses with units on the way but none on scene yet.
_BEFORE_ARRIVAL = (IncidentStatus.DISPATCHED, IncidentStatus.EN_ROUTE)

#: Tries of a write whose locks found the unit re-assigned meanwhile (each try is short).
_LOCK_ATTEMPTS = 5
_T = TypeVar("_T")
_UNIT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")


@dataclass(slots=True)
class _FixPlan:
    """Fixes validated for one transaction: the refused ones' outcomes (``None`` for the
    valid), the valid ones with their index, their write, and the event of each move they may
    make (by ``id`` of the fix)."""

    outcomes: list[FixOutcome | None]
    valid: list[tuple[int, Fix]] = field(default_factory=list)
    write: FixWrite | None = None
    events: dict[int, dict[str, Any]] = field(default_factory=dict)

    def outcomes_with(self, moved: list[Fix]) -> list[FixOutcome]:
        """Every item's outcome, the valid ones stored (and applied when in ``moved``)."""
        applied = {id(f) for f in moved}  # the very fixes of ``valid``
        for i, fix in self.valid:
            self.outcomes[i] = FixOutcome(i, fix.unit_id, stored=True, applied=id(fix) in applied)
        return [o for o in self.outcomes if o is not None]


class UnitService(ServiceCore):
    """Units: registration, AVL positions and the status lifecycle."""

    #: The event loop's writer connection of :meth:`record_fixes_async` (made on first use).
    _writer_conn: psycopg.AsyncConnection[Any] | None = None

    def create_unit(
        self,
        who: Principal,
        *,
        id: str,
        unit_type: str,
        station: str,
        shift: str | None = None,
        capabilities: list[str] | None = None,
        post: tuple[float, float] | None = None,
    ) -> dict[str, Any]:
        """Register a unit (available, located at its post or station until its first position)."""
        self._require_write(who)
        if not _UNIT_ID.match(id):
            raise ValidationError("unit id must be 1-64 letters, digits or _.:-", field="id")
        mode = self.rules.mode_of(unit_type)
        if station not in self.stations:
            raise ValidationError(
                f"unknown station {station!r} in pack {self.pack.name}", field="station"
            )
        self._check_scope(who, station, f"unit {id}")
        if post is not None:
            self._validate_point(*post, field="post")
            self._check_on_network(*post, mode, field="post")
        now = self.clock()
        with self._write() as s:
            if s.get(Unit, id) is not None:
                raise ConflictError(f"unit {id!r} already exists", field="id")
            unit = Unit(
                id=id,
                unit_type=unit_type,
                mode=mode,
                station=station,
                shift=shift,
                capabilities=sorted(set(capabilities or [])),
                status=UnitStatus.AVAILABLE,
                status_at=now,
                post_lon=post[0] if post else None,
                post_lat=post[1] if post else None,
                created_at=now,
            )
            s.add(unit)
            s.flush()
            out = self._unit_dict(unit)
            self._emit(s, who.username, "unit.created", unit_id=id, station=station, data=out)
        return out

    def list_units(
        self, who: Principal, *, status: str | None = None, station: str | None = None
    ) -> list[dict[str, Any]]:
        """Units in the caller's scope, optionally filtered by status and station."""
        if who.role is Role.UNIT_DEVICE:
            raise PermissionDeniedError("a unit device may not list units")
        query = select(Unit).order_by(Unit.id)
        if status is not None:
            query = query.where(Unit.status == UNIT_LIFECYCLE.parse(status))
        if station is not None:
            query = query.where(Unit.station == station)
        with self.sessions() as s:
            return [self._unit_dict(u) for u in s.scalars(query) if self._in_scope(who, u.station)]

    def get_unit(self, who: Principal, unit_id: str) -> dict[str, Any]:
        """One unit (its own unit for a device, units of its scope for a station officer)."""
        with self.sessions() as s:
            unit = self._get_unit(s, unit_id)
            if not (who.role is Role.UNIT_DEVICE and who.unit_id == unit_id):
                self._check_scope(who, unit.station, f"unit {unit_id}")
            return self._unit_dict(unit)

    def update_position(
        self, who: Principal, unit_id: str, lon: float, lat: float, at: datetime
    ) -> dict[str, Any]:
        """Record one AVL position (a batch of one, see :meth:`record_positions`); a position
        older than the unit's current one is kept in the history but does not move the unit
        (``applied`` is then false).  Raises the error that refused the fix."""
        fix = Fix(unit_id, lon, lat, at)
        (outcome,) = self.record_fixes([(who, fix)])
        return self.position_answer(fix, outcome)

    @staticmethod
    def position_answer(fix: Fix, outcome: FixOutcome) -> dict[str, Any]:
        """The answer to a single ``PUT .../position`` of ``fix``; raises its error."""
        if outcome.error is not None:
            raise outcome.error
        at = fix.at.astimezone(UTC)  # valid, so within years 1900-2199
        return {
            "unit_id": fix.unit_id,
            "applied": outcome.applied,
            "lon": fix.lon,
            "lat": fix.lat,
            "at": at,
        }

    def record_positions(self, who: Principal, fixes: Sequence[Fix]) -> dict[str, Any]:
        """Validate AVL fixes one by one and store the valid ones in bulk (one transaction).

        Returns ``batch_id`` (``None`` when no fix was valid), the counts ``stored``,
        ``applied`` and ``refused``, and ``results``: a :class:`FixOutcome` per fix in order,
        with the error a single PUT of that fix would have raised.
        """
        batch_ids: list[int] = []
        results = self.record_fixes([(who, f) for f in fixes], batch_ids)
        stored = sum(o.stored for o in results)
        return {
            "batch_id": batch_ids[0] if batch_ids else None,
            "stored": stored,
            "applied": sum(o.applied for o in results),
            "refused": len(results) - stored,
            "results": results,
        }

    def record_fixes(
        self, items: Sequence[tuple[Principal, Fix]], batch_ids: list[int] | None = None
    ) -> list[FixOutcome]:
        """Validate fixes of possibly different callers (each checked against its own caller)
        and store the valid ones in one transaction: one position batch per caller, the units
        moved by their newest fix, and the moves' events.  One :class:`FixOutcome` per item,
        in order; the ids of the batches written are appended to ``batch_ids``.

        On PostgreSQL the transaction is one statement
        (:func:`~citywatch.dispatch.positions.write_fixes_pg`) and the moves are published
        after it; otherwise a session, which stages them.
        """
        plan = self._plan_fixes(items)
        moved: list[Fix] = []
        if plan.write is not None:
            if self._postgres:
                with self._autocommit.connect() as conn:
                    ids, moved = write_fixes_pg(conn, plan.write)
                self._apply_moves(plan, moved)
            else:
                ids, moved = self._store_in_session(plan)
            if batch_ids is not None:
                batch_ids.extend(ids)
        return plan.outcomes_with(moved)

    async def record_fixes_async(self, items: Sequence[tuple[Principal, Fix]]) -> list[FixOutcome]:
        """:meth:`record_fixes` for the event loop (the group commit of single PUTs, see
        :class:`~citywatch.dispatch.positions.FixQueue`): the one statement is awaited on this
        worker's writer connection; elsewhere (SQLite) :meth:`record_fixes` runs in a thread."""
        if not self._postgres:
            return await asyncio.to_thread(self.record_fixes, items)
        plan = self._plan_fixes(items)
        moved: list[Fix] = []
        if plan.write is not None:
            _, moved = await write_fixes_pg_async(await self._writer(), plan.write)
            self._apply_moves(plan, moved)
        return plan.outcomes_with(moved)

    async def close_writer(self) -> None:
        """Close the writer connection of :meth:`record_fixes_async` (at shutdown)."""
        conn, self._writer_conn = self._writer_conn, None
        if conn is not None:
            await conn.close()

    async def _writer(self) -> psycopg.AsyncConnection[Any]:
        """The worker's writer connection (one statement per transaction: autocommit), made
        anew after it was lost."""
        conn = self._writer_conn
        if conn is None or conn.broken or conn.closed:
            url = libpq_url(self.sessions.kw["bind"])
            conn = await psycopg.AsyncConnection.connect(url, autocommit=True)
            self._writer_conn = conn
        return conn

    def _plan_fixes(self, items: Sequence[tuple[Principal, Fix]]) -> _FixPlan:
        """Validate the fixes; the refused ones get their outcome, the valid ones their write
        and the events of the moves they may make."""
        now = self.clock()
        plan = _FixPlan([None] * len(items))
        units = self._fix_units({f.unit_id for _, f in items})
        for i, (who, fix) in enumerate(items):
            try:
                plan.valid.append((i, self._check_fix(who, fix, units.get(fix.unit_id), now)))
            except CityWatchError as exc:
                plan.outcomes[i] = FixOutcome(i, fix.unit_id, error=exc)
        plan.valid = self._check_fixes_on_network(plan.valid, units, plan.outcomes)
        if not plan.valid:
            return plan
        groups: dict[str, list[Fix]] = {}
        actor_of: dict[int, str] = {}
        for i, fix in plan.valid:
            groups.setdefault(items[i][0].username, []).append(fix)
            actor_of[id(fix)] = items[i][0].username
        newest = newest_fixes([f for _, f in plan.valid])
        for f in newest:
            data = {"lon": f.lon, "lat": f.lat, "at": f.at.isoformat()}
            station = units[f.unit_id].station
            plan.events[id(f)] = self._event(
                actor_of[id(f)], "unit.moved", unit_id=f.unit_id, station=station, data=data
            )
        plan.write = FixWrite(list(groups.items()), newest, now)
        return plan

    def _apply_moves(self, plan: _FixPlan, moved: list[Fix]) -> None:
        # Committed outside a session: to this worker's units before the answer, then out.
        events = [plan.events[id(f)] for f in moved]
        self.live.apply_all(events)
        self.sink.publish(events)

    def _store_in_session(self, plan: _FixPlan) -> tuple[list[int], list[Fix]]:
        """The plan's write in a session, its moves' events staged in it."""
        write = plan.write
        assert write is not None
        with self._write() as s:
            ids = [insert_fixes(s, actor, group, write.now) for actor, group in write.groups]
            moved = move_units(s, write.newest)
            for f in moved:
                self._announce(s, plan.events[id(f)])
        return ids, moved

    def _fix_units(self, ids: set[str]) -> dict[str, Any]:
        """The units of ``ids`` that exist (id, mode, station: set at registration, never
        changed), from this worker's memory; those it does not know yet (registered by
        another worker a moment ago) from the database."""
        units: dict[str, Any] = {}
        for uid in ids:
            unit = self.live.get(uid)
            if unit is not None:
                units[uid] = unit
        unknown = sorted(ids - units.keys())
        if unknown:
            query = select(Unit.id, Unit.mode, Unit.station).where(Unit.id.in_(unknown))
            with self.sessions() as s:
                units.update((u.id, u) for u in s.execute(query))
        return units

    def seal_positions(self) -> int:
        """Seal the stored, unsealed position batches into the audit chain (see
        :func:`citywatch.dispatch.positions.seal_positions`); the number of batches sealed."""
        with self._write() as s:
            return seal_positions(s)

    def maintain_history(self, retention_days: int) -> list[str]:
        """Make the history's partitions ahead, drop those past the retention (PostgreSQL)."""
        engine = self.sessions.kw["bind"]
        return maintain_partitions(engine, self.clock(), retention_days)

    def _check_fix(self, who: Principal, fix: Fix, unit: Any, now: datetime) -> Fix:
        """The fix in UTC if it passes every check of a single PUT but the road snap."""
        if unit is None:
            raise NotFoundError(f"no unit {fix.unit_id!r}", field="unit_id")
        self._check_unit_actor(who, unit)
        self._validate_point(fix.lon, fix.lat, field="lon")
        return Fix(fix.unit_id, fix.lon, fix.lat, check_fix_time(fix.at, now))

    def _check_fixes_on_network(
        self, valid: list[tuple[int, Fix]], units: dict[str, Any], outcomes: list[FixOutcome | None]
    ) -> list[tuple[int, Fix]]:
        """The fixes near a road of their unit's mode (snapped per mode, vectorised)."""
        kept: list[tuple[int, Fix]] = []
        for mode in sorted({units[f.unit_id].mode for _, f in valid}):
            group = [(i, f) for i, f in valid if units[f.unit_id].mode == mode]
            pts = np.array([[f.lon, f.lat] for _, f in group])
            far = (
                self.router.snap(pts, mode=mode, max_distance_m=np.inf).distance_m
                > self.router.max_snap_m
            )
            for (i, f), off in zip(group, far.tolist(), strict=True):
                if off:
                    try:
                        self._check_on_network(f.lon, f.lat, mode, field="lon")
                    except CityWatchError as exc:
                        outcomes[i] = FixOutcome(i, f.unit_id, error=exc)
                        continue
                kept.append((i, f))
        return sorted(kept, key=lambda p: p[0])

    def set_unit_status(self, who: Principal, unit_id: str, status: str) -> dict[str, Any]:
        """Move a unit along its lifecycle; the incident it serves follows (en route, on scene).

        Locks the unit's incident before the unit (the global lock order of :meth:`_write`); a
        unit assigned or released between the first read and the locks is read again.
        """
        UNIT_LIFECYCLE.parse(status)
        if status == UnitStatus.DISPATCHED:
            raise ConflictError(
                "a unit is dispatched by assigning it to an incident", field="status"
            )
        return self._with_locked_unit(
            who, unit_id, lambda s, unit: self._change_unit_status(s, who, unit, status)
        )

    def _with_locked_unit(
        self, who: Principal, unit_id: str, action: Callable[[Session, Unit], _T]
    ) -> _T:
        """Run ``action`` on a unit locked in the global order (its incident first, then it).

        A unit assigned or released between the first read and the locks is read again.
        """
        for _ in range(_LOCK_ATTEMPTS):
            with self._write() as s:
                seen = self._get_unit(s, unit_id)
                self._check_unit_actor(who, seen)
                incident_id = seen.incident_id
                if incident_id is not None:
                    self._lock_incident(s, incident_id)
                (unit,) = self._lock_units(s, Unit.id == unit_id)
                if unit.incident_id != incident_id:
                    continue  # assigned or released meanwhile: lock its new incident first
                return action(s, unit)
        raise ConflictError(f"unit {unit_id} keeps changing; retry")

    def _change_unit_status(
        self, s: Session, who: Principal, unit: Unit, status: str
    ) -> dict[str, Any]:
        """The status change of a locked unit (and of its assignment and incident)."""
        now = self.clock()
        old, incident_id = unit.status, unit.incident_id
        UNIT_LIFECYCLE.transition(old, status, now)
        keeps_incident = status in UNIT_ASSIGNED
        unit.status, unit.status_at = status, now
        unit.incident_id = incident_id if keeps_incident else None
        s.flush()
        if incident_id is not None:
            self._follow_unit(s, who, unit, incident_id, old, status, now)
        return self._emit_unit_status(s, who, unit, incident_id, old, status, now)

    def _follow_unit(
        self,
        s: Session,
        who: Principal,
        unit: Unit,
        incident_id: str,
        old: str,
        new: str,
        now: datetime,
    ) -> None:
        """Carry a unit's status change over to its assignment and incident."""
        row, state = self._lock_incident(s, incident_id)
        a = s.scalar(select(Assignment).where(Assignment.unit_id == unit.id, Assignment.active))
        if new == UnitStatus.EN_ROUTE:
            if a is not None:
                a.en_route_at = now
            if state.status == IncidentStatus.DISPATCHED:
                self._set_incident_status(s, who, row, state, IncidentStatus.EN_ROUTE, now)
            return
        if new == UnitStatus.ON_SCENE:
            if a is not None:
                a.on_scene_at = now
            if state.status in _BEFORE_ARRIVAL:
                self._set_incident_status(s, who, row, state, IncidentStatus.ON_SCENE, now)
            return
        self._end_assignment(
            s, who, unit, "completed" if old == UnitStatus.ON_SCENE else "called_off", now
        )
        s.flush()
        others = s.scalar(
            select(Assignment.id).where(Assignment.incident_id == incident_id, Assignment.active)
        )
        if others is None and state.status in _BEFORE_ARRIVAL:
            self._set_incident_status(s, who, row, state, IncidentStatus.RECEIVED, now)
