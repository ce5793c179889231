"""REST routes of a pursuit (堵控): the analysis of a flight and the dispatch of its plan.

* ``POST /api/v1/incidents/{id}/pursuit``: isochrone rings, hiding-area ranking (with the route
  model's assumptions) and the checkpoint plan with its units, its out-of-sample interception
  share (95 % interval) and the naive plan's share, computed by :mod:`citywatch.pursuit`.  Read
  only: every role that may see the incident (not unit devices); the units are the available
  units of the caller's scope.
* ``POST /api/v1/incidents/{id}/pursuit/dispatch``: the plan's units sent to the incident in
  one transaction through :meth:`DispatchService.assign_many` (the lifecycle code of every
  assignment, one audited ``assignment.created`` each, the checkpoint kept in its event), all
  or none, with a result per unit (in the error's ``details`` when refused).
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request, status
from pydantic import BaseModel, ConfigDict, Field, StrictInt

from citywatch.api.routes import ERROR_RESPONSES, IncidentId, Service
from citywatch.api.schemas import Identifier, IsoTime, Lat, Location, Lon
from citywatch.api.security import CurrentUser
from citywatch.api.surveillance import get_sensor_service
from citywatch.dispatch.accounts import Principal
from citywatch.dispatch.lifecycle import UnitStatus
from citywatch.dispatch.service import DispatchService
from citywatch.errors import ValidationError
from citywatch.pursuit.analysis import Flight, covered_points, hiding_report, plan_report
from citywatch.pursuit.intercept import DEFAULT_DELAY_S, PursuitUnit
from citywatch.pursuit.reach import HORIZONS_MIN, Incident, reachable
from citywatch.routing.speeds import parse_mode
from citywatch.surveillance.store import SensorService

__all__ = ["MAX_K", "MAX_MINUTES", "MAX_ROUTES", "router"]

router = APIRouter(prefix="/api/v1", responses=ERROR_RESPONSES, tags=["pursuit"])

#: Largest horizon (minutes) and number of rings a request may ask for.
MAX_MINUTES = 30
MAX_RINGS = 6
#: Most checkpoints of one plan, and most simulated routes of one request (CPU bound).
MAX_K = 20
MAX_ROUTES = 5000
DEFAULT_ROUTES = 1000
#: Longest ranking returned.
MAX_TOP = 100


class SightingIn(BaseModel):
    """A later sighting (camera hit, report): it moves the origin and the clock."""

    model_config = ConfigDict(extra="forbid")

    lon: Lon
    lat: Lat
    at: IsoTime


class PursuitIn(BaseModel):
    """What to compute for an incident's flight."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["foot", "bicycle", "motorcycle", "car"] = Field(
        "motorcycle", description="the offender's mode (bicycle also stands for e-bikes)"
    )
    minutes: list[StrictInt] = Field(
        default_factory=lambda: list(HORIZONS_MIN),
        min_length=1,
        max_length=MAX_RINGS,
        description=f"ring horizons, 1..{MAX_MINUTES} minutes",
    )
    k: StrictInt = Field(6, ge=1, le=MAX_K, description="checkpoints of the plan")
    seed: StrictInt = Field(0, ge=0, le=2**31 - 1, description="seed of the route simulation")
    routes: StrictInt = Field(DEFAULT_ROUTES, ge=100, le=MAX_ROUTES, description="simulated routes")
    heading_deg: float | None = Field(
        None, ge=0, le=360, allow_inf_nan=False, description="direction first seen"
    )
    delay_s: float | None = Field(
        None,
        ge=0,
        le=3600,
        allow_inf_nan=False,
        description=f"seconds from the origin's time until units move; default "
        f"{DEFAULT_DELAY_S:g} s plus the time already passed since then",
    )
    cameras: bool = Field(
        True, description="routes avoid streets a working camera of the registry sees"
    )
    top: StrictInt = Field(20, ge=1, le=MAX_TOP, description="places and blocks ranked")
    origin: Location | None = Field(None, description="corrected incident position")
    sighting: SightingIn | None = None


class CheckpointIn(BaseModel):
    """One assignment of the plan: a unit and the checkpoint it holds."""

    model_config = ConfigDict(extra="forbid")

    unit_id: Identifier
    lon: Lon
    lat: Lat
    eta_s: float | None = Field(None, ge=0, le=86_400, allow_inf_nan=False)


class PursuitDispatchIn(BaseModel):
    """The plan to apply (the checkpoints as the pursuit answer listed them)."""

    model_config = ConfigDict(extra="forbid")

    checkpoints: list[CheckpointIn] = Field(min_length=1, max_length=MAX_K)


Sensors = Annotated[SensorService, Depends(get_sensor_service)]


