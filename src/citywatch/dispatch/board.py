"""The unit roster board of the live service: roster, out-of-service reasons, welfare
check-ins, status timers and live move-up suggestions.

:class:`BoardService` adds these operations to the dispatch service (it is one of its bases).
Every change is recorded like any other (timeline, audit chain, event stream): an out-of-service
reason (``unit.out_of_service``), a check-in (``unit.checkin``) and an applied move-up
(``unit.moveup``).  The timers themselves change nothing: their level changes are announced to
the streams only (``unit.timer``, see :class:`citywatch.dispatch.timers.TimerWatch`).
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import datetime
from functools import cached_property
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from citywatch.dispatch.accounts import Principal, Role
from citywatch.dispatch.core import UNIT_STATE_COLUMNS
from citywatch.dispatch.lifecycle import UNIT_LIFECYCLE, UnitStatus
from citywatch.dispatch.moveup import load_coverage_rules
from citywatch.dispatch.moveup_live import LiveMoveUp
from citywatch.dispatch.policy import UnitView
from citywatch.dispatch.timers import (
    TIMER_TICK_S,
    OutOfService,
    TimerRules,
    TimerState,
    load_timer_rules,
    timer_state,
)
from citywatch.dispatch.units import UnitService
from citywatch.errors import ConflictError, PermissionDeniedError, ValidationError
from citywatch.store.board_models import UnitBoard
from citywatch.store.dispatch_models import IncidentDispatch, Unit
from citywatch.store.models import IncidentRow

__all__ = ["BoardService"]


def _valid(at: datetime | None, status_at: datetime) -> bool:
    """A board value belongs to the unit's current status if it is not older than it."""
    return at is not None and at >= status_at


