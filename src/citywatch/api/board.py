"""Routes of the unit roster board, team dispatch and live move-up (``/api/v1``).

* ``GET  /board/config``: out-of-service reasons, status-timer thresholds, timer tick;
* ``GET  /board/roster?status&unit_type&station``: every unit with time in status, shift,
  current incident, out-of-service reason, last check-in and timer level;
* ``POST /units/{id}/out-of-service {reason, note}``: out of service for a reason (audited);
* ``POST /units/{id}/checkin``: welfare check-in, restarts the status timer (audited);
* ``POST /incidents/{id}/team {unit_ids?}``: send several units in one atomic action (the
  recommendation's team when ``unit_ids`` is omitted), one audited assignment each;
* ``GET  /moveup/suggestions``: coverage-rule and DMEXCLP move-up suggestions for now;
* ``POST /moveup/apply {unit_id, to_station}``: move a unit up to cover a station (audited).

Timer level changes reach the event stream as ``unit.timer`` events (:func:`watch_timers`,
started with the application): every :data:`~citywatch.dispatch.timers.TIMER_TICK_S` seconds
each worker reads the timers and tells its own clients of the changes.  The ticks keep their
period whatever a read costs (the next tick is due ``tick_s`` after the previous one began, not
after it ended), so a level change is published at most ``tick_s`` plus one read after the
crossing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Query, status
from pydantic import BaseModel, ConfigDict, Field

from citywatch.api.events import EventBus
from citywatch.api.routes import IncidentId, Service, UnitId
from citywatch.api.schemas import AssignmentOut, Identifier
from citywatch.api.security import CurrentUser
from citywatch.console import to_jsonable
from citywatch.dispatch.lifecycle import UnitStatus
from citywatch.dispatch.policy import PolicyName
from citywatch.dispatch.service import DispatchService
from citywatch.dispatch.timers import TIMER_TICK_S, OutOfService, TimerWatch

__all__ = ["router", "watch_timers"]

log = logging.getLogger("citywatch.api.board")

router = APIRouter(prefix="/api/v1")


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OutOfServiceIn(_In):
    """Why a unit goes out of service."""

    reason: OutOfService = Field(description="meal, maintenance or training")
    note: str | None = Field(None, max_length=500)


class TeamIn(_In):
    """The units to send together (default: the recommendation's team)."""

    unit_ids: list[Identifier] | None = Field(None, min_length=1, max_length=20)
    policy: PolicyName = "nearest"


class MoveUpIn(_In):
    """A move-up to apply."""

    unit_id: Identifier
    to_station: str = Field(min_length=1, max_length=32)


@router.get("/board/config", tags=["board"])
def board_config(who: CurrentUser, service: Service) -> dict[str, Any]:
    """Out-of-service reasons, timer thresholds per status and unit type, timer tick (s)."""
    return service.board_config()


@router.get("/board/roster", tags=["board"])
def roster(
    who: CurrentUser,
    service: Service,
    unit_status: Annotated[UnitStatus | None, Query(alias="status")] = None,
    unit_type: Annotated[str | None, Query(max_length=32)] = None,
    station: Annotated[str | None, Query(max_length=32)] = None,
) -> dict[str, Any]:
    """Every unit in scope with status, time in status, station, type, shift, current
    incident, out-of-service reason, last check-in and timer (``ok``/``warning``/``alert``)."""
    return service.roster(
        who,
        status=None if unit_status is None else unit_status.value,
        unit_type=unit_type,
        station=station,
    )


@router.post("/units/{unit_id}/out-of-service", tags=["board"])
def out_of_service(
    unit_id: UnitId, body: OutOfServiceIn, who: CurrentUser, service: Service
) -> dict[str, Any]:
    """Take a unit out of service for a reason (audited); returns its roster row."""
    return service.set_out_of_service(who, unit_id, body.reason.value, body.note)


@router.post("/units/{unit_id}/checkin", tags=["board"])
def checkin(unit_id: UnitId, who: CurrentUser, service: Service) -> dict[str, Any]:
    """Welfare check-in: restarts the unit's status timer (audited); returns its roster row."""
    return service.check_in(who, unit_id)


@router.post(
    "/incidents/{incident_id}/team",
    response_model=list[AssignmentOut],
    status_code=status.HTTP_201_CREATED,
    tags=["incidents"],
)
def send_team(
    incident_id: IncidentId, body: TeamIn, who: CurrentUser, service: Service
) -> list[dict[str, Any]]:
    """Send a team in one action: every unit or none (409 naming a busy unit), one audited
    assignment per unit.  Without ``unit_ids`` the recommendation's team goes."""
    unit_ids = body.unit_ids
    if unit_ids is None:
        rec = service.recommend(who, incident_id, policy=body.policy)
        unit_ids = list(rec.team) or [c.unit_id for c in rec.candidates[:1]]
    return service.assign_many(who, incident_id, list(unit_ids))


@router.get("/moveup/suggestions", tags=["board"])
def moveup_suggestions(who: CurrentUser, service: Service) -> dict[str, Any]:
    """Move-up suggestions now: one per unit missing under a coverage rule (donor unit, ETA,
    coverage gain), and the best DMEXCLP relocation if it gains at least 0.5 pp."""
    return service.moveup_suggestions(who)


@router.post("/moveup/apply", tags=["board"])
def moveup_apply(body: MoveUpIn, who: CurrentUser, service: Service) -> dict[str, Any]:
    """Move an available unit up to cover a station (audited as ``unit.moveup``)."""
    return service.apply_moveup(who, body.unit_id, body.to_station)


async def watch_timers(
    service: DispatchService,
    bus: EventBus,
    tick_s: float = TIMER_TICK_S,
    *,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    monotonic: Callable[[], float] = time.monotonic,
) -> None:
    """Announce the timers' level changes to this worker's clients every ``tick_s`` seconds.

    Runs until cancelled; a failed read (database hiccup) is logged and retried next tick.

    Parameters
    ----------
    service : DispatchService
        Its :meth:`~DispatchService.timer_states` are read at each tick, on its ``clock``.
    bus : EventBus
        The events go to this worker's clients (``deliver``).
    tick_s : float
        The period of the ticks.  A tick is due ``tick_s`` after the previous one *began*; one
        that overruns its period is followed at once by the next (no burst to catch up).
    sleep, monotonic : callable, optional
        The waiting and the tick schedule's clock (tests pass a fake clock for both and for
        ``service.clock``).
    """
    watch = TimerWatch()
    due = monotonic()
    while True:
        try:
            states = await asyncio.to_thread(service.timer_states)
            for event in watch.tick(states, service.clock()):
                event["bureau"] = service.bureau_of.get(event["station"] or "")
                event["id"] = None
                event["actor"] = "timer"
                event["incident_id"] = None
                bus.deliver(to_jsonable(event))
        except Exception:
            log.exception("reading the unit timers failed; retrying")
        now = monotonic()
        due = max(due + tick_s, now)
        await sleep(due - now)