def _units(service: DispatchService, who: Principal) -> list[PursuitUnit]:
    """The available units of the caller's scope at their located positions."""
    out = []
    for u in service.list_units(who, status=UnitStatus.AVAILABLE):
        lon, lat = u["located"]["lon"], u["located"]["lat"]
        if math.isfinite(lon) and math.isfinite(lat):
            out.append(PursuitUnit(u["id"], u["unit_type"], parse_mode(u["mode"]), lon, lat))
    return out


def _origin(service: DispatchService, incident: dict[str, Any], body: PursuitIn) -> Incident:
    lon, lat = incident["lon"], incident["lat"]
    if body.origin is not None:
        lon, lat = body.origin.lon, body.origin.lat
    received: datetime = incident["received_at"]
    inc = Incident(lon, lat, received, parse_mode(body.mode), body.heading_deg)
    if body.sighting is not None:
        s = body.sighting
        inc = inc.sighted(s.lon, s.lat, s.at)
    if not service.pack.contains(inc.lon, inc.lat):
        raise ValidationError(
            f"({inc.lon}, {inc.lat}) is outside the city pack {service.pack.name}",
            field="sighting" if body.sighting is not None else "origin",
        )
    return inc


@router.post("/incidents/{incident_id}/pursuit")
def pursuit(
    incident_id: IncidentId,
    body: PursuitIn,
    request: Request,
    who: CurrentUser,
    service: Service,
) -> dict[str, Any]:
    """Where the offender can be (rings), where he may hide (ranking) and the checkpoint plan
    that cuts him off with the available units, against sending the nearest units to the scene.

    The interception share is re-measured on a fresh set of simulated routes (out of sample)
    with a 95 % Wilson interval.  CPU bound: about a second per 1,000 routes on Manhattan.
    """
    if any(not 1 <= m <= MAX_MINUTES for m in body.minutes):
        raise ValidationError(f"minutes must be 1..{MAX_MINUTES}", field="minutes")
    incident = service.get_incident(who, incident_id)  # scope and role checks
    inc = _origin(service, incident, body)
    horizon_s = 60.0 * max(body.minutes)
    covered = None
    if body.cameras:
        cov = get_sensor_service(request).coverage(who)
        covered = covered_points(cov, service.pack.timezone, inc.at)
    flight = Flight.simulate(
        service.pack,
        inc,
        router=service.router,
        n_routes=body.routes,
        horizon_s=horizon_s,
        seed=body.seed,
        covered_xy=covered,
    )
    reach = reachable(service.router, inc, body.minutes)
    hiding = hiding_report(flight, cameras=covered is not None and len(covered) > 0, top=body.top)
    elapsed = max(0.0, (service.clock() - inc.at).total_seconds())
    delay = body.delay_s if body.delay_s is not None else DEFAULT_DELAY_S + elapsed
    units = _units(service, who)
    plan = plan_report(flight, units, body.k, delay_s=delay) if units else None
    return {
        "incident_id": incident_id,
        "origin": {
            "lon": inc.lon,
            "lat": inc.lat,
            "at": inc.at,
            "source": "sighting" if body.sighting else "origin" if body.origin else "incident",
        },
        "mode": inc.mode,
        "elapsed_s": round(elapsed, 1),
        "delay_s": round(delay, 1),
        "rings": {"summary": reach.summary(), "geojson": reach.to_geojson()},
        "hiding": {
            "assumptions": hiding["assumptions"],
            "ranking": [
                {k: v for k, v in r.items() if k != "geometry"}
                for r in [*hiding["places"], *hiding["blocks"]]
            ],
            "geojson": hiding["geojson"],
        },
        "units_available": len(units),
        "plan": plan,
    }


@router.post("/incidents/{incident_id}/pursuit/dispatch", status_code=status.HTTP_201_CREATED)
def dispatch_plan(
    incident_id: IncidentId, body: PursuitDispatchIn, who: CurrentUser, service: Service
) -> dict[str, Any]:
    """Send every unit of a checkpoint plan to the incident, all or none (409 with a result
    per unit in ``error.details`` when one is not available); each assignment is audited and
    keeps its checkpoint."""
    details = [
        {"pursuit_checkpoint": {"lon": c.lon, "lat": c.lat, "eta_s": c.eta_s}}
        for c in body.checkpoints
    ]
    out = service.assign_many(
        who, incident_id, [c.unit_id for c in body.checkpoints], details=details
    )
    return {
        "incident_id": incident_id,
        "assigned": len(out),
        "results": [
            {
                "unit_id": a["unit_id"],
                "result": "assigned",
                "assignment_id": a["id"],
                "eta_s": a["eta_s"],
                "checkpoint": a["detail"]["pursuit_checkpoint"],
            }
            for a in out
        ],
    }