class BoardService(UnitService):
    """Roster board, out-of-service reasons, check-ins, timers and move-up of the live fleet."""

    @cached_property
    def timer_rules(self) -> TimerRules:
        """The status-timer thresholds (bundled ``dispatch/data/timers.toml``)."""
        return load_timer_rules()

    @cached_property
    def moveup(self) -> LiveMoveUp:
        """Live move-up over the pack's stations and the bundled coverage rules."""
        stations = {sid: (st.lon, st.lat) for sid, st in self.stations.items()}
        return LiveMoveUp(self.router, stations, load_coverage_rules())

    def board_config(self) -> dict[str, Any]:
        """The out-of-service reasons, the timer thresholds and the timers' tick (seconds)."""
        return {
            "oos_reasons": [r.value for r in OutOfService],
            "timers": self.timer_rules.as_dict(),
            "tick_s": TIMER_TICK_S,
        }

    # ------------------------------------------------------------------ roster
    def roster(
        self,
        who: Principal,
        *,
        status: str | None = None,
        unit_type: str | None = None,
        station: str | None = None,
    ) -> dict[str, Any]:
        """Every unit in the caller's scope with its status, time in status, station, type,
        shift, current incident, out-of-service reason, last check-in and timer.

        Parameters
        ----------
        who : Principal
        status, unit_type, station : str, optional
            Filters (validated: an unknown status or unit type is a 422).

        Returns
        -------
        dict
            ``now`` (the service clock), ``units`` (sorted by id) and ``counts`` (units per
            status after the filters).
        """
        if who.role is Role.UNIT_DEVICE:
            raise PermissionDeniedError("a unit device may not list units")
        if status is not None:
            UNIT_LIFECYCLE.parse(status)
        if unit_type is not None:
            self.rules.mode_of(unit_type)
        query = (
            select(Unit, UnitBoard, IncidentRow, IncidentDispatch)
            .outerjoin(UnitBoard, UnitBoard.unit_id == Unit.id)
            .outerjoin(IncidentRow, IncidentRow.id == Unit.incident_id)
            .outerjoin(IncidentDispatch, IncidentDispatch.incident_id == Unit.incident_id)
            .order_by(Unit.id)
        )
        if status is not None:
            query = query.where(Unit.status == status)
        if unit_type is not None:
            query = query.where(Unit.unit_type == unit_type)
        if station is not None:
            query = query.where(Unit.station == station)
        now = self.clock()
        rows = []
        with self.sessions() as s:
            for unit, board, inc, disp in s.execute(query):
                if self._in_scope(who, unit.station):
                    rows.append(self._roster_row(unit, board, inc, disp, now))
        counts: dict[str, int] = {}
        for r in rows:
            counts[r["status"]] = counts.get(r["status"], 0) + 1
        return {"now": now, "units": rows, "counts": counts}

    def _roster_row(
        self,
        unit: Unit,
        board: UnitBoard | None,
        inc: IncidentRow | None,
        disp: IncidentDispatch | None,
        now: datetime,
    ) -> dict[str, Any]:
        out = self._unit_dict(unit)
        reason = note = checkin = checkin_by = cover = None
        if board is not None:
            if unit.status == UnitStatus.OUT_OF_SERVICE and _valid(board.oos_at, unit.status_at):
                reason, note = board.oos_reason, board.oos_note
            if _valid(board.checkin_at, unit.status_at):
                checkin, checkin_by = board.checkin_at, board.checkin_by
            if _valid(board.cover_at, unit.status_at):
                cover = board.cover_station
        st = timer_state(
            self.timer_rules, unit.unit_type, unit.status, unit.status_at, checkin, now
        )
        out.update(
            time_in_status_s=max(0.0, (now - unit.status_at).total_seconds()),
            oos_reason=reason,
            oos_note=note,
            checkin_at=checkin,
            checkin_by=checkin_by,
            cover_station=cover,
            timer=st.as_dict(),
            incident=None
            if inc is None
            else {
                "id": inc.id,
                "category": inc.category,
                "category_label": {
                    "en": self.taxonomy.label(inc.category, "en"),
                    "zh": self.taxonomy.label(inc.category, "zh"),
                },
                "priority": inc.priority,
                "status": disp.status if disp is not None else None,
            },
        )
        return out

    # ------------------------------------------------------------------ changes
    def _board_row(self, s: Session, unit_id: str) -> UnitBoard:
        row = s.get(UnitBoard, unit_id)
        if row is None:
            row = UnitBoard(unit_id=unit_id)
            s.add(row)
        return row

    def set_out_of_service(
        self, who: Principal, unit_id: str, reason: str, note: str | None = None
    ) -> dict[str, Any]:
        """Take a unit out of service for a reason (meal, maintenance, training), audited.

        The status change follows the unit lifecycle (a unit on scene must clear first); a
        unit on its way to an incident is called off it.  Returns the unit's roster row.
        """
        try:
            code = OutOfService(reason)
        except ValueError:
            known = ", ".join(r.value for r in OutOfService)
            raise ValidationError(
                f"unknown out-of-service reason {reason!r}; known: {known}", field="reason"
            ) from None
        if note is not None and len(note) > 500:
            raise ValidationError("note is longer than 500 characters", field="note")

        def take_out(s: Session, unit: Unit) -> dict[str, Any]:
            self._change_unit_status(s, who, unit, UnitStatus.OUT_OF_SERVICE)
            board = self._board_row(s, unit_id)
            before = {"oos_reason": board.oos_reason}
            board.oos_reason, board.oos_note, board.oos_at = code.value, note, unit.status_at
            s.flush()
            self._emit(
                s,
                who.username,
                "unit.out_of_service",
                unit_id=unit_id,
                station=unit.station,
                data={"unit_id": unit_id, "reason": code.value, "note": note},
                before=before,
            )
            return self._roster_row(unit, board, None, None, self.clock())

        return self._with_locked_unit(who, unit_id, take_out)

    def check_in(self, who: Principal, unit_id: str) -> dict[str, Any]:
        """A welfare check-in: restarts the unit's status timer (audited, announced).

        The unit's own device, or anyone who may change the unit, may check it in.  Returns the
        unit's roster row.
        """
        with self._write() as s:
            (unit,) = self._lock_units(s, Unit.id == self._get_unit(s, unit_id).id)
            self._check_unit_actor(who, unit)
            now = self.clock()
            board = self._board_row(s, unit_id)
            before = {"checkin_at": board.checkin_at}
            board.checkin_at, board.checkin_by = now, who.username
            s.flush()
            st = timer_state(
                self.timer_rules, unit.unit_type, unit.status, unit.status_at, now, now
            )
            self._emit(
                s,
                who.username,
                "unit.checkin",
                unit_id=unit_id,
                incident_id=unit.incident_id,
                station=unit.station,
                data={
                    "unit_id": unit_id,
                    "status": unit.status,
                    "at": now,
                    "timer": st.as_dict(),
                },
                before=before,
            )
            return self._roster_row(unit, board, None, None, now)

    # ------------------------------------------------------------------ timers
    def timer_states(self) -> dict[str, tuple[str | None, TimerState]]:
        """Every unit's timer now: unit id -> (station, state); for the service's timer tick.

        Read from this worker's in-memory units (:attr:`live`), which follow the committed
        status changes and check-ins: a tick reads the database only when they merge with it.
        """
        now = self.clock()
        out = {}
        for u in self.live.units():
            if u.status_at is None:
                continue  # a status change applied without its time: known after the merge
            checkin = u.checkin_at if _valid(u.checkin_at, u.status_at) else None
            out[u.id] = (
                u.station,
                timer_state(self.timer_rules, u.unit_type, u.status, u.status_at, checkin, now),
            )
        return out

    # ------------------------------------------------------------------ move-up
    def _covering_views(self) -> list[UnitView]:
        """The fleet as move-up sees it: a moved-up unit counts at the station it covers (and
        stands there while its own position is stale)."""
        now = self.clock()
        with self.sessions() as s:
            rows = s.execute(
                select(
                    *UNIT_STATE_COLUMNS, Unit.status_at, UnitBoard.cover_station, UnitBoard.cover_at
                )
                .outerjoin(UnitBoard, UnitBoard.unit_id == Unit.id)
                .order_by(Unit.id)
            ).all()
        views = []
        for row in rows:
            view = self._unit_view(row, now)
            if row.cover_station in self.stations and _valid(row.cover_at, row.status_at):
                st = self.stations[row.cover_station]
                view = replace(view, station=row.cover_station)
                if view.position_stale:
                    view = replace(view, lon=st.lon, lat=st.lat)
            views.append(view)
        return views

    def moveup_suggestions(self, who: Principal) -> dict[str, Any]:
        """Live move-up suggestions (coverage rules, then the best DMEXCLP relocation) for the
        fleet as it is now; a station officer sees the moves into or out of their scope."""
        if who.role is Role.UNIT_DEVICE:
            raise PermissionDeniedError("a unit device may not read move-up suggestions")
        result = self.moveup.suggest(self._covering_views())

        def seen(station: str | None) -> bool:
            return station is not None and self._in_scope(who, station)

        moves = [m.as_dict() for m in result["moves"] if seen(m.to_station) or seen(m.from_station)]
        return {
            "now": self.clock(),
            **{k: v for k, v in result.items() if k != "moves"},
            "violations": [v for v in result["violations"] if seen(v["station"])],
            "moves": moves,
        }

    def apply_moveup(self, who: Principal, unit_id: str, to_station: str) -> dict[str, Any]:
        """Move an available unit up to cover ``to_station`` (audited as ``unit.moveup``).

        The unit counts at that station for the coverage rules until its next status change;
        its road ETA to the station is returned and recorded.
        """
        if to_station not in self.stations:
            raise ValidationError(
                f"unknown station {to_station!r} in pack {self.pack.name}", field="to_station"
            )
        self._check_scope(who, to_station, f"station {to_station}")
        now = self.clock()
        with self._write() as s:
            (unit,) = self._lock_units(s, Unit.id == self._get_unit(s, unit_id).id)
            self._check_unit_actor(who, unit)
            if who.role is Role.UNIT_DEVICE:
                raise PermissionDeniedError("a unit device may not move units up")
            if unit.status != UnitStatus.AVAILABLE:
                raise ConflictError(
                    f"unit {unit_id} is {unit.status}, not available: it cannot move up",
                    field="unit_id",
                )
            view = self._unit_view(unit, now)
            target = self.stations[to_station]
            eta = None
            if math.isfinite(view.lon):
                secs, _ = self._travel(
                    np.array([[view.lon, view.lat]]), view.mode, (target.lon, target.lat), None
                )
                eta = float(secs[0]) if math.isfinite(secs[0]) else None
            board = self._board_row(s, unit_id)
            current = board.cover_station if _valid(board.cover_at, unit.status_at) else None
            board.cover_station, board.cover_at = to_station, now
            s.flush()
            out = {
                "unit_id": unit_id,
                "from_station": current or unit.station,
                "to_station": to_station,
                "eta_s": eta,
                "at": now,
            }
            self._emit(
                s,
                who.username,
                "unit.moveup",
                unit_id=unit_id,
                station=to_station,
                data=out,
                before={"cover_station": current},
            )
        return out
